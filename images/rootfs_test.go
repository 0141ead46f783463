package images

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cca-testbed/cell"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

const testMirror = "http://mirror.example/debian"

// TestRecipeGolden pins the recipe text and key of each userspace: a change
// to either must be deliberate (go test ./images -run RecipeGolden -update)
// and shows up in review as a diff of what goes into the image.
func TestRecipeGolden(t *testing.T) {
	for _, u := range cell.Userspaces {
		t.Run(string(u), func(t *testing.T) {
			r := newRecipe(u, testMirror)
			got := r.render() + "\n# key " + r.inputs().Key(string(u)) + "\n"
			golden := filepath.Join("testdata", "recipe-"+string(u)+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("recipe for %s differs from %s; if intended, rerun with -update\n--- got\n%s", u, golden, got)
			}
			if strings.Contains(got, "mirror.example") {
				t.Error("the rendered recipe holds the mirror; it must not name hosts")
			}
		})
	}
}

func TestRecipeKey(t *testing.T) {
	key := func(r *recipe) string { return r.inputs().Key(string(r.userspace)) }
	base := key(newRecipe(cell.Forky, testMirror))
	if again := key(newRecipe(cell.Forky, testMirror)); again != base {
		t.Fatalf("key not stable: %s then %s", base, again)
	}
	tests := []struct {
		name   string
		change func(r *recipe)
	}{
		{"userspace", func(r *recipe) { *r = *newRecipe(cell.Trixie, testMirror) }},
		{"mirror", func(r *recipe) { r.mirror = "http://other.example/debian" }},
		{"package list", func(r *recipe) { r.options[4] += ",procps" }},
		{"option", func(r *recipe) { r.options = append(r.options, "--verbose") }},
		{"file content", func(r *recipe) { r.files[1].content = "other\n" }},
		{"file mode", func(r *recipe) { r.files[1].mode = 0o600 }},
		{"customize script", func(r *recipe) { r.script += "true\n" }},
		{"generated file", func(r *recipe) { r.generated = r.generated[1:] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRecipe(cell.Forky, testMirror)
			tt.change(r)
			if got := key(r); got == base {
				t.Errorf("key unchanged (%s) after changing the %s", got, tt.name)
			}
		})
	}
}

func TestRecipeContents(t *testing.T) {
	r := newRecipe(cell.Forky, testMirror)
	files := map[string]stagedFile{}
	for _, f := range append(append([]stagedFile{}, r.files...), r.generated...) {
		files[f.path] = f
	}
	for _, p := range []string{"etc", "etc/ssh", "etc/systemd/system", "root/.ssh", "usr/lib/modules", "usr/local/bin"} {
		if _, ok := files[p]; !ok {
			t.Errorf("%s is staged after one of its files, or not at all", p)
		}
	}
	// Every staged path's parent must be staged before it (put uses Mkdir).
	seen := map[string]bool{".": true}
	for _, f := range append(append([]stagedFile{}, r.files...), r.generated...) {
		if !seen[filepath.Dir(f.path)] {
			t.Errorf("%s is staged before its directory", f.path)
		}
		seen[f.path] = true
	}
	for _, want := range []string{"ConditionSecurity=cvm", "Type=oneshot", "RemainAfterExit=yes", "ExecStart=/bin/true", "WantedBy=multi-user.target"} {
		if !strings.Contains(files["etc/systemd/system/cca-cvm-gated.service"].content, want) {
			t.Errorf("cca-cvm-gated.service lacks %s", want)
		}
	}
	for _, want := range []string{"Before=systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service", "DefaultDependencies=no", "/dev/vdb", "/usr/lib/modules", "WantedBy=sysinit.target", "-o ro"} {
		if !strings.Contains(files["etc/systemd/system/"+ModulesDiskUnit].content, want) {
			t.Errorf("%s lacks %s", ModulesDiskUnit, want)
		}
	}
	// sshd starts with sysinit, not after it (sshd-keygen would order it
	// after sysinit.target).
	for _, want := range []string{"sysinit.target.wants/ssh.service", "sshd-keygen.service", "ExecStartPre=\n", "Nice=-15"} {
		if !strings.Contains(r.render(), want) {
			t.Errorf("recipe lacks %q", want)
		}
	}
	// The kernel command line's systemd.mask= (the fault tests use it)
	// needs the debug generator.
	if slices.Contains(maskedGenerators, "systemd-debug-generator") {
		t.Error("systemd-debug-generator is masked: systemd.mask= on the kernel command line would do nothing")
	}
	if got := files["etc/fstab"].content; got != "/dev/vda / ext4 rw 0 1\n" {
		t.Errorf("fstab = %q", got)
	}
	for _, want := range []string{"PermitRootLogin prohibit-password", "PasswordAuthentication no", "UsePAM no", "UseDNS no"} {
		if !strings.Contains(sshdConfig, want) {
			t.Errorf("sshd config lacks %s", want)
		}
	}
}

func TestBinfmtFixBinary(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n", true},
		{"enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OC\n", false},
		{"enabled\n", false},
	}
	for _, tt := range tests {
		if got := binfmtFixBinary([]byte(tt.in)); got != tt.want {
			t.Errorf("binfmtFixBinary(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestBuildRootfsForky builds (cold: 6 to 10 minutes) or fetches (warm: a
// cache hit) the real forky rootfs in the shared cache, then reads the
// disk with debugfs to check what the boot and the SSH side rely on.
func TestBuildRootfsForky(t *testing.T) {
	dir, err := DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	r, err := BuildRootfs(ctx, c, cell.Forky)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(r.Disk)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rootfs %s: %s, disk %d MiB", r.Dir, time.Since(start).Round(time.Millisecond), info.Size()>>20)
	if info.Mode().Perm() != 0o444 {
		t.Errorf("disk mode %o, want 444", info.Mode().Perm())
	}
	if ki, err := os.Stat(r.ClientKeyPath); err != nil || ki.Mode().Perm()&0o077 != 0 {
		t.Errorf("client key %s: %v, mode %v; want owner-only", r.ClientKeyPath, err, ki.Mode())
	}
	if di, _ := os.Stat(r.Dir); di.Mode().Perm() != 0o700 {
		t.Errorf("entry mode %o, want 700", di.Mode().Perm())
	}
	if !bytes.HasPrefix(r.HostKey, []byte("ssh-ed25519 ")) {
		t.Errorf("HostKey = %q, want an ssh-ed25519 authorized key", r.HostKey)
	}

	if got := bytes.TrimSpace(debugfs(t, r.Disk, "cat /etc/ssh/ssh_host_ed25519_key.pub")); !bytes.Equal(got, r.HostKey) {
		t.Errorf("disk's host key %q, want the pinned %q", got, r.HostKey)
	}
	clientPub, err := exec.Command("ssh-keygen", "-y", "-f", r.ClientKeyPath).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v", err)
	}
	if got := debugfs(t, r.Disk, "cat /root/.ssh/authorized_keys"); !bytes.HasPrefix(got, bytes.TrimSpace(clientPub)) {
		t.Errorf("authorized_keys %q, want the client key %q", got, clientPub)
	}
	for path, want := range map[string]string{
		"/etc/fstab":    "/dev/vda / ext4 rw 0 1\n",
		"/etc/hostname": Hostname + "\n",
		"/etc/systemd/system/cca-cvm-gated.service": cvmGatedUnit,
		"/etc/systemd/system/" + ModulesDiskUnit:    modulesDiskUnit,
		"/etc/ssh/sshd_config.d/cca-testbed.conf":   sshdConfig,
	} {
		if got := string(debugfs(t, r.Disk, "cat "+path)); got != want {
			t.Errorf("%s on the disk = %q, want %q", path, got, want)
		}
	}
	stats := []struct{ path, want string }{
		{"/etc/ssh/ssh_host_ed25519_key", "Mode:  0600"},
		{"/root/.ssh", "Mode:  0700"},
		{"/root/.ssh/authorized_keys", "Mode:  0600"},
		{"/", "Mode:  0755"},
		{"/usr/local/bin", "Type: directory"},
		{"/usr/lib/modules", "Type: directory"},
		{"/etc/systemd/system/sockets.target.wants/ssh.socket", "Type: symlink"},
		{"/etc/systemd/system/multi-user.target.wants/cca-cvm-gated.service", "Type: symlink"},
		{"/etc/systemd/system/sysinit.target.wants/" + ModulesDiskUnit, "Type: symlink"},
		{"/etc/systemd/system/apt-daily.timer", `"/dev/null"`},
		{"/etc/systemd/system/getty@tty1.service", `"/dev/null"`},
		{"/etc/systemd/system/getty-static.service", `"/dev/null"`},
		{"/etc/.updated", "Type: regular"},
		{"/var/.updated", "Type: regular"},
		{"/etc/systemd/journald.conf.d/cca-testbed.conf", "Type: regular"},
		{"/usr/bin/mount", "Type: regular"},
		{"/usr/sbin/sshd", "Type: regular"},
		{"/usr/bin/udevadm", "Type: regular"},
		{"/usr/bin/kmod", "Type: regular"},
	}
	for _, s := range stats {
		if got := debugfs(t, r.Disk, "stat "+s.path); !bytes.Contains(got, []byte(s.want)) {
			t.Errorf("stat %s lacks %q:\n%s", s.path, s.want, got)
		}
	}
	for _, absent := range []string{
		"/etc/ssh/ssh_host_rsa_key",
		"/etc/systemd/system/multi-user.target.wants/ssh.service",
	} {
		if got := debugfs(t, r.Disk, "stat "+absent); len(bytes.TrimSpace(got)) != 0 {
			t.Errorf("%s should not exist:\n%s", absent, got)
		}
	}
	if names := lsNames(t, r.Disk, "/usr/lib/modules"); len(names) != 0 {
		t.Errorf("/usr/lib/modules should be an empty mount point, holds %q", names)
	}
	if names := lsNames(t, r.Disk, "/etc/ssh"); !slices.Contains(names, "sshd_config.d") {
		t.Errorf("ls /etc/ssh = %q, lacks sshd_config.d (is ls -p parsed right?)", names)
	}
	if got := strings.TrimSpace(string(debugfs(t, r.Disk, "cat /etc/machine-id"))); len(got) != 32 {
		t.Errorf("machine-id %q, want 32 hex digits (an empty one makes each boot a first boot)", got)
	}

	// A second call is a verified cache hit, and quick.
	start = time.Now()
	if _, err := BuildRootfs(ctx, c, cell.Forky); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("warm BuildRootfs took %s, want a cache hit", d)
	}
}

// debugfs runs one debugfs request on a disk image and returns its stdout
// (debugfs reports a missing file on stderr and prints nothing).
func debugfs(t *testing.T, disk, req string) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command("debugfs", "-R", req, disk)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("debugfs -R %q: %v: %s", req, err, errb.String())
	}
	return out.Bytes()
}

// lsNames lists the names in a directory of a disk image (debugfs ls -p
// prints "/inode/mode/uid/gid/name/size/" per entry), without . and ..
func lsNames(t *testing.T, disk, dir string) []string {
	t.Helper()
	var names []string
	for _, line := range strings.Split(string(debugfs(t, disk, "ls -p "+dir)), "\n") {
		f := strings.Split(strings.TrimSpace(line), "/")
		if len(f) < 7 || f[5] == "." || f[5] == ".." {
			continue
		}
		names = append(names, f[5])
	}
	return names
}
