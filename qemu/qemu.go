// Package qemu boots an arm64 Linux kernel in qemu-system-aarch64 and owns
// everything about that process: the command line (a pure function,
// Cmdline), checking the kernel, disks and RME firmware before launch,
// starting QEMU in its own process group so it can never outlive the
// testbed, talking QMP with a deadline on every call, watching the serial
// console live for panics, oopses and stalls, and stopping and reaping it.
//
// Three machine profiles exist (see Profiles): "virt", a plain virt machine
// whose CCA firmware answers come from the rmi model on the kernel command
// line; "realm", the virt machine with EL2, where the testbed's realm
// firmware (firmware/realm) runs below the kernel and answers RSI from a
// table; and "rme", the Realm Management Extension machine that needs a
// user-supplied TF-A + TF-RMM flash image.
//
// QMP is spoken by monitor (monitor.go), a small client of our own: every
// call is bounded by its context and matches its reply by id.
//
// Tests: go test ./qemu (real QEMU from scripts/setup-host; no kernel image
// needed: the VM tests start QEMU paused with a header-only dummy kernel).
// Refresh the golden command lines with go test ./qemu -run TestCmdline -update.
package qemu

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"cca-testbed/internal/shell"
)

// Profile names.
const (
	ProfileVirt = "virt" // plain virt machine, emulated RMI answers
	ProfileRME  = "rme"  // RME machine with TF-A + TF-RMM firmware (TCG only)
	// ProfileRealm: virt with EL2 and the testbed's realm firmware as
	// -bios, the RSI table and the kernel placed by -device loader.
	ProfileRealm = "realm"
)

// The realm firmware's fixed memory map (firmware/realm/README.md; its
// tests check these against the firmware's own constants): the machine has
// RealmMemoryMB of RAM, the kernel Image is loaded at RealmKernelAddr and
// the RSI table at RealmTableAddr, in RAM the kernel never reaches.
const (
	RealmMemoryMB   = 3072
	RealmKernelAddr = 0x40200000
	RealmTableAddr  = 0x80000000
)

// InitrdAddr is where the profiles that boot through firmware (realm,
// rme) place an initramfs: 128 MiB into RAM, past the DTB at its base and
// a kernel Image of up to 126 MiB at 0x40200000 (realm), below the rme
// profile's kernel at RMEKernelAddr. Their firmware passes the kernel a
// device tree without linux,initrd-*, so the kernel learns where it is
// from initrdmem= on its command line (init/do_mounts_initrd.c, read
// before arm64 reserves memory). The virt profile uses QEMU's -initrd.
const InitrdAddr = 0x48000000

// RMEKernelAddr is where the rme profile places the kernel Image: the
// TF-A flash images the testbed builds (images/firmware) take the kernel as
// BL33 preloaded there (PRELOADED_BL33_BASE), and BL31 enters it at NS-EL2.
const RMEKernelAddr = 0x60000000

// DefaultBinary is the QEMU program Start looks up in PATH.
const DefaultBinary = "qemu-system-aarch64"

// Defaults for the zero values of Config.
const (
	DefaultSMP      = 1
	DefaultMemoryMB = 1024
	DefaultHostFwd  = 22
)

// profile is one row of the machine table.
type profile struct {
	machine string
	cpu     string
	// firmware: the profile boots through -bios Config.Firmware (TF-A).
	firmware bool
	// tcgOnly: KVM cannot run it (x-rme is a TCG model of RME).
	tcgOnly bool
	// realm: the firmware is the realm firmware (any raw image), with
	// Config.RSITable and the kernel loaded into RAM beside it.
	realm bool
	// bl33 is where the kernel is loaded for firmware that enters a
	// preloaded BL33 (0: none).
	bl33 uint64
}

// profiles is the one table of machine profiles. The virt CPU is "max"
// (the newest architecture QEMU models, as the rme profile needs anyway)
// with QEMU's own pointer-authentication algorithm: the architected QARMA5
// is slow to emulate under TCG for kernels built with PTR_AUTH (distro
// and linux-cca host kernels), and nothing the testbed measures depends
// on the PAC algorithm. Measured on this 2-core TCG host (base.config
// kernel, forky rootfs, boot to the serial login prompt, other builds
// running): max,pauth-impdef=on 13.7-15.0 s, max 13.4-15.2 s, cortex-a57
// 12.8-20.7 s; kernel to /sbin/init 1.1-1.7 s for all. No CPU model is
// reliably faster (base.config has no PTR_AUTH), so "max" stays.
var profiles = map[string]profile{
	ProfileVirt: {
		machine: "virt",
		cpu:     "max,pauth-impdef=on",
	},
	ProfileRME: {
		machine:  "virt,virtualization=on,secure=on,gic-version=3",
		cpu:      "max,x-rme=on,pauth-impdef=on",
		firmware: true,
		tcgOnly:  true,
		bl33:     RMEKernelAddr,
	},
	// highmem=off keeps every device below 4 GiB, inside the realm's
	// 32-bit IPA space; its=off because a realm kernel programs the ITS
	// with protected addresses of tables it shared (DESIGN.md), so MSIs
	// never arrive and PCI falls back to INTx.
	ProfileRealm: {
		machine:  "virt,virtualization=on,highmem=off,gic-version=3,its=off",
		cpu:      "max,pauth-impdef=on",
		firmware: true,
		tcgOnly:  true,
		realm:    true,
	},
}

// Profiles lists the profile names, in a fixed order.
func Profiles() []string { return []string{ProfileVirt, ProfileRealm, ProfileRME} }

// Disk is one virtio-blk disk. Disks appear in the guest in Config order:
// the first is /dev/vda.
type Disk struct {
	Path string
	// Format is "qcow2" or "raw"; "" means "raw". Validate reports a disk
	// whose content says otherwise, so a qcow2 is never booted as raw.
	Format   string
	ReadOnly bool
	// Backing, for a qcow2 overlay, is the raw image it is over. Nothing
	// reads it at boot (the overlay names it); reproduce.sh recreates the
	// overlay from it when the overlay is gone, as a run removes its own.
	Backing string
}

// Config describes one VM. The zero value of every field but Kernel is
// usable; Start fills Dir and Accel, Cmdline needs them set or takes the
// documented defaults.
type Config struct {
	// Profile is ProfileVirt or ProfileRME; "" means ProfileVirt.
	Profile string
	// Kernel is an arm64 Image (required).
	Kernel string
	// Initrd is an initramfs to boot with ("" for none): QEMU's -initrd
	// on the virt profile; placed at InitrdAddr and named to the kernel
	// by initrdmem= on the profiles that boot through firmware.
	Initrd string
	// InitrdSize is Initrd's size in bytes, which initrdmem= needs; Start
	// fills it from the file, Cmdline alone needs it set.
	InitrdSize int64
	// Append is the kernel command line. Cmdline makes sure it ends up
	// with panic=-1, so a guest panic reboots and -no-reboot ends QEMU.
	// The console is the PL011 (ttyAMA0), which the virt machine's device
	// tree already names as stdout-path, so console= is optional.
	Append string
	// Disks are attached as virtio-blk in order (first = /dev/vda).
	Disks []Disk
	// Firmware is the TF-A + TF-RMM flash.bin for ProfileRME, the realm
	// firmware binary for ProfileRealm.
	Firmware string
	// RSITable is the realm firmware's RSI table (ProfileRealm only).
	RSITable string
	// SMP is the number of vCPUs; 0 means DefaultSMP (1: two one-vCPU VMs
	// on two host cores nearly double throughput, DESIGN.md).
	SMP int
	// MemoryMB is the guest RAM; 0 means DefaultMemoryMB.
	MemoryMB int
	// Dir is the per-VM run directory (mode 0700) holding qmp.sock,
	// console.log, cmdline.txt and reproduce.sh. Start creates it if
	// missing; "" makes Start use a fresh temporary directory that Stop
	// removes unless Options.KeepDir.
	Dir string
	// HostFwd is the guest TCP port forwarded from a free loopback port
	// (VM.SSHAddr); 0 means DefaultHostFwd (22, sshd).
	HostFwd int
	// Binary is the QEMU program; "" means DefaultBinary, looked up in PATH.
	Binary string
	// CPU overrides the profile's -cpu value; "" means the profile's.
	CPU string
	// Accel is "kvm" or "tcg"; "" means Start picks kvm when /dev/kvm is
	// usable for an arm64 guest (an arm64 host) and tcg otherwise, and
	// Cmdline alone (which never probes the host) takes tcg. The rme
	// profile is always tcg.
	Accel string
	// Paused starts the vCPUs stopped (-S) until a QMP "cont".
	Paused bool
	// LoadVM restores the internal snapshot with this tag (-loadvm); the
	// first disk must be the qcow2 that holds it.
	LoadVM string
	// Extra arguments are appended verbatim after everything else.
	Extra []string
}

// Files inside Config.Dir.
const (
	QMPSocket   = "qmp.sock"
	ConsoleLog  = "console.log"
	CmdlineFile = "cmdline.txt"
	Reproduce   = "reproduce.sh"
)

// sunPathMax is the room for a unix socket path (sun_path minus its NUL).
const sunPathMax = 107

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// resolved is a Config with every default filled in.
type resolved struct {
	Config
	prof profile
}

func resolve(cfg Config) (resolved, error) {
	r := resolved{Config: cfg}
	if r.Profile == "" {
		r.Profile = ProfileVirt
	}
	p, ok := profiles[r.Profile]
	if !ok {
		return r, fmt.Errorf("%w: unknown profile %q (known: %s)", ErrConfig, r.Profile, strings.Join(Profiles(), ", "))
	}
	r.prof = p
	if r.Kernel == "" {
		return r, fmt.Errorf("%w: Kernel is empty: set it to an arm64 Image", ErrConfig)
	}
	if p.realm && r.Firmware == "" {
		return r, fmt.Errorf("%w: profile %s needs Firmware: the realm firmware binary (firmware/realm.Build)", ErrFirmware, r.Profile)
	}
	if p.firmware && r.Firmware == "" {
		return r, fmt.Errorf("%w: profile %s needs Firmware: %s", ErrFirmware, r.Profile, firmwareWant)
	}
	if r.Initrd != "" && p.firmware && r.InitrdSize <= 0 {
		return r, fmt.Errorf("%w: InitrdSize %d: profile %s names the initramfs to the kernel by address and size (Start fills it)", ErrConfig, r.InitrdSize, r.Profile)
	}
	if p.realm != (r.RSITable != "") {
		return r, fmt.Errorf("%w: RSITable %q: profile %s wants one exactly when it is %s", ErrConfig, r.RSITable, r.Profile, ProfileRealm)
	}
	if !p.firmware && r.Firmware != "" {
		return r, fmt.Errorf("%w: Firmware is set but profile %s boots without firmware; use profile %s or clear Firmware", ErrConfig, r.Profile, ProfileRME)
	}
	if r.Dir == "" {
		return r, fmt.Errorf("%w: Dir is empty: Cmdline needs the run directory (Start makes one)", ErrConfig)
	}
	if n := len(filepath.Join(r.Dir, QMPSocket)); n > sunPathMax {
		return r, fmt.Errorf("%w: Dir %q is too long for a unix socket (%d > %d bytes): use a shorter run directory", ErrConfig, r.Dir, n, sunPathMax)
	}
	if r.SMP == 0 {
		r.SMP = DefaultSMP
	}
	if r.MemoryMB == 0 {
		r.MemoryMB = DefaultMemoryMB
		if p.realm {
			r.MemoryMB = RealmMemoryMB
		}
	}
	if p.realm && r.MemoryMB != RealmMemoryMB {
		return r, fmt.Errorf("%w: profile %s needs MemoryMB %d (the firmware's memory map), not %d", ErrConfig, r.Profile, RealmMemoryMB, r.MemoryMB)
	}
	if r.SMP < 0 || r.MemoryMB < 0 {
		return r, fmt.Errorf("%w: SMP %d and MemoryMB %d must not be negative", ErrConfig, r.SMP, r.MemoryMB)
	}
	if r.HostFwd == 0 {
		r.HostFwd = DefaultHostFwd
	}
	if r.HostFwd < 0 || r.HostFwd > 65535 {
		return r, fmt.Errorf("%w: HostFwd %d is not a TCP port", ErrConfig, r.HostFwd)
	}
	if r.Binary == "" {
		r.Binary = DefaultBinary
	}
	if r.CPU == "" {
		r.CPU = p.cpu
	}
	switch r.Accel {
	case "":
		r.Accel = "tcg"
	case "tcg", "kvm":
	default:
		return r, fmt.Errorf("%w: Accel %q: want kvm, tcg or empty", ErrConfig, r.Accel)
	}
	if p.tcgOnly && r.Accel != "tcg" {
		return r, fmt.Errorf("%w: profile %s runs only under tcg (x-rme is a TCG model), not %s", ErrConfig, r.Profile, r.Accel)
	}
	if r.LoadVM != "" && !tagRE.MatchString(r.LoadVM) {
		return r, fmt.Errorf("%w: LoadVM tag %q: use letters, digits, '_', '.', '-'", ErrConfig, r.LoadVM)
	}
	r.Disks = make([]Disk, len(cfg.Disks))
	for i, d := range cfg.Disks {
		if d.Path == "" {
			return r, fmt.Errorf("%w: disk %d has no Path", ErrDisk, i)
		}
		switch d.Format {
		case "":
			d.Format = "raw"
		case "raw", "qcow2":
		default:
			return r, fmt.Errorf("%w: disk %s: Format %q: want qcow2 or raw", ErrDisk, d.Path, d.Format)
		}
		r.Disks[i] = d
	}
	return r, nil
}

// accelArg is the -accel value. Multi-threaded TCG gives each vCPU its own
// host thread; QEMU picks it by default for arm64 guests on x86 hosts, but
// saying so keeps the command line honest when SMP > 1.
func accelArg(accel string) string {
	if accel == "tcg" {
		return "tcg,thread=multi"
	}
	return accel
}

// Cmdline returns the full QEMU argv (argv[0] is Config.Binary or
// DefaultBinary) for cfg with SSH forwarded from 127.0.0.1:hostPort. It
// touches nothing on the host: Validate checks the files, Start probes
// for KVM and picks the port.
func Cmdline(cfg Config, hostPort int) ([]string, error) {
	r, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	if hostPort <= 0 || hostPort > 65535 {
		return nil, fmt.Errorf("%w: host port %d is not a TCP port", ErrConfig, hostPort)
	}
	return r.argv(consoleFile, strconv.Itoa(hostPort)), nil
}

type consoleMode int

const (
	consoleFile  consoleMode = iota // console.log + QMP socket (what Start runs)
	consoleStdio                    // serial and HMP on the terminal (reproduce.sh)
)

// argv builds the command line; port is a string so reproduce.sh can pass
// a shell expansion.
func (r resolved) argv(mode consoleMode, port string) []string {
	a := []string{r.Binary,
		"-nodefaults", "-no-reboot", "-display", "none",
		"-M", r.prof.machine,
		"-cpu", r.CPU,
		"-accel", accelArg(r.Accel),
		"-smp", strconv.Itoa(r.SMP),
		"-m", strconv.Itoa(r.MemoryMB),
	}
	if r.prof.firmware {
		a = append(a, "-bios", r.Firmware)
	}
	if r.prof.bl33 != 0 {
		// With -bios, -kernel only carries -append into the device
		// tree; BL31 jumps to the Image where the loader puts it.
		a = append(a, "-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", optEscape(r.Kernel), r.prof.bl33))
	}
	if r.prof.realm {
		// With -bios, -kernel only reaches fw_cfg (and -append the
		// device tree), so the Image is placed where the firmware
		// enters it; the table goes to the firmware's own RAM.
		a = append(a,
			"-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", optEscape(r.RSITable), RealmTableAddr),
			"-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", optEscape(r.Kernel), RealmKernelAddr))
	}
	appendArgs := r.Append
	if r.Initrd != "" && r.prof.firmware {
		a = append(a, "-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", optEscape(r.Initrd), InitrdAddr))
		appendArgs = addParam(appendArgs, fmt.Sprintf("initrdmem=%#x,%d", InitrdAddr, r.InitrdSize))
	}
	switch mode {
	case consoleFile:
		a = append(a,
			"-chardev", "file,id=con,path="+optEscape(filepath.Join(r.Dir, ConsoleLog)),
			"-serial", "chardev:con",
			"-qmp", "unix:"+optEscape(filepath.Join(r.Dir, QMPSocket))+",server=on,wait=off")
	case consoleStdio:
		// mon:stdio multiplexes the HMP monitor: Ctrl-A c toggles, Ctrl-A x quits.
		a = append(a, "-serial", "mon:stdio")
	}
	for i, d := range r.Disks {
		drive := fmt.Sprintf("if=none,id=d%d,file=%s,format=%s", i, optEscape(d.Path), d.Format)
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		a = append(a, "-drive", drive, "-device", fmt.Sprintf("virtio-blk-pci,drive=d%d", i))
	}
	// romfile= (empty) drops the iPXE option ROM: -kernel boots need no
	// PXE, and QEMU then does not depend on the ipxe-qemu package.
	a = append(a,
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%s-:%d", port, r.HostFwd),
		"-device", "virtio-net-pci,netdev=n0,romfile=",
		// Entropy for the guest, so sshd never waits on the crng.
		"-device", "virtio-rng-pci",
		"-kernel", r.Kernel,
	)
	if r.Initrd != "" && !r.prof.firmware {
		a = append(a, "-initrd", r.Initrd)
	}
	a = append(a, "-append", EnsurePanic(appendArgs))
	if r.Paused {
		a = append(a, "-S")
	}
	if r.LoadVM != "" {
		a = append(a, "-loadvm", r.LoadVM)
	}
	return append(a, r.Extra...)
}

// optEscape doubles commas, QEMU's escape inside a key=value,... option.
func optEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// EnsurePanic returns the kernel command line with panic=-1 in force: it
// is appended (before any " -- " init arguments) unless the last panic=
// already says -1. The kernel honours the last panic= it reads, so a
// caller's panic=0, which would leave a dead guest spinning until a
// timeout, is overridden.
func EnsurePanic(cmdline string) string {
	f := strings.Fields(cmdline)
	end := len(f)
	for i, w := range f {
		if w == "--" {
			end = i
			break
		}
	}
	last := ""
	for _, w := range f[:end] {
		if v, ok := strings.CutPrefix(w, "panic="); ok {
			last = v
		}
	}
	if last == "-1" {
		return strings.Join(f, " ")
	}
	out := append(append(append([]string{}, f[:end]...), "panic=-1"), f[end:]...)
	return strings.Join(out, " ")
}

// addParam adds a kernel parameter before any " -- " init arguments.
func addParam(cmdline, param string) string {
	f := strings.Fields(cmdline)
	end := len(f)
	for i, w := range f {
		if w == "--" {
			end = i
			break
		}
	}
	out := append(append(append([]string{}, f[:end]...), param), f[end:]...)
	return strings.Join(out, " ")
}

// reproduceScript is reproduce.sh: the same VM with the serial console and
// monitor on the terminal, SSH on $PORT, and no QMP socket (so it can run
// beside the original); an overlay that is gone is made again over its
// Backing image first.
func reproduceScript(r resolved, port int) string {
	const placeholder = "@@PORT@@"
	argv := r.argv(consoleStdio, placeholder)
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	b.WriteString("# Boots the same VM by hand: serial console on this terminal\n")
	b.WriteString("# (Ctrl-A x quits, Ctrl-A c toggles the QEMU monitor), SSH forwarded\n")
	fmt.Fprintf(&b, "# from 127.0.0.1:$PORT to guest port %d. Written by the cca-testbed qemu package.\n", r.HostFwd)
	fmt.Fprintf(&b, "PORT=${PORT:-%d}\n", port)
	for _, d := range r.Disks {
		if d.Backing != "" {
			fmt.Fprintf(&b, "[ -e %s ] || qemu-img create -q -f qcow2 -F raw -b %s %s || exit 1\n",
				shell.Word(d.Path), shell.Word(d.Backing), shell.Word(d.Path))
		}
	}
	b.WriteString("exec")
	for _, s := range argv {
		b.WriteString(" ")
		if strings.Contains(s, placeholder) {
			pre, post, _ := strings.Cut(s, placeholder)
			b.WriteString(shell.Word(pre) + `"$PORT"` + shell.Word(post))
			continue
		}
		b.WriteString(shell.Word(s))
	}
	b.WriteString("\n")
	return b.String()
}
