package main

import (
	"context"
	"fmt"
	"io"

	"cca-testbed/cell"
)

// runPrepare builds, into the cache, everything the named cells need to
// boot (rootfs, kernels, firmware) and boots nothing. make test runs it
// before go test, so cold builds are not charged to one test binary's
// timeout, and a nightly can warm the cache before its boots start.
func runPrepare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("prepare", "[CELL...] [--variant V --role R --userspace U] [flags]", stdout)
	var sel selection
	sel.register(fs.FlagSet)
	var bo backendOptions
	bo.register(fs.FlagSet)
	bo.registerSeries(fs.FlagSet)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := bo.onlyQemu("prepare"); err != nil {
		return err
	}
	if err := bo.loadSeries(ctx, &sel, fs.NArg()); err != nil {
		return err
	}
	defer bo.unloadSeries()
	var cells []cell.Cell
	for _, a := range fs.Args() {
		c, err := cell.Parse(a)
		if err != nil {
			return usagef("prepare: %v", err)
		}
		cells = append(cells, c)
	}
	// Named cells alone, or the selection (the whole matrix when empty).
	if len(cells) == 0 || sel != (selection{}) {
		more, err := sel.cells()
		if err != nil {
			return err
		}
		cells = append(cells, more...)
	}
	b, err := bo.backend(ctx, stderr)
	if err != nil {
		return err
	}
	if err := b.prepare(ctx, cells); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "prepared %d cells\n", len(cells))
	return nil
}
