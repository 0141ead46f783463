package main

import (
	"context"
	"flag"
	"strings"

	"cca-testbed/cell"
	"cca-testbed/series"
)

// registerSeries adds --variant-from to a command that brings cells up.
func (o *backendOptions) registerSeries(fs *flag.FlagSet) {
	fs.StringVar(&o.variantFrom, "variant-from", "", "a patch series run as a variant: a series directory (recipe, quilt series, format-patch files), an mbox, or GIT-TREE:A..B (README, \"Bring your own series\"); needs real boots")
}

// loadSeries reads --variant-from, checks that it applies, and registers
// it as a variant named after the series, so cells name it like a
// built-in one. Without --variant or a cell argument (nargs), the run
// covers the series alone.
// A series is always booted for real: the emulated model knows only the
// built-in variants' code.
func (o *backendOptions) loadSeries(ctx context.Context, sel *selection, nargs int) error {
	if o.variantFrom == "" {
		return nil
	}
	if o.set("backend") && o.name != "qemu" {
		return usagef("--variant-from: the emulated backend models only the built-in variants; a series is built and booted for real (drop --backend %s)", o.name)
	}
	o.name = "qemu"
	r, err := series.Read(ctx, o.variantFrom)
	if err != nil {
		return usagef("--variant-from: %v", err)
	}
	unregister, err := cell.Register(cell.VariantInfo{Name: cell.Variant(r.Name), Description: "series: " + r.Summary(), DACheck: r.DACheck})
	if err != nil {
		return usagef("--variant-from %s: %v", o.variantFrom, err)
	}
	o.unregister = append(o.unregister, unregister)
	if o.recipes == nil {
		o.recipes = map[cell.Variant]*series.Recipe{}
	}
	o.recipes[cell.Variant(r.Name)] = r
	if sel != nil && sel.variants == "" && nargs == 0 {
		sel.variants = r.Name
	}
	return nil
}

// unloadSeries forgets the variants loadSeries registered.
func (o *backendOptions) unloadSeries() {
	for _, f := range o.unregister {
		f()
	}
	o.unregister = nil
}

// seriesCell reads a cell whose variant came from a series in the
// testbed boot that started it (--variant-from): ssh does not read the
// series again, the session names the cell. parseErr is returned when
// the name is not even shaped like a cell.
func seriesCell(name string, parseErr error) (cell.Cell, error) {
	v, rest, ok := strings.Cut(name, "/")
	if !ok {
		return cell.Cell{}, parseErr
	}
	probe, err := cell.Parse(string(cell.Platform) + "/" + rest)
	if err != nil {
		return cell.Cell{}, err
	}
	// Register checks the name is valid and not a built-in one.
	unregister, err := cell.Register(cell.VariantInfo{Name: cell.Variant(v)})
	if err != nil {
		return cell.Cell{}, parseErr
	}
	unregister()
	probe.Variant = cell.Variant(v)
	return probe, nil
}
