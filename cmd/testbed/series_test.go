package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"cca-testbed/cell"
	"cca-testbed/images"
	"cca-testbed/images/kernel"
	"cca-testbed/series"
)

const testSeries = "../../series/testdata/"

func TestVariantFromRefusals(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"matrix", "--backend", "emulated", "--variant-from", testSeries + "applies"}, "the emulated backend models only the built-in variants"},
		{[]string{"snapshot", "--variant-from", testSeries + "nosuch"}, "no such file"},
		{[]string{"diff", "--variant-from", testSeries + "applies/recipe", "a/plain", "b/plain"}, "bad series"},
		{[]string{"bisect", "--role", "plain"}, "name one series"},
		{[]string{"bisect", "--field", "x", "--check", "tsm0", testSeries + "bisect3.mbox"}, "not both"},
		{[]string{"bisect", "--check", "nosuch", testSeries + "bisect3.mbox"}, "unknown check"},
		{[]string{"bisect", "--backend", "emulated", testSeries + "bisect3.mbox"}, "always boots under QEMU"},
	}
	for _, tt := range tests {
		_, stderr, code := testbed(t, tt.args...)
		if code != exitError || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
	for _, v := range cell.Variants {
		if cell.FromSeries(v.Name) {
			t.Errorf("variant %s stayed registered after its command", v.Name)
		}
	}
}

func TestVariantsFromSeries(t *testing.T) {
	out, _, code := testbed(t, "variants", "--variant-from", testSeries+"applies")
	if code != exitOK || !strings.Contains(out, "applies-demo") || !strings.Contains(out, "by cca-testbed <tests@cca-testbed.invalid>; version v1") ||
		!regexp.MustCompile(`\napplies-demo +not stated `).MatchString(out) {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

// TestVariantFromDoesNotApply runs a series that does not apply: the
// run stops before any build, naming the patch and the hunk.
func TestVariantFromDoesNotApply(t *testing.T) {
	_, stderr, code := testbed(t, "matrix", "--variant-from", testSeries+"fails-apply", "--role", "plain")
	want := `patch 2/2 "arm64: rsi: comment the shared bit and the ioremap hook"`
	if code != exitError || !strings.Contains(stderr, want) || !strings.Contains(stderr, "arch/arm64/kernel/rsi.c: hunk #2 @@ -118,6 +119,7 @@") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestSSHSeriesCell(t *testing.T) {
	// No session for a series cell: the message names the cell, which
	// was read though its variant is no built-in one.
	_, stderr, code := testbed(t, "ssh", "--cache", t.TempDir(), "my-series/plain")
	if code != exitError || !strings.Contains(stderr, "my-series/plain is not running") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	_, stderr, _ = testbed(t, "ssh", "--cache", t.TempDir(), "my-series/nosuchrole")
	if !strings.Contains(stderr, "role") {
		t.Errorf("bad role: stderr %q", stderr)
	}
}

// TestBisect bisects the project's 3-patch series on a plain cell for
// real: the base and 2 prefixes (3 builds in the shared series tree, cache
// hits once built) and 3 boots, and it must name patch 3, which adds
// /sys/firmware/cca/realm_guest, and print the snapshot diff across it.
// Both ways of halving are taken (prefix 2 is before the change, 3 after
// it); series.TestBisect covers every change point of longer series, and
// each real build and boot costs about 45 s of a cold make test.
// Each prefix's build must have been incremental: its log in the cache
// entry must not start with what a build in an empty directory compiles
// first, and it must have recompiled rsi.c, which every patch touches.
func TestBisect(t *testing.T) {
	start := time.Now()
	out, stderr, code := testbed(t, "bisect", "--role", "plain", "--field", "firmware/cca", testSeries+"bisect3.mbox")
	t.Logf("in %v; stdout:\n%s\nstderr:\n%s", time.Since(start).Round(time.Millisecond), out, stderr)
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"bisect bisect3: 3 patches, cell bisect3/plain, watching field firmware/cca",
		`first change: patch 3/3 "arm64: rsi: expose /sys/firmware/cca/realm_guest"`,
		"3 builds (",
		"field firmware/cca before it (2 patches): absent firmware/cca",
		"field firmware/cca after it  (3 patches): dir firmware/cca | file firmware/cca/realm_guest 0",
		"+ file firmware/cca/realm_guest 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The probes, in order: the base, then halves of 0..4.
	var probed []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && (f[1] == "base" || f[1] == "patches") {
			probed = append(probed, f[0])
		}
	}
	if got := strings.Join(probed, ","); got != "0,2,3" {
		t.Errorf("probed prefixes %s, want 0,2,3", got)
	}

	r, err := series.Read(context.Background(), testSeries+"bisect3.mbox")
	if err != nil {
		t.Fatal(err)
	}
	cache, err := images.Open("")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 3} {
		k, err := kernel.BuildSeries(context.Background(), kernel.Options{Cache: cache}, r.Prefix(n))
		if err != nil {
			t.Fatal(err)
		}
		log, err := os.ReadFile(filepath.Join(k.Dir, kernel.LogName))
		if err != nil {
			t.Fatal(err)
		}
		compiled := compiledFiles(string(log))
		// How many depends on what the shared tree held before: rsi.c and
		// the link's few objects after another prefix, more after another
		// series that touched headers; a cold build compiles about 900.
		t.Logf("prefix %d: kbuild compiled %d files: %s", n, len(compiled), strings.Join(compiled, " "))
		if strings.Contains(string(log), "HOSTCC  scripts/basic/fixdep") {
			t.Errorf("prefix %d was built in an empty build directory (it compiled kbuild's fixdep): not incremental", n)
		}
		if !slices.Contains(compiled, "arch/arm64/kernel/rsi.o") {
			t.Errorf("prefix %d did not recompile rsi.c, which every patch of the series changes", n)
		}
	}
}

// compiledFiles lists the objects a kbuild log says it compiled (its
// "  CC      path" and "  CC [M]  path" lines, C and assembly).
func compiledFiles(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		f := strings.Fields(l)
		if strings.HasPrefix(l, "  ") && len(f) >= 2 && len(f) <= 3 && (f[0] == "CC" || f[0] == "AS") {
			out = append(out, f[len(f)-1])
		}
	}
	return out
}
