package vm

import (
	"context"
	"strings"
	"testing"

	"cca-testbed/cell"
	"cca-testbed/matrix"
	"cca-testbed/series"
	"cca-testbed/variants"
)

// TestRecipeUserspace boots the faux-tree recipe with one more udev rule
// in its userspace part, keyed on the faux arm-smccc device, which the
// SMCCC core creates at device_initcall, long before userspace: only
// udev's coldplug replays its add event, so the rule's marker proves the
// rule was in /etc/udev/rules.d before coldplug. The kernel is
// faux-tree's own build (the part is not in the kernel's key), the
// modules disk another copy with both rules, and the cell grades exactly
// as faux-tree/realm.
func TestRecipeUserspace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ft, ok, err := variants.Recipe(cell.FauxTree)
	if err != nil || !ok {
		t.Fatalf("faux-tree recipe: %v %v", ok, err)
	}
	const rule = `ACTION=="add", SUBSYSTEM=="faux", KERNEL=="arm-smccc", RUN+="/bin/sh -c 'echo %k >/run/cca-testbed-coldplug'"` + "\n"
	r := *ft
	r.Userspace = append([]series.UserspaceFile{{GuestPath: "/etc/udev/rules.d/50-cca-testbed.rules", Data: []byte(rule)}}, ft.Userspace...)
	c := mustCell(t, "faux-tree/realm")
	b := newBackend(t, Options{Recipes: map[cell.Variant]*series.Recipe{cell.FauxTree: &r}})
	if err := b.Prepare(ctx, []cell.Cell{c}); err != nil {
		t.Fatal(err)
	}
	k, err := b.kernel(ctx, c.Variant)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := newBackend(t, Options{}).kernel(ctx, c.Variant)
	if err != nil {
		t.Fatal(err)
	}
	if k.Image != plain.Image || k.ModulesDisk == plain.ModulesDisk {
		t.Errorf("kernel %+v, faux-tree's own %+v: want its Image and another modules disk", k, plain)
	}
	inst, err := b.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	li := inst.(*Instance)
	// matrix.Run waits for the boot and udev's coldplug to finish (SSH
	// comes up before the modules disk is even mounted).
	results, err := matrix.Run(ctx, reuse{b, inst}, []cell.Cell{c}, matrix.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gradedAsExpected(t, results[0])
	sh := li.SSH()
	got, err := sh.ReadFile(ctx, "/etc/udev/rules.d/50-cca-testbed.rules")
	if err != nil || string(got) != rule {
		t.Errorf("guest's rule = %q, %v; want %q", got, err, rule)
	}
	marker, err := sh.ReadFile(ctx, "/run/cca-testbed-coldplug")
	if err != nil || strings.TrimSpace(string(marker)) != "arm-smccc" {
		t.Errorf("coldplug marker = %q, %v; want arm-smccc (the rule did not act at coldplug)", marker, err)
	}
}
