package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"cca-testbed/cell"
	"cca-testbed/emulated"
	"cca-testbed/images"
	"cca-testbed/internal/progress"
	"cca-testbed/internal/timeout"
	"cca-testbed/matrix"
	"cca-testbed/qemu"
	"cca-testbed/rmi"
	"cca-testbed/series"
	"cca-testbed/vm"
)

// backendOptions are the flags every command that brings cells up shares.
type backendOptions struct {
	name         string
	profile      string
	machine      string
	firmware     string
	realmConduit string
	hostConduit  string
	cache        string
	bootTimeout  time.Duration
	scale        string
	verbose      bool
	// runDir keeps each qemu cell's run directory (set by --out).
	runDir string
	// resume starts kept cells from their saved boot (testbed boot).
	resume bool
	// fs tells which flags the user set (check).
	fs *flag.FlagSet
	// variantFrom is --variant-from; recipes the series it named
	// (loadSeries), keyed by their variant names.
	variantFrom string
	recipes     map[cell.Variant]*series.Recipe
	unregister  []func()
}

func (o *backendOptions) register(fs *flag.FlagSet) {
	o.fs = fs
	fs.StringVar(&o.name, "backend", "emulated", "emulated (instant, modelled driver core) or qemu (real boots)")
	fs.StringVar(&o.profile, "firmware-profile", "", "rmi firmware profile for every cell instead of the role's own (e.g. rmm-2.0)")
	fs.StringVar(&o.machine, "machine", qemu.ProfileVirt, "qemu machine profile: virt (emulated RMI answers) or rme (real TF-A + TF-RMM, needs --firmware)")
	fs.StringVar(&o.firmware, "firmware", "", "TF-A + TF-RMM flash.bin: for every cell with --machine rme, and for cells on real firmware (VARIANT/host@tf-rmm-0.9) instead of their build")
	fs.StringVar(&o.realmConduit, "realm-conduit", "firmware", "how realm cells get RSI answers on --machine virt: firmware (the realm firmware below the kernel, over SMC) or cmdline (the model's answers on the kernel command line for the project's glue, as before; stock cannot use it)")
	fs.StringVar(&o.hostConduit, "host-conduit", "firmware", "how host-da/host-noda cells of recipe and series kernels get RMI answers on --machine virt: firmware (the testbed's firmware in host mode below the kernel, over SMC) or none (a plain virt machine under QEMU's PSCI, as before: nothing answers)")
	fs.StringVar(&o.cache, "cache", "", "image and kernel cache (default $CCA_TESTBED_CACHE or $XDG_CACHE_HOME/cca-testbed)")
	fs.DurationVar(&o.bootTimeout, "boot-timeout", 0, "deadline from QEMU start to SSH (default 3m, scaled by --timeout-scale)")
	scaleFlag(fs, &o.scale)
	fs.BoolVar(&o.verbose, "v", false, "log builds, boots and QEMU's console to stderr")
}

// backend wraps a matrix.Backend with what the CLI needs around it.
type backend struct {
	matrix.Backend
	DefaultParallel int
	Instant         bool // no progress lines: cells take microseconds
	// prepare builds what cells need before the first boot (may be nil).
	prepare func(ctx context.Context, cells []cell.Cell) error
	// progress is shared by the backend's phases and the runner's, so
	// every line counts from the same start.
	progress *progress.Writer
}

// qemuOnly are the flags only real boots read.
var qemuOnly = []string{"machine", "firmware", "boot-timeout", "cache", "timeout-scale"}

// set reports whether the user gave flag name.
func (o *backendOptions) set(name string) bool {
	found := false
	if o.fs != nil {
		o.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	}
	return found
}

// check refuses flags the chosen backend would ignore and values no
// backend can use, so nothing given on the command line goes unread.
func (o *backendOptions) check() error {
	if err := setScale(o.fs, o.scale); err != nil {
		return err
	}
	if o.bootTimeout < 0 {
		return usagef("--boot-timeout %s: a deadline cannot be negative (leave it out for the default, 3m scaled)", o.bootTimeout)
	}
	if o.name == "emulated" {
		for _, f := range qemuOnly {
			if o.set(f) {
				return usagef("--%s: the emulated backend boots nothing and would ignore it; add --backend qemu or drop --%s", f, f)
			}
		}
	}
	return nil
}

// onlyQemu is for commands that always boot for real (boot): --backend
// may name qemu, nothing else.
func (o *backendOptions) onlyQemu(cmd string) error {
	if o.set("backend") && o.name != "qemu" {
		return usagef("%s: --backend %s: %s always boots under QEMU (leave --backend out)", cmd, o.name, cmd)
	}
	o.name = "qemu"
	return nil
}

func (o *backendOptions) backend(ctx context.Context, stderr io.Writer) (*backend, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.profile != "" {
		if _, err := rmi.LookupProfile(o.profile); err != nil {
			return nil, usagef("--firmware-profile: %v", err)
		}
	}
	if o.realmConduit != "firmware" && o.realmConduit != "cmdline" {
		return nil, usagef("--realm-conduit %q: use firmware or cmdline", o.realmConduit)
	}
	if o.hostConduit != "firmware" && o.hostConduit != "none" {
		return nil, usagef("--host-conduit %q: use firmware or none", o.hostConduit)
	}
	switch o.name {
	case "emulated":
		return &backend{Backend: emulated.Backend{Profile: o.profile}, DefaultParallel: 4, Instant: true}, nil
	case "qemu":
		return o.qemuBackend(stderr)
	}
	return nil, usagef("unknown backend %q (known: emulated, qemu)", o.name)
}

func (o *backendOptions) qemuBackend(stderr io.Writer) (*backend, error) {
	c, err := images.Open(o.cache)
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	pw := progress.New(stderr)
	c.Log = logger
	lb, err := vm.New(vm.Options{
		Cache: c, FirmwareProfile: o.profile, Machine: o.machine, Firmware: o.firmware,
		RunDir: o.runDir, Resume: o.resume, BootTimeout: o.bootTimeout, Logger: logger,
		CmdlineRealm: o.realmConduit == "cmdline", PlainHost: o.hostConduit == "none",
		Progress: pw.Phase, Recipes: o.recipes,
	})
	if errors.Is(err, qemu.ErrFirmware) {
		return nil, usagef("--firmware: %v", err)
	}
	if err != nil {
		return nil, err
	}
	// Two VMs with one vCPU each nearly double throughput on two cores
	// (DESIGN.md: 8.2-8.6 s each side by side, 7.2 s alone).
	return &backend{Backend: lb, DefaultParallel: 2, progress: pw, prepare: func(ctx context.Context, cells []cell.Cell) error {
		defer pw.Done()
		return lb.Prepare(ctx, cells)
	}}, nil
}

// scaleFlag registers --timeout-scale.
func scaleFlag(fs *flag.FlagSet, v *string) {
	fs.StringVar(v, "timeout-scale", "", fmt.Sprintf("multiply every deadline by this factor, %g to %g (default $%s, else 1)", timeout.Min, timeout.Max, timeout.Env))
}

// setScale makes --timeout-scale, when given, or else the environment
// variable the factor of every deadline; a malformed one is a usage error
// before any work, never a silent 1.
func setScale(fs *flag.FlagSet, flagValue string) error {
	given := false
	if fs != nil {
		fs.Visit(func(f *flag.Flag) { given = given || f.Name == "timeout-scale" })
	}
	f, err := timeout.FromEnv()
	if given {
		if f, err = timeout.Parse(flagValue); err != nil {
			return usagef("--timeout-scale %q: %v", flagValue, err)
		}
	}
	if err != nil {
		return usagef("%v (or give --timeout-scale)", err)
	}
	return timeout.Set(f)
}

// cacheDir is --cache, or the default cache directory.
func cacheDir(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	return images.DefaultDir()
}
