package kernel

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cca-testbed/cell"
	"cca-testbed/images"
	kernelconfigs "cca-testbed/kernel-configs"
	"cca-testbed/series"
	builtin "cca-testbed/variants"
)

// readSeries reads one of the series package's test series.
func readSeries(t *testing.T, name string) *series.Recipe {
	t.Helper()
	r, err := series.Read(context.Background(), filepath.Join("..", "..", "series", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStack moves a small tree between prefixes of a series and checks
// the content at each step, and that the base, shared by hard links, is
// never written.
func TestStack(t *testing.T) {
	base := t.TempDir()
	orig := "one\ntwo\nthree\nfour\nfive\n"
	if err := os.WriteFile(filepath.Join(base, "f"), []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	mk := func(i int, diff string) series.Patch {
		files, err := series.ParseDiff([]byte(diff))
		if err != nil {
			t.Fatal(err)
		}
		return series.Patch{Index: i, Name: "p", Subject: "p", Diff: []byte(diff), Files: files}
	}
	ps := []series.Patch{
		mk(1, "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n-one\n+ONE\n two\n three\n"),
		mk(2, "--- a/f\n+++ b/f\n@@ -3,3 +3,3 @@\n three\n-four\n+FOUR\n five\n"),
		mk(3, "--- /dev/null\n+++ b/g\n@@ -0,0 +1 @@\n+new\n"),
	}
	work := t.TempDir()
	s := &stack{dir: work, log: slog.New(slog.DiscardHandler)}
	steps := []struct {
		n       int
		f, g    string
		freshed bool
	}{
		{3, "ONE\ntwo\nthree\nFOUR\nfive\n", "new\n", true},
		{1, "ONE\ntwo\nthree\nfour\nfive\n", "", false},
		{0, orig, "", false},
		{2, "ONE\ntwo\nthree\nFOUR\nfive\n", "", false},
	}
	for _, st := range steps {
		marker := filepath.Join(work, seriesBuildName, "marker")
		if err := os.MkdirAll(filepath.Dir(marker), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		tree, err := s.switchTo(context.Background(), base, "id", ps[:st.n])
		if err != nil {
			t.Fatalf("prefix %d: %v", st.n, err)
		}
		f, _ := os.ReadFile(filepath.Join(tree, "f"))
		g, _ := os.ReadFile(filepath.Join(tree, "g"))
		if string(f) != st.f || string(g) != st.g {
			t.Errorf("prefix %d: f=%q g=%q, want %q %q", st.n, f, g, st.f, st.g)
		}
		if _, err := os.Stat(marker); (err != nil) != st.freshed {
			t.Errorf("prefix %d: build directory kept = %v, want %v", st.n, err == nil, !st.freshed)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(base, "f")); string(b) != orig {
		t.Errorf("base written: %q", b)
	}
	// Another base: the tree and its build directory are made afresh.
	if _, err := s.switchTo(context.Background(), base, "other-id", ps[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(work, seriesBuildName, "marker")); err == nil {
		t.Error("a new base kept the old build directory")
	}
	// A tree edited behind the record's back cannot revert: made afresh.
	if err := os.WriteFile(filepath.Join(s.tree(), "f"), []byte("edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := s.switchTo(context.Background(), base, "other-id", ps[1:2][:0])
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(tree, "f")); string(b) != orig {
		t.Errorf("after an edit, prefix 0 reads %q", b)
	}
}

func testOptions(t *testing.T) (context.Context, Options) {
	t.Helper()
	cache, err := images.Open("")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		t.Cleanup(cancel)
	}
	return ctx, Options{Cache: cache, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
}

func TestBuildSeriesDoesNotApply(t *testing.T) {
	ctx, opts := testOptions(t)
	_, err := BuildSeries(ctx, opts, readSeries(t, "fails-apply"))
	var ae *series.ApplyError
	if !errors.As(err, &ae) || ae.Patch != 2 || ae.File != "arch/arm64/kernel/rsi.c" || !strings.Contains(ae.Hunk, "@@ -118,6 +119,7 @@") {
		t.Fatalf("err = %v, want patch 2's second hunk in rsi.c", err)
	}
	// What a user reads: the patch by number and subject, the file and the hunk.
	for _, want := range []string{`patch 2/2 "arm64: rsi: comment the shared bit and the ioremap hook"`,
		"arch/arm64/kernel/rsi.c: hunk #2 @@ -118,6 +119,7 @@"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestBuildSeries builds series/testdata/applies for real in the shared
// series tree: incremental after the tree's first build (a cold build of
// minutes), a cache hit once built. Its realm cell is booted by vm's
// TestSeriesRealm.
func TestBuildSeries(t *testing.T) {
	ctx, opts := testOptions(t)
	start := time.Now()
	k, err := BuildSeries(ctx, opts, readSeries(t, "applies"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("applies: %s in %v (%s)", k.Release, time.Since(start).Round(time.Millisecond), k.Dir)
	if k.Release != "7.3.4-applies-demo" {
		t.Errorf("release %q, want 7.3.4-applies-demo (CONFIG_LOCALVERSION from the recipe's name)", k.Release)
	}
	img, err := os.ReadFile(k.Image)
	if err != nil {
		t.Fatal(err)
	}
	if len(img) < 64 || binary.LittleEndian.Uint32(img[56:60]) != 0x644d5241 {
		t.Errorf("%s is not an arm64 Image (no ARM\\x64 magic at 56)", k.Image)
	}
	cfg, err := os.ReadFile(filepath.Join(k.Dir, ConfigName))
	if err != nil || !bytes.Contains(cfg, []byte("CONFIG_PRINTK_TIME=y\n")) {
		t.Errorf("the recipe's fragment did not reach .config (%v)", err)
	}
}

// TestBuildSeriesDoesNotBuild builds a series that applies but does not
// compile: the error must carry the compiler's own line, not only make's
// exit status. A failed build is not cached, so this compiles rsi.c each
// run (seconds, plus kbuild's walk of the tree).
func TestBuildSeriesDoesNotBuild(t *testing.T) {
	ctx, opts := testOptions(t)
	start := time.Now()
	_, err := BuildSeries(ctx, opts, readSeries(t, "fails-build.mbox"))
	t.Logf("fails-build: in %v: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, ErrBuild) {
		t.Fatalf("err = %v, want ErrBuild", err)
	}
	// gcc quotes the name with ASCII or typographic quotes by locale.
	for _, want := range []string{"kernel fails-build:", "errors: ", "arch/arm64/kernel/rsi.c:", "error: ", "testbed_no_such_symbol", "undeclared", "full log: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
}

func TestSeriesFragment(t *testing.T) {
	base := []byte("CONFIG_VIRTIO=y\nCONFIG_TSM=y\nCONFIG_TSM_REPORTS=m\n")
	frag, want, err := seriesFragment(base, &series.Recipe{Name: "s", Fragment: []byte("CONFIG_TSM_REPORTS=m\nCONFIG_PRINTK_TIME=y\n")})
	if err != nil {
		t.Fatal(err)
	}
	if frag["CONFIG_TSM"] != "y" || frag["CONFIG_LOCALVERSION"] != `"-s"` || frag["CONFIG_PRINTK_TIME"] != "y" {
		t.Errorf("frag = %v", frag)
	}
	if _, ok := want["CONFIG_TSM"]; ok {
		t.Error("CONFIG_TSM required though only the testbed's Kconfig can select it")
	}
	if want["CONFIG_TSM_REPORTS"] != "m" || want["CONFIG_VIRTIO"] != "y" {
		t.Errorf("want = %v: the series' own request and the rest of base.config must be required", want)
	}
}

// stockConfigBefore is kernel-configs/stock.config as it was while stock
// had a build directory of its own (until its fold into variants/stock):
// the recipe must configure the kernel exactly as it did.
const stockConfigBefore = `CONFIG_LOCALVERSION="-stock"
CONFIG_ARM_CCA_GUEST=m
# CONFIG_TSM is not set
# CONFIG_AUXILIARY_BUS is not set
`

// TestStockFragment: the stock recipe's merged fragment is base.config
// plus the old stock.config, symbol for symbol, and all of it must take,
// as the pristine build required: TSM_REPORTS (which only
// ARM_CCA_GUEST's select sets on a stock tree) included.
func TestStockFragment(t *testing.T) {
	r, ok, err := builtin.Recipe(cell.Stock)
	if err != nil || !ok {
		t.Fatalf("variants.Recipe(stock) = %v, %v", ok, err)
	}
	if len(r.Patches) != 0 || r.Base != "" {
		t.Fatalf("stock recipe: %d patches, base %q; want none, linux-source-7.3", len(r.Patches), r.Base)
	}
	baseCfg, err := kernelconfigs.FS.ReadFile("base.config")
	if err != nil {
		t.Fatal(err)
	}
	frag, want, err := seriesFragment(baseCfg, r)
	if err != nil {
		t.Fatal(err)
	}
	base, err := ParseFragment("base.config", baseCfg)
	if err != nil {
		t.Fatal(err)
	}
	old, err := ParseFragment("stock.config", []byte(stockConfigBefore))
	if err != nil {
		t.Fatal(err)
	}
	before := Merge(base, old)
	if !bytes.Equal(frag.Bytes(), before.Bytes()) {
		t.Errorf("stock's fragment\n%s\nwant what base.config + stock.config gave\n%s", frag.Bytes(), before.Bytes())
	}
	if !bytes.Equal(want.Bytes(), before.Bytes()) {
		t.Errorf("stock requires\n%s\nwant all of\n%s", want.Bytes(), before.Bytes())
	}
	for sym, v := range map[string]string{"CONFIG_ARM_CCA_GUEST": "m", "CONFIG_TSM_REPORTS": "m", "CONFIG_TSM": "n",
		"CONFIG_AUXILIARY_BUS": "n", "CONFIG_LOCALVERSION": `"-stock"`} {
		if frag[sym] != v {
			t.Errorf("%s=%q, want %q", sym, frag[sym], v)
		}
	}
	for sym := range frag {
		if strings.HasPrefix(sym, "CONFIG_CCA_") {
			t.Errorf("stock sets the project's %s", sym)
		}
	}
}
