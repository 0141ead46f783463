package variants

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"cca-testbed/cell"
	"cca-testbed/images"
	"cca-testbed/series"
)

// TestKnownToCell: every recipe is a built-in variant of cell, described
// there by its recipe's summary (what `testbed variants` and the report
// show, provenance included), and every variant cell says is built from a
// recipe has one here.
func TestKnownToCell(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("no recipes embedded")
	}
	for v, r := range all {
		if !cell.FromRecipe(v) {
			t.Errorf("%s: cell does not mark it as built from a recipe", v)
		}
		var info cell.VariantInfo
		for _, vi := range cell.Variants {
			if vi.Name == v {
				info = vi
			}
		}
		if want := "recipe: " + r.Summary(); info.Description != want {
			t.Errorf("%s: cell's description\n %q\nwant the recipe's\n %q", v, info.Description, want)
		}
		// Every built-in recipe says how its host side decides DA.
		if r.DACheck == "" || info.DACheck != r.DACheck {
			t.Errorf("%s: da-check: recipe %q, cell %q; want the recipe's, and stated", v, r.DACheck, info.DACheck)
		}
		// A recipe without patches (stock) is a distro's source package as
		// shipped: its version names it, there is no commit of ours. A
		// queued version names its commit, a posted one its Message-ID or,
		// where that is not known (v7), at least its version (vN).
		if p := r.Provenance; p.Who == "" || p.Version == "" || p.Date == "" ||
			(p.Commit == "" && p.MessageID == "" && !postedVersion.MatchString(p.Version) && len(r.Patches) > 0) {
			t.Errorf("%s: provenance incomplete: %+v", v, r.Provenance)
		}
	}
	for _, vi := range cell.Variants {
		if _, ok := all[vi.Name]; cell.FromRecipe(vi.Name) && !ok {
			t.Errorf("%s: cell says it is built from a recipe; variants has none", vi.Name)
		}
	}
	if _, ok, err := Recipe(cell.Platform); ok || err != nil {
		t.Errorf("Recipe(platform) = %v, %v; want no recipe", ok, err)
	}
}

// postedVersion is a series' version as posted: v7.
var postedVersion = regexp.MustCompile(`^v[0-9]+$`)

// TestOwnPatches: the patches are the project's: written by cca-testbed,
// no upstream sign-offs, each naming the queued commit or posted patch it
// models.
func TestOwnPatches(t *testing.T) {
	for v, n := range map[cell.Variant]int{cell.SMCCCBus: 4, cell.SMCCCBusNext: 5, cell.SMCCCAuxV5: 3, cell.SMCCCAuxV4: 2, cell.SMCCCAuxV4NoLegacy: 3, cell.Faux: 1, cell.FauxBuiltin: 1, cell.RFC: 4} {
		r, ok, err := Recipe(v)
		if err != nil || !ok {
			t.Fatalf("Recipe(%s) = %v, %v", v, ok, err)
		}
		if len(r.Patches) != n {
			t.Errorf("%s: %d patches, want %d", v, len(r.Patches), n)
		}
		for _, p := range r.Patches {
			if !strings.HasPrefix(p.Author, "cca-testbed") {
				t.Errorf("%s %s: author %q", v, p.Name, p.Author)
			}
			if bytes.Contains(p.Diff, []byte("Signed-off-by:")) {
				t.Errorf("%s %s: carries a Signed-off-by line", v, p.Name)
			}
			if !bytes.Contains(p.Diff, []byte("Model of ")) {
				t.Errorf("%s %s: does not name what it models", v, p.Name)
			}
		}
	}
}

// TestStock: stock is the empty recipe, Debian's source as shipped, with
// the fragment and provenance that say so.
func TestStock(t *testing.T) {
	r, ok, err := Recipe(cell.Stock)
	if err != nil || !ok {
		t.Fatalf("Recipe(%s) = %v, %v", cell.Stock, ok, err)
	}
	if len(r.Patches) != 0 || r.Base != "" || len(r.Userspace) != 0 {
		t.Errorf("%d patches, base %q, userspace %v: want linux-source-7.3 as it is", len(r.Patches), r.Base, r.Userspace)
	}
	if !strings.Contains(r.Provenance.Version, "linux-source-7.3") || r.Provenance.Source != "variants/stock" || r.Provenance.Format != "quilt" {
		t.Errorf("provenance %+v", r.Provenance)
	}
	if !bytes.Contains(r.Fragment, []byte("CONFIG_ARM_CCA_GUEST=m\n")) {
		t.Errorf("fragment lacks upstream's guest driver as a module:\n%s", r.Fragment)
	}
}

// TestFauxBuiltinSharesFaux: faux-builtin is faux's series with the guest
// driver built in, nothing else: same patches, and fragments that differ
// only in ARM_CCA_GUEST.
func TestFauxBuiltinSharesFaux(t *testing.T) {
	m, _, err := Recipe(cell.Faux)
	if err != nil {
		t.Fatal(err)
	}
	y, _, err := Recipe(cell.FauxBuiltin)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Patches) != len(y.Patches) {
		t.Fatalf("faux has %d patches, faux-builtin %d", len(m.Patches), len(y.Patches))
	}
	for i := range m.Patches {
		if !bytes.Equal(m.Patches[i].Diff, y.Patches[i].Diff) {
			t.Errorf("patch %d differs", i+1)
		}
	}
	settings := func(frag []byte) []string {
		var out []string
		for _, l := range strings.Split(string(frag), "\n") {
			if strings.HasPrefix(l, "CONFIG_") || strings.HasPrefix(l, "# CONFIG_") {
				out = append(out, l)
			}
		}
		return out
	}
	want := strings.Join(settings(m.Fragment), "\n")
	want = strings.Replace(want, "CONFIG_ARM_CCA_GUEST=m", "CONFIG_ARM_CCA_GUEST=y", 1)
	if got := strings.Join(settings(y.Fragment), "\n"); got != want || !strings.Contains(got, "CONFIG_ARM_CCA_GUEST=y") {
		t.Errorf("faux-builtin's settings\n%s\nwant faux's with ARM_CCA_GUEST=y\n%s", got, want)
	}
}

// TestSMCCCAuxV4NoLegacyExtendsV4: smccc-aux-v4-nolegacy is smccc-aux-v4's
// series plus the posted patch that drops arm-cca-dev (a recipe reads one
// series, so the shared patches are copies, kept equal here), with the
// same fragment settings.
func TestSMCCCAuxV4NoLegacyExtendsV4(t *testing.T) {
	v4, _, err := Recipe(cell.SMCCCAuxV4)
	if err != nil {
		t.Fatal(err)
	}
	nl, _, err := Recipe(cell.SMCCCAuxV4NoLegacy)
	if err != nil {
		t.Fatal(err)
	}
	if len(nl.Patches) != len(v4.Patches)+1 {
		t.Fatalf("smccc-aux-v4 has %d patches, smccc-aux-v4-nolegacy %d: want one more", len(v4.Patches), len(nl.Patches))
	}
	for i, p := range v4.Patches {
		if q := nl.Patches[i]; p.Name != q.Name || !bytes.Equal(p.Diff, q.Diff) {
			t.Errorf("patch %d: %s and %s differ; copy smccc-aux-v4's", i+1, p.Name, q.Name)
		}
	}
	drop := nl.Patches[len(nl.Patches)-1]
	if len(drop.Files) != 1 || !bytes.Contains(drop.Diff, []byte("Drop dummy RSI platform device stub")) {
		t.Errorf("last patch %s: want the model of 2/2, touching rsi.c only", drop.Name)
	}
	settings := func(frag []byte) string {
		var out []string
		for _, l := range strings.Split(string(frag), "\n") {
			if strings.HasPrefix(l, "CONFIG_") || strings.HasPrefix(l, "# CONFIG_") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	if a, b := settings(v4.Fragment), settings(nl.Fragment); a != b {
		t.Errorf("fragments differ:\n%s\n---\n%s", a, b)
	}
}

// TestApplies: every recipe applies to the unpacked linux-source-7.3
// (scripts/setup-host), hunk by hunk with no fuzz, as a build would.
func TestApplies(t *testing.T) {
	dir, err := images.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src", "linux-source-7.3")
	if _, err := os.Stat(filepath.Join(src, ".unpacked")); err != nil {
		t.Fatalf("no unpacked kernel source (run scripts/setup-host): %v", err)
	}
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	for v, r := range all {
		if err := series.Check(context.Background(), src, r.Patches); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
}

// TestNoScratchLeft: reading the recipes leaves no scratch directory.
func TestNoScratchLeft(t *testing.T) {
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "cca-testbed-recipe-*"))
	if _, err := readAll(); err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "cca-testbed-recipe-*"))
	if len(after) > len(before) {
		t.Errorf("scratch directories left: %v (before: %v)", after, before)
	}
}
