package qemu

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./qemu -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test ./qemu -update and review the diff)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestCmdline(t *testing.T) {
	base := Config{Kernel: "/cache/Image", Append: "console=ttyAMA0 root=/dev/vda rw", Dir: "/run/vm1"}
	with := func(f func(*Config)) Config {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		port int
	}{
		{"virt-default", base, 40022},
		{"virt-disks", with(func(c *Config) {
			c.Disks = []Disk{{Path: "/cache/rootfs.qcow2", Format: "qcow2"}, {Path: "/cache/extra,1.img", ReadOnly: true}}
		}), 40023},
		{"virt-kvm-smp", with(func(c *Config) {
			c.Accel, c.SMP, c.MemoryMB, c.Binary, c.CPU = "kvm", 2, 2048, "/opt/qemu/bin/qemu-system-aarch64", "host"
		}), 40024},
		{"virt-paused-loadvm-extra", with(func(c *Config) {
			c.Paused, c.LoadVM, c.HostFwd = true, "booted", 2222
			c.Extra = []string{"-d", "guest_errors"}
			c.Append = "console=ttyAMA0 panic=-1 -- init.arg"
		}), 40025},
		{"virt-dir-with-comma", with(func(c *Config) { c.Dir = "/run/a,b" }), 40026},
		{"rme", with(func(c *Config) {
			c.Profile, c.Firmware, c.MemoryMB = ProfileRME, "/fw/flash.bin", 2048
			c.Disks = []Disk{{Path: "/cache/host.qcow2", Format: "qcow2"}}
		}), 40027},
		{"realm", with(func(c *Config) {
			c.Profile, c.Firmware, c.RSITable = ProfileRealm, "/cache/realmfw/realm-fw.bin", "/run/vm1/rsi-table.bin"
			c.Disks = []Disk{{Path: "/run/vm1/overlay.qcow2", Format: "qcow2"}, {Path: "/cache/modules.ext4", ReadOnly: true}}
		}), 40028},
		// Debian's prebuilt kernel needs its initramfs on every profile.
		{"virt-initrd", with(func(c *Config) { c.Initrd = "/cache/initrd.img" }), 40029},
		{"realm-initrd", with(func(c *Config) {
			c.Profile, c.Firmware, c.RSITable = ProfileRealm, "/cache/realmfw/realm-fw.bin", "/run/vm1/rsi-table.bin"
			c.Initrd, c.InitrdSize = "/cache/initrd.img", 38748270
			c.Append = "console=ttyAMA0 -- init.arg"
		}), 40030},
		{"rme-initrd", with(func(c *Config) {
			c.Profile, c.Firmware = ProfileRME, "/fw/flash.bin"
			c.Initrd, c.InitrdSize = "/cache/initrd.img", 4096
		}), 40031},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			argv, err := Cmdline(tc.cfg, tc.port)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "cmdline-"+tc.name+".txt", strings.Join(argv, "\n")+"\n")
			// Properties every command line must have, whatever the golden says.
			joined := strings.Join(argv, " ")
			for _, must := range []string{"-nodefaults", "-no-reboot", "-display none", "panic=-1", "hostfwd=tcp:127.0.0.1:", "-chardev file,id=con,path=", "server=on,wait=off"} {
				if !strings.Contains(joined, must) {
					t.Errorf("command line lacks %q:\n%s", must, joined)
				}
			}
			if strings.Contains(joined, "0.0.0.0") {
				t.Errorf("command line listens beyond loopback:\n%s", joined)
			}
		})
	}
}

func TestCmdlineDiskOrder(t *testing.T) {
	cfg := Config{Kernel: "/k", Dir: "/d", Disks: []Disk{{Path: "/first"}, {Path: "/second"}, {Path: "/third"}}}
	argv, err := Cmdline(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	var drives []string
	for i, a := range argv {
		if a == "-drive" {
			drives = append(drives, argv[i+1])
		}
	}
	want := []string{"if=none,id=d0,file=/first,format=raw", "if=none,id=d1,file=/second,format=raw", "if=none,id=d2,file=/third,format=raw"}
	if strings.Join(drives, " ") != strings.Join(want, " ") {
		t.Errorf("got drives %v, want %v", drives, want)
	}
}

func TestCmdlineErrors(t *testing.T) {
	ok := Config{Kernel: "/k", Dir: "/d"}
	with := func(f func(*Config)) Config {
		c := ok
		f(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		port int
		is   error
		msg  string
	}{
		{"unknown profile", with(func(c *Config) { c.Profile = "pc" }), 1, ErrConfig, `unknown profile "pc"`},
		{"no kernel", with(func(c *Config) { c.Kernel = "" }), 1, ErrConfig, "Kernel is empty"},
		{"no dir", with(func(c *Config) { c.Dir = "" }), 1, ErrConfig, "Dir is empty"},
		{"long dir", with(func(c *Config) { c.Dir = "/" + strings.Repeat("x", 100) }), 1, ErrConfig, "too long for a unix socket"},
		{"rme without firmware", with(func(c *Config) { c.Profile = ProfileRME }), 1, ErrFirmware, "FIP at 0x40000"},
		{"realm without firmware", with(func(c *Config) { c.Profile, c.RSITable = ProfileRealm, "/t" }), 1, ErrFirmware, "realm firmware binary"},
		{"realm without table", with(func(c *Config) { c.Profile, c.Firmware = ProfileRealm, "/f" }), 1, ErrConfig, "wants one exactly when"},
		{"realm initrd without size", with(func(c *Config) { c.Profile, c.Firmware, c.RSITable, c.Initrd = ProfileRealm, "/f", "/t", "/i" }), 1, ErrConfig, "InitrdSize 0"},
		{"table without realm", with(func(c *Config) { c.RSITable = "/t" }), 1, ErrConfig, "wants one exactly when"},
		{"realm with other memory", with(func(c *Config) { c.Profile, c.Firmware, c.RSITable, c.MemoryMB = ProfileRealm, "/f", "/t", 1024 }), 1, ErrConfig, "needs MemoryMB 3072"},
		{"realm under kvm", with(func(c *Config) { c.Profile, c.Firmware, c.RSITable, c.Accel = ProfileRealm, "/f", "/t", "kvm" }), 1, ErrConfig, "runs only under tcg"},
		{"virt with firmware", with(func(c *Config) { c.Firmware = "/fw" }), 1, ErrConfig, "boots without firmware"},
		{"rme under kvm", with(func(c *Config) { c.Profile, c.Firmware, c.Accel = ProfileRME, "/fw", "kvm" }), 1, ErrConfig, "only under tcg"},
		{"bad accel", with(func(c *Config) { c.Accel = "hvf" }), 1, ErrConfig, `Accel "hvf"`},
		{"bad format", with(func(c *Config) { c.Disks = []Disk{{Path: "/d.vmdk", Format: "vmdk"}} }), 1, ErrDisk, `Format "vmdk"`},
		{"disk without path", with(func(c *Config) { c.Disks = []Disk{{Format: "raw"}} }), 1, ErrDisk, "has no Path"},
		{"bad host port", ok, 0, ErrConfig, "host port 0"},
		{"bad guest port", with(func(c *Config) { c.HostFwd = 70000 }), 1, ErrConfig, "HostFwd 70000"},
		{"negative smp", with(func(c *Config) { c.SMP = -1 }), 1, ErrConfig, "must not be negative"},
		{"bad loadvm tag", with(func(c *Config) { c.LoadVM = "a b" }), 1, ErrConfig, "LoadVM tag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Cmdline(tc.cfg, tc.port)
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want an error wrapping %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %q, want it to say %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message is not one line: %q", err)
			}
		})
	}
}

func TestEnsurePanic(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "panic=-1"},
		{"console=ttyAMA0", "console=ttyAMA0 panic=-1"},
		{"console=ttyAMA0 panic=-1", "console=ttyAMA0 panic=-1"},
		{"panic=0 quiet", "panic=0 quiet panic=-1"},
		{"panic=-1 panic=10", "panic=-1 panic=10 panic=-1"},
		{"root=/dev/vda -- panic=5", "root=/dev/vda panic=-1 -- panic=5"},
		{"  a   b  ", "a b panic=-1"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := EnsurePanic(tc.in); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestReproduceRecreatesOverlay: reproduce.sh is whole as qemu writes it:
// a run removes its overlay, so the script makes it again over the
// Backing image (with the real qemu-img) before it starts QEMU.
func TestReproduceRecreatesOverlay(t *testing.T) {
	r, err := resolve(Config{Kernel: "/cache/Image", Append: "console=ttyAMA0 root=/dev/vda", Dir: "/run/vm1",
		Disks: []Disk{{Path: "/run/vm1/root.qcow2", Format: "qcow2", Backing: "/cache/rootfs/root.img"}, {Path: "/cache/modules.img", ReadOnly: true}}})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "reproduce-overlay.sh", reproduceScript(r, 40022))

	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatalf("qemu-img: %v (scripts/setup-host installs qemu-utils)", err)
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base image.raw")
	if err := os.WriteFile(base, make([]byte, 1<<20), 0o444); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, "run", "root.qcow2")
	if err := os.Mkdir(filepath.Dir(overlay), 0o700); err != nil {
		t.Fatal(err)
	}
	// QEMU itself is /bin/true here: the test is the lines before it.
	r, err = resolve(Config{Binary: "/bin/true", Kernel: "/cache/Image", Dir: filepath.Dir(overlay),
		Disks: []Disk{{Path: overlay, Format: "qcow2", Backing: base}}})
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, Reproduce)
	if err := os.WriteFile(script, []byte(reproduceScript(r, 40022)), 0o700); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second run finds the overlay and keeps it
		if out, err := exec.Command(script).CombinedOutput(); err != nil {
			t.Fatalf("run %d: %s: %v: %s", i, script, err, out)
		}
		out, err := exec.Command("qemu-img", "info", "--output=json", overlay).Output()
		if err != nil {
			t.Fatalf("run %d: no overlay made: %v", i, err)
		}
		if !strings.Contains(string(out), `"backing-filename": "`+base+`"`) || !strings.Contains(string(out), `"format": "qcow2"`) {
			t.Errorf("run %d: overlay is not a qcow2 over %s: %s", i, base, out)
		}
	}
}

func TestReproduceScript(t *testing.T) {
	r, err := resolve(Config{Kernel: "/cache/Image", Append: "console=ttyAMA0 root=/dev/vda", Dir: "/run/vm1",
		Disks: []Disk{{Path: "/cache/root.qcow2", Format: "qcow2"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := reproduceScript(r, 40022)
	golden(t, "reproduce.sh", s)
	if strings.Contains(s, "qmp") || strings.Contains(s, ConsoleLog) {
		t.Errorf("reproduce.sh must not reuse the QMP socket or the console log:\n%s", s)
	}
}
