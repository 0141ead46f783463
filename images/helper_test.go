package images

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBuildHelper(t *testing.T) {
	c := openTemp(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := BuildHelper(ctx, c, root)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("helper machine %v, want EM_AARCH64", f.Machine)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Error("helper has an ELF interpreter; want a static binary")
		}
	}
	start := time.Now()
	p2, err := BuildHelper(ctx, c, root)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("warm BuildHelper: %s", time.Since(start))
	if p2 != p {
		t.Errorf("second BuildHelper = %q, want %q", p2, p)
	}
	if got := strings.Join(ops(t, c), ","); got != "build,hit" {
		t.Errorf("cache ops = %s, want build,hit", got)
	}
}

// TestHelperInputs checks the key covers the helper's own sources and its
// dependencies' (the snapshot package), and nothing it does not import.
func TestHelperInputs(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	in, err := helperInputs(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	has := func(prefix string) bool {
		for k := range in {
			if strings.HasPrefix(k, prefix) {
				return true
			}
		}
		return false
	}
	for _, want := range []string{"file:cmd/sysfs-snapshot/main.go", "file:snapshot/", "file:go.mod", "go"} {
		if !has(want) {
			t.Errorf("inputs lack %s", want)
		}
	}
	for _, not := range []string{"file:images/", "file:cmd/sysfs-snapshot/main_test.go"} {
		if has(not) {
			t.Errorf("inputs include %s, which the binary does not depend on", not)
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "cmd", "sysfs-snapshot", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in["file:cmd/sysfs-snapshot/main.go"], b) {
		t.Error("main.go input differs from the file")
	}
}
