package main

import (
	"strings"
	"testing"

	"cca-testbed/cell"
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
		{[]string{"bisect", "--field", "x", "--check", "tsm0", testSeries + "bisect6.mbox"}, "not both"},
		{[]string{"bisect", "--check", "nosuch", testSeries + "bisect6.mbox"}, "unknown check"},
		{[]string{"bisect", "--backend", "emulated", testSeries + "bisect6.mbox"}, "always boots under QEMU"},
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
	if code != exitOK || !strings.Contains(out, "applies-demo") || !strings.Contains(out, "by cca-testbed <tests@cca-testbed.invalid>; version v1") {
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
