package vm

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"cca-testbed/cell"
	"cca-testbed/emulated"
	"cca-testbed/matrix"
	"cca-testbed/series"
	"cca-testbed/snapshot"
)

// TestSeriesRealm boots a series brought by a user (series/testdata/
// applies, read as --variant-from reads it) as a realm through the realm
// firmware, and asserts what its last patch changed there: the realm
// device is registered as arm-cca-demo instead of arm-cca-dev, so forky's
// systemd, which looks for arm-cca-dev, no longer detects a CVM. The
// unpatched kernel (stock/realm, TestStockRealm) shows arm-cca-dev and cca.
func TestSeriesRealm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, err := series.Read(ctx, filepath.Join("..", "series", "testdata", "applies"))
	if err != nil {
		t.Fatal(err)
	}
	unregister, err := cell.Register(cell.VariantInfo{Name: cell.Variant(r.Name), Description: "series: " + r.Summary(), DACheck: r.DACheck})
	if err != nil {
		t.Fatal(err)
	}
	defer unregister()
	c := mustCell(t, r.Name+"/realm")
	b := newBackend(t, Options{Recipes: map[cell.Variant]*series.Recipe{c.Variant: r}})
	if err := b.Prepare(ctx, []cell.Cell{c}); err != nil {
		t.Fatal(err)
	}
	inst, err := b.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	con := inst.(*Instance).VM().ConsoleTail(1000)
	if !strings.Contains(con, "RME: Using RSI version") {
		t.Error("console lacks upstream rsi.c's \"RME: Using RSI version\": the kernel did not find itself in a realm")
	}
	s, err := matrix.Snapshot(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Lookup(snapshot.KindDevice, "devices/platform/arm-cca-demo"); !ok {
		t.Error("no devices/platform/arm-cca-demo: the series' rename did not reach the realm")
	}
	if v, ok := s.Lookup(snapshot.KindModalias, "devices/platform/arm-cca-demo"); !ok || v != "platform:arm-cca-demo" {
		t.Errorf("arm-cca-demo's modalias = %q (%v), want platform:arm-cca-demo", v, ok)
	}
	if _, ok := s.Lookup(snapshot.KindDevice, "devices/platform/arm-cca-dev"); ok {
		t.Error("arm-cca-dev is registered: the kernel booted is not the series'")
	}
	if v, ok := s.Lookup(snapshot.KindCVM, "systemd-detect-virt"); !ok || v != "none" {
		t.Errorf("systemd-detect-virt = %q (%v), want none: systemd looks for arm-cca-dev", v, ok)
	}
	if s.Meta.Conduit != "realmfw:realm" || s.Meta.Kernel != "7.3.4-applies-demo" {
		t.Errorf("meta %+v: want conduit realmfw:realm, kernel 7.3.4-applies-demo", s.Meta)
	}
	// What changed against the unpatched kernel, for a reader of the log.
	model, err := emulated.Backend{}.Start(ctx, mustCell(t, "stock/realm"))
	if err != nil {
		t.Fatal(err)
	}
	stock, err := matrix.Snapshot(ctx, model)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range snapshot.Diff(stock, s) {
		t.Logf("stock/realm (model) -> %s: %s", c, ch)
	}
}
