// Package variants holds the built-in variants that are written as
// recipes (series.Recipe): a directory per variant with its quilt series
// of the project's own patches against linux-source-7.3 (empty for stock,
// Debian's source as shipped), its config fragment and its provenance
// (who, branch or version, date, commit or message-id). A recipe may take
// its series from a sibling directory (series: ../faux), so each is read
// from a copy of the whole tree. They are embedded in the testbed and
// built by kernel.BuildSeries like a series a user brings, in the one
// series tree, so a switch between them rebuilds only what their patches
// touch; cell names them and vm builds them from here.
//
// Tests: go test ./variants (every recipe reads, applies to the unpacked
// linux-source-7.3 and is known to cell with its provenance); the real
// builds and boots are in ./vm (TestSMCCCBusRealm for smccc-bus and
// smccc-bus-next, TestStockRealm, TestSMCCCAuxV5Realm, TestSMCCCAuxV4Realm,
// TestSMCCCAuxV4Host (smccc-aux-v4 on real TF-RMM v0.9), TestFauxRealm,
// TestFauxBuiltinRealm, TestTSMNullRealFirmware, TestRFCRealm,
// TestRFCRealmDA, TestRFCRealFirmware) and ./images/kernel (TestBuildStock).
package variants

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"cca-testbed/cell"
	"cca-testbed/series"
)

//go:embed smccc-bus smccc-bus-next stock smccc-aux-v5 smccc-aux-v4 smccc-aux-v4-nolegacy faux faux-builtin faux-tree tsm-null rfc
var files embed.FS

// loaded is every recipe, read once: the embedded files never change.
var loaded = sync.OnceValues(readAll)

// Recipe returns the recipe of built-in variant v, or false when v is
// not built from a recipe.
func Recipe(v cell.Variant) (*series.Recipe, bool, error) {
	all, err := loaded()
	if err != nil {
		return nil, false, err
	}
	r, ok := all[v]
	return r, ok, nil
}

// All returns every built-in recipe by variant.
func All() (map[cell.Variant]*series.Recipe, error) { return loaded() }

func readAll() (map[cell.Variant]*series.Recipe, error) {
	dirs, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, err
	}
	out := map[cell.Variant]*series.Recipe{}
	for _, d := range dirs {
		r, err := readDir(d.Name())
		if err != nil {
			return nil, fmt.Errorf("built-in recipe variants/%s: %w", d.Name(), err)
		}
		out[cell.Variant(r.Name)] = r
	}
	return out, nil
}

// readDir copies the embedded tree to a scratch directory, which
// series.Read takes, reads recipe name from it and removes it again.
func readDir(name string) (*series.Recipe, error) {
	tmp, err := os.MkdirTemp("", "cca-testbed-recipe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.CopyFS(tmp, files); err != nil {
		return nil, err
	}
	r, err := series.Read(context.Background(), filepath.Join(tmp, name))
	if err != nil {
		return nil, err
	}
	// Name the source as it is in the tree, not the scratch copy.
	r.Provenance.Source = "variants/" + name
	return r, nil
}
