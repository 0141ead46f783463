package images

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"cca-testbed/cell"
	"cca-testbed/internal/shell"
	"cca-testbed/snapshot"
)

// ErrHostNotReady is wrapped when a host tool or kernel feature the build
// needs is missing; scripts/setup-host installs all of them.
var ErrHostNotReady = errors.New("host not set up for image builds")

// recipeVersion is part of every rootfs key: bump it when the build code
// changes the artefact in a way the recipe text does not show.
const recipeVersion = 1

// KindRootfs is the cache kind of root file system entries.
const KindRootfs = "rootfs"

// Names of the artefacts in a rootfs entry.
const (
	DiskName          = "root.ext4"                // raw ext4 image, label "root"
	HostKeyPubName    = "ssh_host_ed25519_key.pub" // the guest's host key, to pin
	ClientKeyName     = "client_ed25519"           // private key for root logins
	ClientKeyPubName  = "client_ed25519.pub"       // its public half (authorized_keys)
	RecipeName        = "recipe.txt"               // what was built, for humans
	BuildLogName      = "build.log"                // mmdebstrap's output
	diskHeadroomBytes = 256 << 20
)

// mkfsArgs make the root file system. Without -T default, mke2fs treats a
// file system under 512 MiB as "small": 1 KiB blocks and four times the
// inodes, which costs space and I/O for nothing.
var mkfsArgs = []string{"-q", "-F", "-L", "root", "-b", "4096", "-T", "default"}

// Hostname is the guest's host name.
const Hostname = "cca-testbed"

// Rootfs is a built guest root file system.
type Rootfs struct {
	Userspace cell.Userspace
	// Dir is the cache entry holding the artefacts below.
	Dir string
	// Disk is the raw ext4 image (read-only; boot it through Overlay).
	Disk string
	// HostKey is the guest's ed25519 host key in authorized_keys format
	// ("ssh-ed25519 AAAA... comment"); parse it with
	// ssh.ParseAuthorizedKey and pin it with ssh.FixedHostKey.
	HostKey []byte
	// ClientKeyPath is the OpenSSH private key (0400) whose public half is
	// root's only authorized key in the guest.
	ClientKeyPath string
}

// BuildRootfs returns the root file system for userspace u from the cache,
// building it first (as root, with mmdebstrap: 6 to 10 minutes measured on
// the 2-core machine while kernels were building alongside) when the
// cache has no intact entry for the current recipe.
func BuildRootfs(ctx context.Context, c *Cache, u cell.Userspace) (*Rootfs, error) {
	if _, err := cell.ParseUserspace(string(u)); err != nil {
		return nil, err
	}
	mirror, err := Mirror()
	if err != nil {
		return nil, err
	}
	r := newRecipe(u, mirror)
	key := r.inputs().Key(string(u))
	dir, err := c.Get(ctx, KindRootfs, key, func(ctx context.Context, tmp string) error {
		if err := checkBuildHost(); err != nil {
			return err
		}
		c.logger().Info("building rootfs (mmdebstrap, a few minutes)", "userspace", u, "key", key)
		return KeepFailedLog(ctx, r.build(ctx, tmp), tmp, BuildLogName, filepath.Join(filepath.Dir(tmp), key+".failed.log"))
	})
	if err != nil {
		return nil, fmt.Errorf("rootfs %s: %w", u, err)
	}
	hk, err := os.ReadFile(filepath.Join(dir, HostKeyPubName))
	if err != nil {
		return nil, fmt.Errorf("rootfs %s: %w", u, err)
	}
	return &Rootfs{
		Userspace:     u,
		Dir:           dir,
		Disk:          filepath.Join(dir, DiskName),
		HostKey:       bytes.TrimSpace(hk),
		ClientKeyPath: filepath.Join(dir, ClientKeyName),
	}, nil
}

// checkBuildHost fails fast, with the fix, when the build cannot work.
func checkBuildHost() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: building a rootfs needs root (mmdebstrap --mode=root, mkfs.ext4 -d); run as root", ErrHostNotReady)
	}
	for _, tool := range []string{"mmdebstrap", "mkfs.ext4", "ssh-keygen", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found; run scripts/setup-host", ErrHostNotReady, tool)
		}
	}
	b, err := os.ReadFile("/proc/sys/fs/binfmt_misc/qemu-aarch64")
	if err != nil || !bytes.HasPrefix(b, []byte("enabled")) {
		return fmt.Errorf("%w: binfmt_misc qemu-aarch64 is not enabled, so arm64 maintainer scripts cannot run; run scripts/setup-host", ErrHostNotReady)
	}
	if !binfmtFixBinary(b) {
		return fmt.Errorf("%w: binfmt_misc qemu-aarch64 lacks the F flag (the interpreter would have to exist inside the tree); reinstall qemu-user-static", ErrHostNotReady)
	}
	return nil
}

// binfmtFixBinary reports whether a binfmt_misc entry has the F flag.
func binfmtFixBinary(entry []byte) bool {
	for _, line := range strings.Split(string(entry), "\n") {
		if flags, ok := strings.CutPrefix(line, "flags: "); ok {
			return strings.Contains(flags, "F")
		}
	}
	return false
}

// stagedFile is one file or directory the recipe puts into the guest.
type stagedFile struct {
	path    string // relative to the guest's root
	mode    fs.FileMode
	dir     bool
	content string
}

// recipe is everything that decides what a rootfs contains. Its text
// (render) and the mirror make the cache key; keys and machine-id are
// generated per build and are deliberately not inputs.
type recipe struct {
	userspace cell.Userspace
	suite     string
	mirror    string
	options   []string // mmdebstrap options before the hooks
	files     []stagedFile
	generated []stagedFile // made at build time; content unknown here
	script    string       // the customize hook run under sh, $1 = root
}

// Packages installed on top of mmdebstrap's apt variant (Essential + apt).
// mount is not Essential any more but the modules disk needs it; iproute2
// is for looking at eth0 by hand.
var rootfsPackages = []string{"systemd", "systemd-sysv", "udev", "kmod", "mount", "openssh-server", "iproute2"}

// maskedUnits slow the boot or run on a timer and are not under test.
// Masking a unit the image lacks is harmless, so the list serves both
// userspaces. serial-getty stays: its login prompt on the console is a
// cheap sign that userspace came up.
var maskedUnits = []string{
	"apt-daily.timer", "apt-daily.service",
	"apt-daily-upgrade.timer", "apt-daily-upgrade.service",
	"dpkg-db-backup.timer", "dpkg-db-backup.service",
	"e2scrub_all.timer", "e2scrub_all.service", "e2scrub_reap.service",
	"fstrim.timer", "man-db.timer",
	"systemd-timesyncd.service", "systemd-firstboot.service",
	"systemd-networkd-wait-online.service", "getty@tty1.service",
	// Debian's fallback that starts gettys on tty2-6 when logind is absent.
	"getty-static.service",
	// Host keys are made at build time and pinned; this would only make
	// ssh.service wait for sysinit.target (measured: sshd started 4.5 s
	// later than it could).
	"sshd-keygen.service",
	// Each is a process started in the boot's busiest second on the one
	// vCPU, for things this kernel does not have (drm, fuse and efi_pstore
	// are not built) or this image does not use (credentials, a persistent
	// journal, a saved random seed, /run/nologin for non-root logins).
	"modprobe@drm.service", "modprobe@fuse.service", "modprobe@efi_pstore.service",
	"systemd-udev-load-credentials.service", "systemd-journal-flush.service",
	"systemd-random-seed.service", "systemd-user-sessions.service",
}

// maskedGenerators find nothing to do in this VM (no EFI, GPT, hibernation,
// sshd on vsock or AF_UNIX, or system update) but are each a fork and exec
// before PID 1 loads its first unit. fstab and getty stay (their output is
// used), and so do debug and run: they give systemd.mask=, systemd.wants=
// and systemd.run= on the kernel command line their meaning.
var maskedGenerators = []string{
	"systemd-factory-reset-generator", "systemd-gpt-auto-generator",
	"systemd-hibernate-resume-generator", "systemd-ssh-generator",
	"systemd-system-update-generator",
}

// suite maps a userspace to the Debian suite mmdebstrap installs.
func suite(u cell.Userspace) string {
	switch u {
	case cell.Trixie:
		return "trixie"
	default:
		return "forky" // testing while forky is in development
	}
}

func newRecipe(u cell.Userspace, mirror string) *recipe {
	r := &recipe{userspace: u, suite: suite(u), mirror: mirror}
	r.options = []string{
		"--mode=root",
		"--format=directory",
		"--arch=arm64",
		"--variant=apt",
		"--include=" + strings.Join(rootfsPackages, ","),
		// Testing snapshots carry an expired Valid-Until; the archive is
		// still signed, only the freshness check is off.
		`--aptopt=Acquire::Check-Valid-Until "false"`,
		`--aptopt=APT::Install-Recommends "false"`,
		// No fsync per unpacked file: a failed build is thrown away whole.
		"--dpkgopt=force-unsafe-io",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/info/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		// Keep our fixed /etc/machine-id: an empty one makes every boot
		// (each run boots a fresh overlay) a systemd first boot, which
		// applies presets. The script removes the logs this step would.
		"--skip=cleanup/reproducible",
		// The check needs arch-test; checkBuildHost checks the same thing
		// (qemu-aarch64 binfmt with the F flag, so no qemu binary has to
		// be copied into the tree).
		"--skip=check/qemu",
	}
	dir := func(p string, mode fs.FileMode) stagedFile { return stagedFile{path: p, mode: mode, dir: true} }
	file := func(p string, mode fs.FileMode, content string) stagedFile {
		return stagedFile{path: p, mode: mode, content: content}
	}
	r.files = []stagedFile{
		dir("etc", 0o755),
		file("etc/hostname", 0o644, Hostname+"\n"),
		file("etc/hosts", 0o644, "127.0.0.1\tlocalhost\n127.0.1.1\t"+Hostname+"\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
		file("etc/fstab", 0o644, "/dev/vda / ext4 rw 0 1\n"),
		// The guest has no DNS; do not carry the build host's resolver.
		file("etc/resolv.conf", 0o644, ""),
		dir("etc/ssh", 0o755),
		dir("etc/ssh/sshd_config.d", 0o755),
		file("etc/ssh/sshd_config.d/cca-testbed.conf", 0o644, sshdConfig),
		dir("etc/systemd", 0o755),
		// The journal stays in /run: nothing reads it after a run, and
		// a flush to /var only adds writes to the overlay.
		dir("etc/systemd/journald.conf.d", 0o755),
		file("etc/systemd/journald.conf.d/cca-testbed.conf", 0o644, "[Journal]\nStorage=volatile\n"),
		dir("etc/systemd/system", 0o755),
		file("etc/systemd/system/"+snapshot.GatedUnit, 0o644, cvmGatedUnit),
		file("etc/systemd/system/"+ModulesDiskUnit, 0o644, modulesDiskUnit),
		dir("etc/systemd/system/ssh.socket.d", 0o755),
		file("etc/systemd/system/ssh.socket.d/cca-testbed.conf", 0o644, sshSocketDropIn),
		dir("etc/systemd/system/ssh.service.d", 0o755),
		file("etc/systemd/system/ssh.service.d/cca-testbed.conf", 0o644, sshServiceDropIn),
		dir("root", 0o700),
		dir("root/.ssh", 0o700),
		dir("usr", 0o755),
		dir("usr/lib", 0o755),
		dir("usr/lib/modules", 0o755),
		dir("usr/local", 0o755),
		dir("usr/local/bin", 0o755),
	}
	r.generated = []stagedFile{
		{path: "etc/machine-id", mode: 0o444},
		{path: "etc/ssh/ssh_host_ed25519_key", mode: 0o600},
		{path: "etc/ssh/ssh_host_ed25519_key.pub", mode: 0o644},
		{path: "root/.ssh/authorized_keys", mode: 0o600},
	}
	r.script = rootfsScript()
	return r
}

// ModulesDiskUnit mounts the per-variant modules disk (/dev/vdb, made by
// the kernel builder) on /usr/lib/modules.
const ModulesDiskUnit = "cca-modules-disk.service"

// The modules disk is mounted by a service, not by a usr-lib-modules.mount
// unit: a mount unit of /dev/vdb gets BindsTo/After=dev-vdb.device, and that
// device unit only appears once udev has processed vdb during coldplug, so
// the mount could never be ordered before systemd-udev-trigger. The modules
// must be in place before coldplug or udev's autoload of the devices under
// test fails silently, and before systemd's early modprobe@ units: with
// configfs a module (Debian's own kernel) modprobe@configfs found no
// modules, configfs was never mounted and no configfs-tsm report appeared
// (measured on trixie), which modules on the root would not cause.
// /dev/vdb itself exists from the kernel (devtmpfs)
// before init starts. A recipe's userspace part rides on the same disk
// (images/kernel.UserspaceDirName, laid out as the guest's root) and is
// copied into the overlay's /etc here, so udevd, which starts after this
// unit, reads its rules before coldplug; PID 1 has loaded its units by
// then, so a unit of the part runs when a rule pulls it in. systemd still shows the result as
// usr-lib-modules.mount (from /proc/self/mountinfo).
const modulesDiskUnit = `[Unit]
Description=Mount the kernel modules disk /dev/vdb read-only on /usr/lib/modules
DefaultDependencies=no
ConditionPathExists=/dev/vdb
ConditionPathIsMountPoint=!/usr/lib/modules
After=systemd-remount-fs.service
Before=systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service
Before=modprobe@configfs.service modprobe@dm_mod.service modprobe@loop.service
Before=sysinit.target local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/mount -t ext4 -o ro /dev/vdb /usr/lib/modules
ExecStart=/bin/sh -c 'if [ -d /usr/lib/modules/cca-userspace ]; then cp -R /usr/lib/modules/cca-userspace/. /; fi'

[Install]
WantedBy=sysinit.target
`

// cvmGatedUnit is active exactly when systemd's own CVM detection says
// this is a confidential VM, which is what distro units gate on.
const cvmGatedUnit = `[Unit]
Description=Active only when systemd detects a confidential VM
ConditionSecurity=cvm

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true

[Install]
WantedBy=multi-user.target
`

// sshd: key-only root logins, the one pinned host key. Debian's
// sshd_config includes sshd_config.d first, and the first value wins.
// No PAM: its session stack (loginuid, logind registration, motd, env)
// cost about 1 s per login under TCG and is not under test.
const sshdConfig = `PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
`

// The socket listens as early as possible: the kernel has configured eth0
// (ip= on the command line) and sshd needs neither udev nor the network
// targets. Checks wait for udev and the boot themselves.
const sshSocketDropIn = `[Unit]
DefaultDependencies=no
Before=sockets.target shutdown.target
Conflicts=shutdown.target
`

// The service must not wait for basic.target (which waits for udev
// coldplug) either. It is also started at once from sysinit.target (see
// rootfsScript), not on the first connection: measured, PID 1 took 2.8 s
// to act on the socket while it was spawning the early units. The build
// has run sshd -t already, so the check before each start goes. Nice:
// on the one vCPU, sshd and its sessions go ahead of the rest of the boot
// (measured: SSH after 4.8-5.8 s instead of 7.2-8.7 s); commands run over
// SSH inherit it, which changes nothing they observe.
const sshServiceDropIn = `[Unit]
DefaultDependencies=no
After=systemd-journald.socket
Before=shutdown.target
Conflicts=shutdown.target

[Service]
ExecStartPre=
Nice=-15
`

func rootfsScript() string {
	var b strings.Builder
	b.WriteString("set -eu\n")
	// Only the generated ed25519 host key is used (and pinned).
	b.WriteString(`rm -f "$1"/etc/ssh/ssh_host_rsa_key* "$1"/etc/ssh/ssh_host_ecdsa_key*` + "\n")
	// What --skip=cleanup/reproducible would otherwise have removed.
	b.WriteString(`rm -f "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/var/log/apt/history.log "$1"/var/log/apt/term.log "$1"/var/log/apt/eipp.log.xz "$1"/var/cache/ldconfig/aux-cache "$1"/var/lib/dbus/machine-id` + "\n")
	b.WriteString(`chroot "$1" systemctl enable ssh.socket ` + snapshot.GatedUnit + " " + ModulesDiskUnit + "\n")
	b.WriteString(`chroot "$1" systemctl disable ssh.service` + "\n")
	b.WriteString(`chroot "$1" systemctl mask ` + strings.Join(maskedUnits, " ") + "\n")
	b.WriteString(`ln -s /usr/lib/systemd/system/ssh.service "$1"/etc/systemd/system/sysinit.target.wants/ssh.service` + "\n")
	b.WriteString(`mkdir -p "$1"/etc/systemd/system-generators` + "\n")
	b.WriteString(`for g in ` + strings.Join(maskedGenerators, " ") + `; do ln -s /dev/null "$1"/etc/systemd/system-generators/$g; done` + "\n")
	// Mark /etc and /var as up to date with /usr, as systemd-update-done
	// would on a first boot; else every boot (each a fresh overlay) runs
	// ldconfig, sysusers and the journal catalog rebuild.
	b.WriteString(`touch -r "$1"/usr "$1"/etc/.updated "$1"/var/.updated` + "\n")
	// Fail the build, not the boot, if sshd rejects its configuration.
	b.WriteString(`mkdir -p "$1"/run/sshd` + "\n")
	b.WriteString(`chroot "$1" /usr/sbin/sshd -t` + "\n")
	return b.String()
}

// render is the recipe as text: the cache key's main input, the golden
// file, and recipe.txt in the entry. Paths that differ per build are
// written as STAGE and TREE; the mirror is left out (it is a separate key
// input, and no host name belongs in files).
func (r *recipe) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# cca-testbed rootfs recipe v%d, userspace %s\n", recipeVersion, r.userspace)
	b.WriteString("mmdebstrap")
	for _, o := range r.options {
		b.WriteString(" \\\n  " + shell.Word(o))
	}
	b.WriteString(" \\\n  " + shell.Word("--customize-hook=sync-in STAGE /"))
	b.WriteString(" \\\n  --customize-hook=\"$(cat <<'SCRIPT'\n" + r.script + "SCRIPT\n)\"")
	fmt.Fprintf(&b, " \\\n  %s TREE MIRROR\n", r.suite)
	b.WriteString("mkfs.ext4 " + strings.Join(mkfsArgs, " ") + " -d TREE " + DiskName + " <tree size + 256 MiB>\n")
	for _, f := range r.files {
		if f.dir {
			fmt.Fprintf(&b, "\n== dir %s %04o\n", f.path, f.mode)
			continue
		}
		fmt.Fprintf(&b, "\n== file %s %04o\n%s", f.path, f.mode, f.content)
	}
	for _, f := range r.generated {
		fmt.Fprintf(&b, "\n== generated at build time: %s %04o\n", f.path, f.mode)
	}
	return b.String()
}

func (r *recipe) inputs() Inputs {
	return Inputs{
		"version": []byte(fmt.Sprint(recipeVersion)),
		"recipe":  []byte(r.render()),
		"mirror":  []byte(r.mirror),
	}
}

// build makes the rootfs artefacts in tmp.
func (r *recipe) build(ctx context.Context, tmp string) error {
	stage := filepath.Join(tmp, "stage")
	tree := filepath.Join(tmp, "tree")
	if err := r.stage(ctx, tmp, stage); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, RecipeName), []byte(r.render()), 0o644); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(tmp, BuildLogName), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()

	args := append([]string{}, r.options...)
	args = append(args,
		"--customize-hook=sync-in "+stage+" /",
		"--customize-hook="+r.script,
		r.suite, tree, r.mirror)
	start := time.Now()
	if err := run(ctx, logf, "mmdebstrap", args...); err != nil {
		return err // with the log's last lines; the caller keeps the log
	}
	fmt.Fprintf(logf, "\n# mmdebstrap took %s\n", time.Since(start).Round(time.Second))

	size, err := treeSize(tree)
	if err != nil {
		return err
	}
	size = (size + diskHeadroomBytes + 1<<20 - 1) &^ (1<<20 - 1)
	disk := filepath.Join(tmp, DiskName)
	args = append(append([]string{}, mkfsArgs...), "-d", tree, disk, fmt.Sprintf("%dk", size>>10))
	if err := run(ctx, logf, "mkfs.ext4", args...); err != nil {
		return err // with the log's last lines; the caller keeps the log
	}
	if err := os.Chmod(disk, 0o444); err != nil {
		return err
	}
	if err := removeTree(tree); err != nil {
		return err
	}
	return removeTree(stage)
}

// stage writes the recipe's files and the generated keys into stage (the
// sync-in source), and copies the public keys and client key to tmp.
func (r *recipe) stage(ctx context.Context, tmp, stage string) error {
	// stage itself becomes the guest's "/" in sync-in's tar, mode included.
	if err := os.Mkdir(stage, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		return err
	}
	put := func(f stagedFile, content []byte) error {
		p := filepath.Join(stage, filepath.FromSlash(f.path))
		if f.dir {
			if err := os.Mkdir(p, f.mode); err != nil {
				return err
			}
		} else if err := os.WriteFile(p, content, f.mode); err != nil {
			return err
		}
		return os.Chmod(p, f.mode) // umask must not change what the guest gets
	}
	for _, f := range r.files {
		if err := put(f, []byte(f.content)); err != nil {
			return fmt.Errorf("stage %s: %w", f.path, err)
		}
	}

	keys := filepath.Join(tmp, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		return err
	}
	hostKey := filepath.Join(keys, "host")
	clientKey := filepath.Join(tmp, ClientKeyName)
	for _, k := range []struct{ path, comment string }{
		{hostKey, "cca-testbed guest host key"},
		{clientKey, "cca-testbed client"},
	} {
		if err := run(ctx, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k.comment, "-f", k.path); err != nil {
			return fmt.Errorf("generate %s: %w", k.comment, err)
		}
	}
	if err := os.Chmod(clientKey, 0o600); err != nil {
		return err
	}
	read := func(p string) []byte { b, _ := os.ReadFile(p); return b }
	mid := make([]byte, 16)
	if _, err := rand.Read(mid); err != nil {
		return err
	}
	gen := map[string][]byte{
		"etc/machine-id":                   []byte(hex.EncodeToString(mid) + "\n"),
		"etc/ssh/ssh_host_ed25519_key":     read(hostKey),
		"etc/ssh/ssh_host_ed25519_key.pub": read(hostKey + ".pub"),
		"root/.ssh/authorized_keys":        read(clientKey + ".pub"),
	}
	for _, f := range r.generated {
		c, ok := gen[f.path]
		if !ok || len(c) == 0 {
			return fmt.Errorf("stage %s: nothing generated for it", f.path)
		}
		if err := put(f, c); err != nil {
			return fmt.Errorf("stage %s: %w", f.path, err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, HostKeyPubName), read(hostKey+".pub"), 0o644); err != nil {
		return err
	}
	return removeTree(keys)
}

// treeSize adds up the space the tree needs: file sizes rounded up to 4 KiB
// blocks, plus one block per directory and symlink.
func treeSize(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += (info.Size() + 4095) &^ 4095
			return nil
		}
		n += 4096
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure %s: %w", root, err)
	}
	return n, nil
}
