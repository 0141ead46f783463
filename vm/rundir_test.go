package vm

import (
	"os"
	"path/filepath"
	"testing"
)

// TestClaimRunDir: two live instances of one cell never share a run
// directory, a held one is in use for everybody, and a released name is
// taken again.
func TestClaimRunDir(t *testing.T) {
	root := t.TempDir()
	a, relA, err := claimRunDir(root, "faux_realm")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a, "console.log"), []byte("a's"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, relB, err := claimRunDir(root, "faux_realm")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "faux_realm.2"); a == b || b != want {
		t.Errorf("second claim got %s (first %s), want %s", b, a, want)
	}
	if !InUse(a) || !InUse(b) {
		t.Errorf("held directories not in use: %v %v", InUse(a), InUse(b))
	}
	if got, _ := os.ReadFile(filepath.Join(a, "console.log")); string(got) != "a's" {
		t.Errorf("the second claim touched the first's files: %q", got)
	}
	if err := relA(); err != nil {
		t.Fatal(err)
	}
	if InUse(a) {
		t.Errorf("%s in use after release", a)
	}
	c, relC, err := claimRunDir(root, "faux_realm")
	if err != nil {
		t.Fatal(err)
	}
	if c != a {
		t.Errorf("claim after release got %s, want %s", c, a)
	}
	if err := clearDir(c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c); err != nil || !InUse(c) {
		t.Errorf("clearDir removed or unlocked the directory: %v", err)
	}
	relB()
	relC()
}
