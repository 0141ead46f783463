package images

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestOverlayLeavesBaseUntouched(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	if err := os.WriteFile(base, bytes.Repeat([]byte{0x5a}, 1<<20), 0o444); err != nil {
		t.Fatal(err)
	}
	before, err := hashFile(base)
	if err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ov, err := Overlay(ctx, base, runDir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(runDir, OverlayName); ov != want {
		t.Errorf("overlay path %q, want %q", ov, want)
	}

	out, err := exec.Command("qemu-img", "info", "--output=json", ov).Output()
	if err != nil {
		t.Fatalf("qemu-img info: %v", err)
	}
	var info struct {
		Format        string `json:"format"`
		Backing       string `json:"backing-filename"`
		BackingFormat string `json:"backing-filename-format"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	if info.Format != "qcow2" || info.Backing != base || info.BackingFormat != "raw" {
		t.Errorf("overlay info = %+v, want qcow2 over %s (raw)", info, base)
	}

	// Write through the overlay, read it back through the overlay.
	for _, args := range [][]string{
		{"-c", "write -P 0xab 4096 65536", ov},
		{"-c", "read -P 0xab 4096 65536", ov},
	} {
		if out, err := exec.Command("qemu-io", append([]string{"-f", "qcow2"}, args...)...).CombinedOutput(); err != nil || bytes.Contains(out, []byte("Pattern verification failed")) {
			t.Fatalf("qemu-io %v: %v: %s", args, err, out)
		}
	}
	after, err := hashFile(base)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("base sha256 changed from %s to %s by writing through the overlay", before[:12], after[:12])
	}
}

func TestOverlayErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, base, dir string }{
		{"missing base", filepath.Join(dir, "nope.raw"), dir},
		{"base is a directory", dir, dir},
		{"missing run dir", filepath.Join(dir, "b.raw"), filepath.Join(dir, "no", "such")},
	}
	if err := os.WriteFile(filepath.Join(dir, "b.raw"), make([]byte, 4096), 0o444); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Overlay(context.Background(), tt.base, tt.dir); err == nil {
				t.Error("Overlay succeeded, want an error")
			}
		})
	}
}
