// Package vm is the real backend (--backend qemu): it brings cells up as
// QEMU VMs. For a cell it builds, or finds in the cache, the variant's
// kernel (images/kernel) and the userspace's root file system (images),
// asks the rmi model what the firmware answers, and boots QEMU on a
// copy-on-write overlay: realm cells on the realm firmware
// (firmware/realm), which answers RSI over SMC from a table written from
// the model; other cells with the model's answers on the kernel command
// line. It then dials SSH with the host key pinned at image build, and installs the
// snapshot helper. Backend implements matrix.Backend, so the runner reads a
// real guest exactly as it reads the emulated one.
//
// Tests: go test ./vm boots real cells under QEMU (TCG); the first run
// builds a kernel and a rootfs into the cache (about 10 minutes on 2 cores).
package vm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"

	"cca-testbed/cell"
	"cca-testbed/firmware/realm"
	"cca-testbed/guest"
	"cca-testbed/images"
	"cca-testbed/images/firmware"
	"cca-testbed/images/kernel"
	"cca-testbed/internal/timeout"
	"cca-testbed/matrix"
	"cca-testbed/qemu"
	"cca-testbed/rmi"
	"cca-testbed/series"
	"cca-testbed/snapshot"
	"cca-testbed/variants"
)

// BaseCmdline is what every cell's kernel boots with before the firmware
// answers: the root disk, the console the watcher reads, a panic that ends
// QEMU at once, and eth0 configured by the kernel itself so sshd needs no
// network service.
const BaseCmdline = "root=/dev/vda rw rootwait console=ttyAMA0 panic=-1 ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off"

// HelperPath is where the snapshot helper is installed in the guest.
const HelperPath = snapshot.HelperDir + "/" + snapshot.HelperName

// Options configure a Backend. The zero value boots the role's own firmware
// profile on the virt machine with the default cache, keeping nothing.
type Options struct {
	// Cache holds images and kernels; nil opens images.DefaultDir().
	Cache *images.Cache
	// RepoRoot is this checkout (for the snapshot helper's build); ""
	// searches upward from the working directory for go.mod.
	RepoRoot string
	// FirmwareProfile overrides every role's rmi profile ("rmm-2.0").
	FirmwareProfile string
	// Machine is the qemu profile of the model's cells: qemu.ProfileVirt
	// (default) or qemu.ProfileRME, which needs Firmware and answers with
	// real SMCs. Cells on real firmware (cell.Cell.Firmware) always boot
	// the RME machine.
	Machine string
	// Firmware is a user-supplied TF-A + TF-RMM flash image: with
	// Machine rme for every cell, and for real-firmware cells instead of
	// their build.
	Firmware string
	// FirmwareImage returns the flash image of a real firmware build;
	// nil builds it with images/firmware into Cache.
	FirmwareImage func(ctx context.Context, f cell.Firmware) (string, error)
	// RunDir keeps each cell's run directory (console.log, cmdline.txt,
	// reproduce.sh, ssh_config) under RunDir/<cell>, or <cell>.2 and on
	// while a live instance (of any process) holds that one; "" uses
	// temporary directories removed on Close.
	RunDir string
	// TempDir is where those temporary run directories go; "" is the
	// system's ($TMPDIR or /tmp). Backends in one process can so keep
	// their run directories apart (the vm tests boot in parallel).
	TempDir string
	// BootTimeout bounds QEMU start to a working SSH session; 0 means
	// 3 minutes scaled by timeout.Scale (TCG boots take 7-10 s, more when two
	// run on two cores beside a build).
	BootTimeout time.Duration
	// Resume (with RunDir) keeps each cell's overlay with a snapshot of
	// the booted guest (QMP savevm) and, next time, starts from it with
	// -loadvm instead of booting: re-entry in about a second. Only for
	// the virt machine: realm guests cannot be migrated.
	Resume bool
	// ExtraCmdline is appended to the kernel command line (fault tests).
	ExtraCmdline string
	// CmdlineRealm boots realm cells the way the testbed did before the
	// realm firmware: a plain virt machine with the model's answers on
	// the kernel command line for the project's glue. The default (false)
	// boots them on qemu.ProfileRealm with the realm firmware below the
	// kernel, which answers RSI from a table written from the model.
	CmdlineRealm bool
	// PlainHost boots the model's host cells of recipe and series kernels
	// the way the testbed did before the firmware's host mode: a plain
	// virt machine under QEMU's PSCI, where nothing answers their RMI
	// calls (boot-time comparisons). The default (false) boots them on
	// qemu.ProfileRealm with the firmware in host mode answering RMI
	// from the model.
	PlainHost bool
	// RSITable, when set, replaces the table written from the model with
	// these bytes (fault tests: a table the firmware must refuse).
	RSITable []byte
	// Logger receives lifecycle records; nil discards.
	Logger *slog.Logger
	// Progress, when set, hears each phase of each cell.
	Progress func(subject, phase string)
	// Recipes are the variants read from patch series for this run
	// (--variant-from): their kernels come from kernel.BuildSeries.
	Recipes map[cell.Variant]*series.Recipe
}

// Backend boots cells under QEMU.
type Backend struct {
	opts Options
	mu   sync.Mutex
	// helper is the snapshot helper binary, built once.
	helper []byte
	// realmFW is the realm firmware binary's path, built once.
	realmFW string
}

var (
	_ matrix.Backend     = (*Backend)(nil)
	_ matrix.BootFailure = (*qemu.BootError)(nil)
)

// New returns a Backend; nothing is built until Prepare or Start.
func New(opts Options) (*Backend, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Cache == nil {
		c, err := images.Open("")
		if err != nil {
			return nil, err
		}
		opts.Cache = c
	}
	if opts.RepoRoot == "" {
		root, err := repoRoot()
		if err != nil {
			return nil, err
		}
		opts.RepoRoot = root
	}
	if opts.RunDir != "" {
		// Run directories end up in ssh_config and reproduce.sh, which
		// must work from any directory.
		abs, err := filepath.Abs(opts.RunDir)
		if err != nil {
			return nil, err
		}
		opts.RunDir = abs
	}
	opts.Machine = cmp.Or(opts.Machine, qemu.ProfileVirt)
	if opts.Machine != qemu.ProfileVirt && opts.Machine != qemu.ProfileRME {
		// The realm profile is picked per cell (realm cells on virt).
		return nil, fmt.Errorf("%w: machine %q: use %s (realm cells then boot through the realm firmware) or %s", qemu.ErrConfig, opts.Machine, qemu.ProfileVirt, qemu.ProfileRME)
	}
	if opts.Machine == qemu.ProfileRME || opts.Firmware != "" {
		if err := qemu.CheckFirmware(opts.Firmware); err != nil {
			return nil, err
		}
	}
	if opts.FirmwareImage == nil {
		opts.FirmwareImage = buildFirmware(opts.Cache, opts.Logger)
	}
	if opts.FirmwareProfile != "" {
		if _, err := rmi.LookupProfile(opts.FirmwareProfile); err != nil {
			return nil, err
		}
	}
	if opts.BootTimeout <= 0 {
		opts.BootTimeout = timeout.Scaled(3 * time.Minute)
	}
	return &Backend{opts: opts}, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s: run the testbed from its checkout", dir)
		}
	}
}

// Name implements matrix.Backend.
func (*Backend) Name() string { return "qemu" }

func (b *Backend) progress(subject, phase string) {
	b.opts.Logger.Info(phase, "cell", subject)
	if b.opts.Progress != nil {
		b.opts.Progress(subject, phase)
	}
}

// Prepare builds what cells need before any boots: the helper, then
// three lanes at once, so that a cold cache keeps both cores busy: the
// built kernels one after another (they share one build directory and
// take turns anyway); Debian's prebuilt kernel, whose installation in an
// emulated arm64 chroot runs on one core for minutes; and each
// userspace's rootfs and the firmware, whose downloads and package
// installs overlap the compiles. Start builds lazily too; Prepare makes
// the wait visible and keeps builds out of boot deadlines. The first
// error cancels the other lanes and is the one returned.
func (b *Backend) Prepare(ctx context.Context, cells []cell.Cell) error {
	if _, err := b.helperBinary(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lanes := []func(context.Context, []cell.Cell) error{
		func(ctx context.Context, cells []cell.Cell) error { return b.prepareKernels(ctx, cells, false) },
		func(ctx context.Context, cells []cell.Cell) error { return b.prepareKernels(ctx, cells, true) },
		b.prepareImages,
	}
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, lane := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lane(ctx, cells); err != nil {
				// The lane that failed first names the cause; the others
				// only saw the cancel.
				once.Do(func() { first = err })
				cancel()
			}
		}()
	}
	wg.Wait()
	return first
}

// prepareKernels builds each variant's kernel in the cells' order: the
// prebuilt ones (Debian's) or the others.
func (b *Backend) prepareKernels(ctx context.Context, cells []cell.Cell, prebuilt bool) error {
	seen := map[cell.Variant]bool{}
	for _, c := range cells {
		if !seen[c.Variant] && cell.Prebuilt(c.Variant) == prebuilt {
			seen[c.Variant] = true
			b.progress(string(c.Variant), "kernel")
			if _, err := b.kernel(ctx, c.Variant); err != nil {
				return err
			}
		}
	}
	return nil
}

// prepareImages builds the rootfs of each userspace and the firmware the
// cells boot.
func (b *Backend) prepareImages(ctx context.Context, cells []cell.Cell) error {
	seenU, seenF, realm := map[cell.Userspace]bool{}, map[cell.Firmware]bool{}, false
	for _, c := range cells {
		if !seenU[c.Userspace] {
			seenU[c.Userspace] = true
			b.progress(string(c.Userspace), "rootfs")
			if _, err := images.BuildRootfs(ctx, b.opts.Cache, c.Userspace); err != nil {
				return err
			}
		}
	}
	for _, c := range cells {
		if c.Real() && !seenF[c.Firmware] {
			seenF[c.Firmware] = true
			b.progress(string(c.Firmware), "firmware")
			if _, err := b.flash(ctx, c); err != nil {
				return err
			}
		}
		if b.machine(c) == qemu.ProfileRealm && !realm {
			realm = true
			b.progress("realm", "firmware")
			if _, err := b.firmware(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// machine is the qemu profile cell c boots on: realm cells go through the
// realm firmware unless the backend is on another machine or told to use
// the command line; the model's host cells of a kernel without the glue
// (cell.OnHostFirmware) go through the same firmware in host mode (the
// table says which), unless told to boot them on the plain machine.
func (b *Backend) machine(c cell.Cell) string {
	if c.Real() {
		return qemu.ProfileRME
	}
	if b.opts.Machine == qemu.ProfileVirt && c.Role == cell.Realm && !b.opts.CmdlineRealm {
		return qemu.ProfileRealm
	}
	if b.opts.Machine == qemu.ProfileVirt && c.OnHostFirmware() && !b.opts.PlainHost {
		return qemu.ProfileRealm
	}
	return b.opts.Machine
}

// flash is the TF-A + TF-RMM image an rme-machine cell boots: the user's
// --firmware image, else the cell's real firmware build.
func (b *Backend) flash(ctx context.Context, c cell.Cell) (string, error) {
	if b.opts.Firmware != "" || !c.Real() {
		return b.opts.Firmware, nil
	}
	flash, err := b.opts.FirmwareImage(ctx, c.Firmware)
	if err != nil {
		return "", fmt.Errorf("%s: firmware %s is not available on this machine: %w", c, c.Firmware, err)
	}
	return flash, nil
}

func (b *Backend) firmware(ctx context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.realmFW != "" {
		return b.realmFW, nil
	}
	p, err := realm.Build(ctx, b.opts.Cache)
	if err != nil {
		return "", err
	}
	b.realmFW = p
	return p, nil
}

// rsiTable is the firmware's table for cell c, from its firmware
// profile's model: a realm table for a realm, a host-mode table (RMI
// answers) for a host on the firmware.
func (b *Backend) rsiTable(c cell.Cell) ([]byte, error) {
	if b.opts.RSITable != nil {
		return b.opts.RSITable, nil
	}
	p, err := rmi.LookupProfile(cmp.Or(b.opts.FirmwareProfile, c.FirmwareProfile()))
	if err != nil {
		return nil, err
	}
	t, err := realm.NewTable(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	return t.Bytes()
}

func (b *Backend) kernel(ctx context.Context, v cell.Variant) (*kernel.Kernel, error) {
	if cell.Prebuilt(v) {
		return kernel.BuildDebian(ctx, kernel.Options{Cache: b.opts.Cache, Log: b.opts.Logger})
	}
	if r, ok := b.opts.Recipes[v]; ok {
		return kernel.BuildSeries(ctx, kernel.Options{Cache: b.opts.Cache, Log: b.opts.Logger}, r)
	}
	if r, ok, err := variants.Recipe(v); err != nil || ok {
		if err != nil {
			return nil, err
		}
		return kernel.BuildSeries(ctx, kernel.Options{Cache: b.opts.Cache, Log: b.opts.Logger}, r)
	}
	return kernel.Build(ctx, kernel.Options{Cache: b.opts.Cache, Log: b.opts.Logger}, v)
}

func (b *Backend) helperBinary(ctx context.Context) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.helper != nil {
		return b.helper, nil
	}
	p, err := images.BuildHelper(ctx, b.opts.Cache, b.opts.RepoRoot)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	b.helper = data
	return data, nil
}

// Cmdline is the kernel command line cell c boots with, and the conduit
// that answers its firmware calls.
func (b *Backend) Cmdline(c cell.Cell) (cmdline, conduit string, err error) {
	if err := c.Check(); err != nil {
		return "", "", err
	}
	base := BaseCmdline + prebuiltParams(c.Variant)
	if b.machine(c) == qemu.ProfileRME {
		return base, "smc", nil // real TF-RMM answers
	}
	name := cmp.Or(b.opts.FirmwareProfile, c.FirmwareProfile())
	p, err := rmi.LookupProfile(name)
	if err != nil {
		return "", "", err
	}
	if b.machine(c) == qemu.ProfileRealm {
		// The kernel asks the firmware over SMC, as upstream does.
		if c.OnHostFirmware() {
			return base, "hostfw:" + p.Name, nil
		}
		return base, "realmfw:" + p.Name, nil
	}
	if cell.Unglued(c.Variant) {
		return base, "none", nil // no glue reads the command line
	}
	_, table := rmi.Probe(rmi.New(p))
	return BaseCmdline + " " + table.Cmdline(), "emulated-rmi:" + p.Name, nil
}

// DebianNetParams bring eth0 up for a distribution's kernel, which has no
// IP_PNP and so ignores ip= (Debian's initramfs-tools configures the
// network only for NFS roots): the guest's own systemd-network-generator
// turns the same ip= into a .network file and systemd-networkd applies
// it, both from the rootfs's systemd, asked for on the command line
// (systemd.wants=, the debug generator) so the image stays the same for
// every variant. net.ifnames=0 keeps udev from renaming eth0 (virtio_net
// is a module there, loaded by udev before anything configures it).
const DebianNetParams = " net.ifnames=0 systemd.wants=systemd-network-generator.service systemd.wants=systemd-networkd.service"

func prebuiltParams(v cell.Variant) string {
	if cell.Prebuilt(v) {
		return DebianNetParams
	}
	return ""
}

// Start boots cell c and returns it once SSH works and the helper is in
// place. Each step registers the undoing of what it made as soon as it has
// made it; on any failure Close runs those in reverse order, so nothing
// started so far is left behind.
func (b *Backend) Start(ctx context.Context, c cell.Cell) (_ matrix.Instance, err error) {
	in, err := b.inputs(ctx, c)
	if err != nil {
		return nil, err
	}
	inst := &Instance{cell: c, keep: b.opts.RunDir != "", keepOverlay: b.canResume() && in.machine == qemu.ProfileVirt,
		meta: snapshot.Meta{Backend: "qemu", Conduit: in.conduit, Userspace: string(c.Userspace), Kernel: in.kernel.Release,
			Firmware: b.opts.FirmwareProfile, RealFirmware: string(c.Firmware)}}
	defer func() {
		if err != nil {
			err = errors.Join(err, inst.Close())
		}
	}()
	for _, step := range []func(context.Context, *Instance, *bootInputs) error{
		b.makeRunDir, b.launch, b.dial, b.saveBoot, b.installHelper,
	} {
		if err := step(ctx, inst, in); err != nil {
			return nil, err
		}
	}
	inst.ready = true
	b.progress(c.String(), "ready")
	return inst, nil
}

// bootInputs is what a cell boots from, all built or found in the cache
// before anything is started.
type bootInputs struct {
	helper []byte
	rootfs *images.Rootfs
	kernel *kernel.Kernel
	// ssh is the session's pinned host key and client key; dial adds the
	// address.
	ssh     guest.SSHConfig
	cmdline string
	conduit string
	// machine is the qemu profile; firmware its -bios (b.opts.Firmware,
	// or the realm firmware), table the realm firmware's RSI table.
	machine, firmware string
	table             []byte
	// resume is what a saved boot must have been booted from to be resumed.
	resume resumeState
}

func (b *Backend) inputs(ctx context.Context, c cell.Cell) (*bootInputs, error) {
	helper, err := b.helperBinary(ctx)
	if err != nil {
		return nil, err
	}
	rootfs, err := images.BuildRootfs(ctx, b.opts.Cache, c.Userspace)
	if err != nil {
		return nil, err
	}
	k, err := b.kernel(ctx, c.Variant)
	if err != nil {
		return nil, err
	}
	hostKey, err := guest.ParseHostKey(rootfs.HostKey)
	if err != nil {
		return nil, fmt.Errorf("%s: rootfs host key: %w", c, err)
	}
	cmdline, conduit, err := b.Cmdline(c)
	if err != nil {
		return nil, err
	}
	if b.opts.ExtraCmdline != "" {
		cmdline += " " + b.opts.ExtraCmdline
	}
	machine, fw := b.machine(c), ""
	if machine == qemu.ProfileRME {
		if fw, err = b.flash(ctx, c); err != nil {
			return nil, err
		}
	}
	var table []byte
	if machine == qemu.ProfileRealm {
		if fw, err = b.firmware(ctx); err != nil {
			return nil, err
		}
		if table, err = b.rsiTable(c); err != nil {
			return nil, err
		}
	}
	return &bootInputs{helper: helper, rootfs: rootfs, kernel: k, cmdline: cmdline, conduit: conduit,
		machine: machine, firmware: fw, table: table,
		ssh:    guest.SSHConfig{KeyPath: rootfs.ClientKeyPath, HostKey: hostKey, Logger: b.opts.Logger},
		resume: resumeState{Image: k.Image, Initrd: k.Initrd, Modules: k.ModulesDisk, Rootfs: rootfs.Disk, Cmdline: cmdline}}, nil
}

// makeRunDir makes the cell's run directory: a kept one under RunDir
// (cleared unless it holds a boot to resume), else a temporary one.
func (b *Backend) makeRunDir(_ context.Context, i *Instance, in *bootInputs) error {
	if !i.keep {
		dir, err := os.MkdirTemp(b.opts.TempDir, "cca-testbed-"+i.cell.FileName()+"-")
		if err != nil {
			return err
		}
		i.dir = dir
		i.cleanup.push(func() error { return os.RemoveAll(dir) })
		return nil
	}
	// The directory is this instance's alone until Close (rundir.go): the
	// same cell twice gets <cell>.2, never the first one's files.
	dir, release, err := claimRunDir(b.opts.RunDir, i.cell.FileName())
	if err != nil {
		return fmt.Errorf("%s: run directory: %w", i.cell, err)
	}
	i.dir = dir
	i.cleanup.push(release)
	i.resumed = i.keepOverlay && readResume(i.dir) == in.resume
	if !i.resumed {
		if err := clearDir(i.dir); err != nil {
			return fmt.Errorf("%s: clearing the earlier run from %s: %w", i.cell, i.dir, err)
		}
	}
	if i.resumed {
		// Do not resume next time from a saved boot that just failed.
		resume := filepath.Join(i.dir, resumeFile)
		i.cleanup.push(func() error {
			if i.ready {
				return nil
			}
			if err := os.Remove(resume); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		})
	}
	return nil
}

// launch makes the disk overlay (or reuses the saved one) and starts QEMU.
func (b *Backend) launch(ctx context.Context, i *Instance, in *bootInputs) error {
	name := i.cell.String()
	b.progress(name, "boot")
	i.base, i.hostKey = in.rootfs.Disk, in.rootfs.HostKey
	loadvm := ""
	if i.resumed {
		i.overlay, loadvm = filepath.Join(i.dir, images.OverlayName), savedTag
		b.progress(name, "resume from the saved boot")
	} else {
		overlay, err := images.Overlay(ctx, in.rootfs.Disk, i.dir)
		if err != nil {
			return err
		}
		i.overlay = overlay
		if !(i.keepOverlay && i.keep) {
			i.cleanup.push(func() error {
				if err := os.Remove(overlay); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
				return nil
			})
		}
	}
	rsiTable := ""
	if in.table != nil {
		// In the run directory, which reproduce.sh loads it from.
		rsiTable = filepath.Join(i.dir, RSITableName)
		if err := os.WriteFile(rsiTable, in.table, 0o600); err != nil {
			return err
		}
	}
	// The VM lives until Close, not until this call's ctx ends; a
	// cancelled run still stops it through Close.
	v, err := qemu.Start(context.WithoutCancel(ctx), qemu.Config{
		Profile:  in.machine,
		Firmware: in.firmware,
		RSITable: rsiTable,
		Kernel:   in.kernel.Image,
		Initrd:   in.kernel.Initrd,
		Append:   in.cmdline,
		Disks: []qemu.Disk{
			{Path: i.overlay, Format: "qcow2", Backing: i.base},
			{Path: in.kernel.ModulesDisk, Format: "raw", ReadOnly: true},
		},
		Dir:    i.dir,
		LoadVM: loadvm,
	}, qemu.Options{Logger: b.opts.Logger, Name: name})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	i.vm, i.tfa = v, in.machine == qemu.ProfileRME
	i.cleanup.push(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout.Scaled(30*time.Second))
		defer cancel()
		if err := v.Stop(ctx); err != nil {
			return fmt.Errorf("stopping qemu: %w", err)
		}
		return nil
	})
	return nil
}

// dial waits, within the boot deadline, for an SSH session with the pinned
// host key, and writes the ssh_config that reaches the guest by hand.
func (b *Backend) dial(ctx context.Context, i *Instance, in *bootInputs) error {
	bootCtx, cancel := context.WithTimeout(ctx, b.opts.BootTimeout)
	defer cancel()
	start := time.Now()
	i.sshCfg = in.ssh
	i.sshCfg.Addr, i.sshCfg.Abort, i.sshCfg.AbortErr = i.vm.SSHAddr(), i.vm.Exited(), i.vm.Err
	s, err := guest.DialSSH(bootCtx, i.sshCfg)
	if err != nil {
		return i.bootError(err)
	}
	i.ssh = s
	i.cleanup.push(func() error {
		if err := s.Close(); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("closing ssh: %w", err)
		}
		return nil
	})
	i.BootToSSH = time.Since(start)
	if at := i.vm.StageAt("kernel"); !at.IsZero() {
		i.ToKernel = at.Sub(start)
	}
	if i.tfa {
		// The RMM's own version line: which firmware answered, in its words.
		i.meta.RMMVersion = i.vm.StageLine("RMM")
	}
	if i.cell.Real() {
		// A --firmware image of another build would be compared with the
		// wrong model: the RMM's own line must name the cell's version.
		want := "RMM v." + strings.TrimPrefix(string(i.cell.Firmware), "tf-rmm-") + "."
		if !strings.Contains(i.meta.RMMVersion, want) {
			return fmt.Errorf("%s: the firmware's RMM announced %q, not %q: boot this cell on its own build", i.cell, i.meta.RMMVersion, want)
		}
	}
	b.progress(i.cell.String(), fmt.Sprintf("ssh after %.1fs", i.BootToSSH.Seconds()))
	return i.writeSSHConfig(in.rootfs.ClientKeyPath)
}

// saveBoot saves a freshly booted guest in its kept overlay (QMP savevm)
// so the next Start can resume it; other cells skip it.
func (b *Backend) saveBoot(ctx context.Context, i *Instance, in *bootInputs) error {
	if !i.keepOverlay || i.resumed {
		return nil
	}
	// Settle first so the saved guest has finished booting.
	if _, err := i.ssh.Run(ctx, snapshot.StepNamed(snapshot.StepBoot).Argv...); err != nil {
		return fmt.Errorf("%s: waiting for boot before saving it: %w", i.cell, err)
	}
	if err := i.vm.SaveVM(ctx, savedTag); err != nil {
		return fmt.Errorf("%s: saving the booted guest: %w", i.cell, err)
	}
	return writeResume(i.dir, in.resume)
}

// installHelper uploads the snapshot helper the matrix runs in the guest.
func (b *Backend) installHelper(ctx context.Context, i *Instance, in *bootInputs) error {
	if err := i.ssh.Upload(ctx, HelperPath, in.helper, 0o755); err != nil {
		return fmt.Errorf("%s: installing the snapshot helper: %w", i.cell, err)
	}
	return nil
}

// RSITableName is the realm firmware's table in a realm cell's run
// directory.
const RSITableName = "rsi-table.bin"

// Instance is one booted cell.
type Instance struct {
	cell          cell.Cell
	dir           string
	keep          bool
	overlay, base string
	keepOverlay   bool // the overlay holds a resumable saved boot
	resumed       bool // this boot started from the saved one
	ready         bool // Start returned it
	vm            *qemu.VM
	ssh           *guest.SSH
	sshCfg        guest.SSHConfig
	meta          snapshot.Meta
	tfa           bool // booted through TF-A (the rme machine)
	hostKey       []byte
	// cleanup undoes what Start made, in reverse order, on Close.
	cleanup   cleanupStack
	closeOnce sync.Once
	closeErr  error
	// BootToSSH is QEMU start to the first working SSH session.
	BootToSSH time.Duration
	// ToKernel is QEMU start to the kernel's first console line
	// ("Booting Linux"): the firmware's share of BootToSSH (0 if unseen).
	ToKernel time.Duration
}

var _ matrix.Instance = (*Instance)(nil)

// Guest implements matrix.Instance.
func (i *Instance) Guest() guest.Guest { return i.ssh }

// SSH is the guest's SSH connection (for shells and uploads).
func (i *Instance) SSH() *guest.SSH { return i.ssh }

// Meta implements matrix.Instance.
func (i *Instance) Meta() snapshot.Meta { return i.meta }

// Dir is the run directory (console.log, cmdline.txt, reproduce.sh,
// ssh_config); it outlives Close only when the Backend keeps run dirs.
func (i *Instance) Dir() string { return i.dir }

// Session says how to reach the guest: its forwarded address, the client
// key and the pinned host key (authorized_keys form).
type Session struct{ Addr, KeyPath, HostKey string }

// Session returns how to reach this instance.
func (i *Instance) Session() Session {
	return Session{Addr: i.sshCfg.Addr, KeyPath: i.sshCfg.KeyPath, HostKey: string(i.hostKey)}
}

// VM is the running QEMU.
func (i *Instance) VM() *qemu.VM { return i.vm }

// Close stops the guest and QEMU and removes what the run created: the
// overlay unless it holds a kept saved boot, the whole run directory
// unless it is kept.
func (i *Instance) Close() error {
	i.closeOnce.Do(func() { i.closeErr = i.cleanup.run() })
	return i.closeErr
}

// cleanupStack holds the undoing of each resource in the order the
// resources were made; run undoes them newest first and collects every
// error, so one failed removal does not leave the rest behind.
type cleanupStack []func() error

func (s *cleanupStack) push(f func() error) { *s = append(*s, f) }

func (s *cleanupStack) run() error {
	var errs *multierror.Error
	for k := len(*s) - 1; k >= 0; k-- {
		if err := (*s)[k](); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	*s = nil
	return errs.ErrorOrNil()
}

// bootError explains a failed bring-up with what the console showed: the
// VM's own failure (panic, QEMU exit) when there is one, else the SSH error
// with the console's last lines.
func (i *Instance) bootError(err error) error {
	where := ""
	if i.keep {
		where = " (console log: " + filepath.Join(i.dir, qemu.ConsoleLog) + ")"
	}
	if verr := i.vm.Err(); verr != nil {
		var be *qemu.BootError
		if errors.As(verr, &be) { // it says "boot failed" itself
			return fmt.Errorf("%s: %w%s", i.cell, verr, where)
		}
		return fmt.Errorf("%s: boot failed: %w%s", i.cell, verr, where)
	}
	stage := ""
	if i.tfa {
		// A hung firmware prints nothing more: say how far it got.
		switch st := i.vm.Stage(); st {
		case "":
			stage = "; the firmware printed no boot stage (BL1, BL2, BL31, RMM)"
		case "kernel":
		default:
			stage = fmt.Sprintf("; the boot stopped in the firmware after %s (%q)", st, i.vm.StageLine(st))
		}
	}
	tail := strings.TrimSpace(i.vm.ConsoleTail(5))
	return fmt.Errorf("%s: no SSH: %w%s; console ends: %s%s", i.cell, err, stage, strings.ReplaceAll(tail, "\n", " | "), where)
}

// HostAlias is the cell's name in the written ssh_config ("faux_realm",
// "faux_realm-trixie"): OpenSSH host aliases take no '/' or '@'.
func HostAlias(c cell.Cell) string { return strings.ReplaceAll(c.FileName(), "@", "-") }

// SSHConfigName is the OpenSSH client config written into the run dir:
// `ssh -F <dir>/ssh_config <cell>` reaches the guest with the pinned key.
const SSHConfigName = "ssh_config"

func (i *Instance) writeSSHConfig(keyPath string) error {
	known := filepath.Join(i.dir, "known_hosts")
	f, err := os.OpenFile(known, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = guest.WriteKnownHosts(f, i.sshCfg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	f, err = os.OpenFile(filepath.Join(i.dir, SSHConfigName), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = guest.WriteOpenSSHConfig(f, HostAlias(i.cell), i.sshCfg, keyPath, known)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// savedTag names the internal qcow2 snapshot of a booted guest.
const savedTag = "booted"

// resumeState records what a saved boot was booted from; any change (a
// rebuilt kernel or rootfs, another command line) means booting afresh.
type resumeState struct {
	Image   string
	Initrd  string `json:",omitempty"`
	Modules string
	Rootfs  string
	Cmdline string
}

const resumeFile = "resume.json"

func (b *Backend) canResume() bool {
	return b.opts.Resume && b.opts.RunDir != "" && b.opts.Machine == qemu.ProfileVirt
}

func readResume(dir string) resumeState {
	var st resumeState
	data, err := os.ReadFile(filepath.Join(dir, resumeFile))
	if err != nil || json.Unmarshal(data, &st) != nil {
		return resumeState{}
	}
	if _, err := os.Stat(filepath.Join(dir, images.OverlayName)); err != nil {
		return resumeState{}
	}
	return st
}

func writeResume(dir string, st resumeState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, resumeFile), data, 0o600)
}

// buildFirmware is the default Options.FirmwareImage: the cached build
// (images/firmware), made from the default sources if the cache lacks it.
func buildFirmware(c *images.Cache, log *slog.Logger) func(context.Context, cell.Firmware) (string, error) {
	return func(ctx context.Context, f cell.Firmware) (string, error) {
		spec, err := firmware.Lookup(string(f))
		if err != nil {
			return "", err
		}
		fw, err := firmware.Build(ctx, firmware.Options{Cache: c, Log: log}, spec)
		if err != nil {
			return "", err
		}
		return fw.Flash, nil
	}
}
