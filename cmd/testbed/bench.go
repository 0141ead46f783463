package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"cca-testbed/cell"
	"cca-testbed/checks"
	"cca-testbed/emulated"
	"cca-testbed/matrix"
	"cca-testbed/vm"
)

// runBench measures what the README's performance section reports, one
// logfmt line per figure so CI can keep them:
//
//	bench what=emulated-matrix cells=35 runs=20 median=12ms min=11ms
//	bench what=to-kernel cell=platform/realm runs=3 median=0.2s min=0.2s   (QEMU start to "Booting Linux")
//	bench what=boot-to-ssh cell=platform/realm runs=3 median=8.1s min=7.9s
//	bench what=cell cell=platform/realm ...      (boot, snapshot, stop)
//	bench what=two-in-flight cells=2 wall=...
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", "[flags]   (emulated matrix timing; with --boots N also real boots)", stdout)
	var bo backendOptions
	bo.register(fs.FlagSet)
	runs := fs.Int("runs", 20, "emulated matrix runs")
	boots := fs.Int("boots", 0, "real boots of --cell to time (0: emulated only)")
	cellName := fs.String("cell", "platform/realm", "cell to boot")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// --backend picks what is timed beyond the emulated matrix: qemu
	// needs boots to time, emulated has none.
	switch {
	case fs.NArg() != 0:
		return usagef("bench: takes no arguments (the cell is --cell), got %q", fs.Arg(0))
	case bo.set("backend") && bo.name == "qemu" && *boots <= 0:
		return usagef("bench: --backend qemu times real boots: give their number with --boots N")
	case bo.set("backend") && bo.name == "emulated" && *boots > 0:
		return usagef("bench: --boots %d boots under QEMU: use --backend qemu or drop --backend emulated", *boots)
	case bo.set("backend") && bo.name != "qemu" && bo.name != "emulated":
		return usagef("bench: unknown backend %q (known: emulated, qemu)", bo.name)
	case *boots > 0:
		bo.name = "qemu"
	}
	if err := bo.check(); err != nil {
		return err
	}
	c, err := cell.Parse(*cellName)
	if err != nil {
		return usagef("bench: --cell: %v", err)
	}
	if *boots <= 0 && *cellName != fs.Lookup("cell").DefValue {
		return usagef("bench: --cell %s is booted only with --boots N", c)
	}
	cells := cell.Matrix()
	emu := &backend{Backend: emulated.Backend{}}
	var times []time.Duration
	for range max(*runs, 1) {
		start := time.Now()
		if _, err := matrix.Run(ctx, emu, cells, matrix.Options{Parallel: 4, Expectations: checks.Default()}); err != nil {
			return err
		}
		times = append(times, time.Since(start))
	}
	fmt.Fprintf(stdout, "bench what=emulated-matrix cells=%d runs=%d %s\n", len(cells), len(times), stats(times))
	if *boots <= 0 {
		return nil
	}
	b, err := bo.backend(ctx, stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := b.prepare(ctx, []cell.Cell{c}); err != nil {
		return cellErr(c, err)
	}
	fmt.Fprintf(stdout, "bench what=prepare cell=%s wall=%s\n", c, time.Since(start).Round(time.Millisecond))
	var toSSH, toKernel, whole []time.Duration
	for range *boots {
		start := time.Now()
		inst, err := b.Start(ctx, c)
		if err != nil {
			return cellErr(c, err)
		}
		toSSH = append(toSSH, inst.(*vm.Instance).BootToSSH)
		toKernel = append(toKernel, inst.(*vm.Instance).ToKernel)
		if _, err := matrix.Snapshot(ctx, inst); err != nil {
			inst.Close()
			return cellErr(c, err)
		}
		if err := inst.Close(); err != nil {
			return cellErr(c, err)
		}
		whole = append(whole, time.Since(start))
	}
	fmt.Fprintf(stdout, "bench what=to-kernel cell=%s runs=%d %s\n", c, len(toKernel), stats(toKernel))
	fmt.Fprintf(stdout, "bench what=boot-to-ssh cell=%s runs=%d %s\n", c, len(toSSH), stats(toSSH))
	fmt.Fprintf(stdout, "bench what=cell cell=%s runs=%d %s\n", c, len(whole), stats(whole))
	start = time.Now()
	if _, err := matrix.Run(ctx, b, []cell.Cell{c, c}, matrix.Options{Parallel: 2}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bench what=two-in-flight cell=%s wall=%s\n", c, time.Since(start).Round(100*time.Millisecond))
	return nil
}

func stats(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	round := func(d time.Duration) time.Duration {
		if d > time.Second {
			return d.Round(100 * time.Millisecond)
		}
		return d.Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("median=%s min=%s max=%s", round(s[len(s)/2]), round(s[0]), round(s[len(s)-1]))
}
