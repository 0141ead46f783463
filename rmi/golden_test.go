package rmi

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/ golden files")

// TestGoldenProbe pins, per profile, the decisions and the exact kernel
// parameter Probe produces: what the kernel glue will be given. Refresh
// with go test ./rmi -run TestGoldenProbe -update after a deliberate change.
func TestGoldenProbe(t *testing.T) {
	var b strings.Builder
	for _, p := range Profiles() {
		d, table := Probe(New(p))
		fmt.Fprintf(&b, "# %s: %s\n", p.Name, p.Description)
		fmt.Fprintf(&b, "decisions RMI=%t DA=%t RSI=%t\n", d.RMI, d.DA, d.RSI)
		for _, a := range table {
			fmt.Fprintf(&b, "%s\n", a)
		}
		fmt.Fprintf(&b, "%s\n\n", table.Cmdline())
	}
	got := b.String()
	path := filepath.Join("testdata", "probe.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("Probe output differs from %s (rerun with -update if intended):\n%s", path, got)
	}
}
