package main

import (
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cca-testbed/snapshot"
)

// fakeRoot builds a small /sys and /proc: the platform variant's realm
// device, its class link and bus link, and (optionally) the glue's conduit.
func fakeRoot(t *testing.T, withConduit bool) (sys, proc string) {
	t.Helper()
	root := t.TempDir()
	sys, proc = filepath.Join(root, "sys"), filepath.Join(root, "proc")
	files := map[string]string{
		"proc/sys/kernel/osrelease":                     "7.3.0-platform\n",
		"sys/devices/platform/arm-cca-dev/uevent":       "DRIVER=cca_guest_tsm\nMODALIAS=platform:arm-cca-dev\n",
		"sys/devices/platform/arm-cca-dev/modalias":     "platform:arm-cca-dev\n",
		"sys/bus/platform/drivers/cca_guest_tsm/uevent": "",
		"sys/module/tsm_report/initstate":               "live\n",
		"sys/kernel/config/tsm/report/.keep":            "",
		"sys/devices/platform/serial8250/uevent":        "MODALIAS=platform:serial8250\n",
	}
	if withConduit {
		files["sys/module/cca_testbed/parameters/conduit"] = "emulated-rmi\n"
	}
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"sys/bus/platform/devices/arm-cca-dev":       "../../../devices/platform/arm-cca-dev",
		"sys/bus/platform/devices/serial8250":        "../../../devices/platform/serial8250",
		"sys/devices/platform/arm-cca-dev/driver":    "../../../bus/platform/drivers/cca_guest_tsm",
		"sys/devices/platform/arm-cca-dev/subsystem": "../../../bus/platform",
	} {
		full := filepath.Join(root, link)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(sys, "class"), 0o755); err != nil {
		t.Fatal(err)
	}
	return sys, proc
}

func TestRun(t *testing.T) {
	for _, tt := range []struct {
		name        string
		withConduit bool
		format      string
		conduit     string
	}{
		{"json with glue", true, "json", "emulated-rmi"},
		{"json without glue", false, "json", "none"},
		{"text", true, "text", "emulated-rmi"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sys, proc := fakeRoot(t, tt.withConduit)
			var out, errb bytes.Buffer
			err := run([]string{"--sys", sys, "--proc", proc, "--format", tt.format, "--backend", "qemu"}, &out, &errb)
			if err != nil {
				t.Fatalf("run: %v (stderr %q)", err, errb.String())
			}
			if tt.format == "json" && !strings.HasPrefix(out.String(), "{") {
				t.Fatalf("not JSON: %q", out.String())
			}
			if tt.format == "text" && !strings.HasPrefix(out.String(), "cca-testbed snapshot ") {
				t.Fatalf("not text: %q", out.String())
			}
			s, err := snapshot.Parse(&out)
			if err != nil {
				t.Fatal(err)
			}
			want := snapshot.Meta{Backend: "qemu", Conduit: tt.conduit, Kernel: "7.3.0-platform"}
			if s.Meta != want {
				t.Errorf("meta: got %+v, want %+v", s.Meta, want)
			}
			for _, f := range []snapshot.Fact{
				{Kind: snapshot.KindLink, Path: "bus/platform/devices/arm-cca-dev", Value: "../../../devices/platform/arm-cca-dev"},
				{Kind: snapshot.KindDriver, Path: "devices/platform/arm-cca-dev", Value: "cca_guest_tsm"},
				{Kind: snapshot.KindModalias, Path: "devices/platform/arm-cca-dev", Value: "platform:arm-cca-dev"},
				{Kind: snapshot.KindModule, Path: "module/tsm_report", Value: "live"},
				{Kind: snapshot.KindAbsent, Path: "class/tsm"},
			} {
				if v, ok := s.Lookup(f.Kind, f.Path); !ok || v != f.Value {
					t.Errorf("fact %s: got %q, %v", f, v, ok)
				}
			}
			if s.Has(snapshot.KindLink, "bus/platform/devices/serial8250") {
				t.Error("unrelated bus device serial8250 was kept")
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	sys, proc := fakeRoot(t, true)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"bad format", []string{"--sys", sys, "--proc", proc, "--format", "yaml"}, "--format"},
		{"no proc", []string{"--sys", sys, "--proc", filepath.Join(proc, "nope")}, "kernel release"},
		{"not sysfs", []string{"--sys", proc, "--proc", proc}, "does not look like sysfs"},
		{"stray argument", []string{"extra"}, "unexpected argument"},
		{"unknown flag", []string{"--bogus"}, "bogus"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(tt.args, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want a one-line error mentioning %q", err, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("wrote %q to stdout on error", out.String())
			}
		})
	}
	t.Run("help", func(t *testing.T) {
		if err := run([]string{"-h"}, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("got %v, want flag.ErrHelp", err)
		}
	})
}

// TestArm64Static builds the helper the way images/ ship it (static,
// linux/arm64) and runs it under qemu-aarch64-static, which
// scripts/setup-host installs, against the fake tree.
func TestArm64Static(t *testing.T) {
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		t.Fatalf("qemu-aarch64-static not found: run scripts/setup-host (package qemu-user-static): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "sysfs-snapshot")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cross build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Fatalf("machine %v, want EM_AARCH64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("binary has %v: not static, it would not run in a bare guest", p.Type)
		}
	}

	sys, proc := fakeRoot(t, true)
	var out, errb bytes.Buffer
	cmd := exec.Command(qemu, bin, "--sys", sys, "--proc", proc, "--backend", "qemu")
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("run under qemu: %v: %s", err, errb.String())
	}
	s, err := snapshot.Parse(&out)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Lookup(snapshot.KindDriver, "devices/platform/arm-cca-dev"); v != "cca_guest_tsm" || s.Meta.Conduit != "emulated-rmi" {
		t.Fatalf("got driver %q, meta %+v", v, s.Meta)
	}

	// An error is one line on stderr and exit status 2.
	cmd = exec.Command(qemu, bin, "--format", "yaml")
	errb.Reset()
	cmd.Stderr = &errb
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || strings.Count(errb.String(), "\n") != 1 {
		t.Fatalf("got %v, stderr %q; want exit 2 and one line", err, errb.String())
	}
}
