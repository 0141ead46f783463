package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cca-testbed/qemu"
)

func TestFirmwareList(t *testing.T) {
	out, stderr, code := testbed(t, "firmware")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"tf-rmm-0.9  TF-A v2.15.0 + TF-RMM v0.9.0, RMM 2.0", "tf-rmm-0.8  TF-A v2.14.0 + TF-RMM v0.8.0, RMM 1.x"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestFirmwareSpecs(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"all", "tf-rmm-0.9,tf-rmm-0.8"},
		{"tf-rmm-0.8", "tf-rmm-0.8"},
		{"tf-rmm-0.8, tf-rmm-0.9,tf-rmm-0.8", "tf-rmm-0.8,tf-rmm-0.9"},
		{"tf-rmm-0.8,all", "tf-rmm-0.8"},
	} {
		specs, err := firmwareSpecs(tc.arg)
		if err != nil {
			t.Fatalf("%q: %v", tc.arg, err)
		}
		var got []string
		for _, s := range specs {
			got = append(got, s.Name)
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%q: got %v, want %s", tc.arg, got, tc.want)
		}
	}
}

// TestFirmwareFlag builds tf-rmm-0.9 through the CLI (a cache hit once
// images/firmware's test has built it) and hands the flash image to
// --machine rme --firmware, which must accept it; a copy with its FIP
// header overwritten must be refused as a usage error.
func TestFirmwareFlag(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("firmware builds need root (make test runs as root)")
	}
	out, stderr, code := testbed(t, "firmware", "--build", "tf-rmm-0.9", "--path")
	if code != exitOK {
		t.Fatalf("firmware --build: exit %d: %s", code, stderr)
	}
	flash := strings.TrimSpace(out)
	if strings.Contains(flash, "\n") || filepath.Base(flash) != "flash.bin" {
		t.Fatalf("--path printed %q, want one flash.bin path", out)
	}
	var o backendOptions
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	o.register(fs)
	if err := fs.Parse([]string{"--backend", "qemu", "--machine", qemu.ProfileRME, "--firmware", flash}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.backend(t.Context(), os.Stderr); err != nil {
		t.Errorf("--firmware %s refused: %v", flash, err)
	}

	img, err := os.ReadFile(flash)
	if err != nil {
		t.Fatal(err)
	}
	copy(img[qemu.FIPOffset:], "\x00\x00\x00\x00")
	bad := filepath.Join(t.TempDir(), "flash.bin")
	if err := os.WriteFile(bad, img, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = testbed(t, "matrix", "--backend", "qemu", "--machine", "rme", "--firmware", bad, "--variant", "platform", "--role", "host-noda")
	if code != exitError || !strings.Contains(stderr, "--firmware: ") || !strings.Contains(stderr, "where the FIP ToC name") {
		t.Errorf("corrupt flash: exit %d, stderr %q; want exit 2 naming the FIP header", code, stderr)
	}
}
