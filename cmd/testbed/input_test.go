package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOutsideFilesBounded: every file the CLI reads is refused, at once and
// with its name, when it is a FIFO, a directory or too large, instead of
// hanging or filling memory.
func TestOutsideFilesBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.snap")
	big := "cca-testbed snapshot 2\n" + strings.Repeat("link a b\n", 1<<20)
	if err := os.WriteFile(huge, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	hugeReport := filepath.Join(dir, "report.json")
	f, err := os.Create(hugeReport)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(65<<20 + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"diff a FIFO", []string{"diff", fifo, fifo}, fifo + ": not a regular file (it is a FIFO)"},
		{"expectations a FIFO", []string{"matrix", "--expectations", fifo}, fifo + ": not a regular file (it is a FIFO)"},
		{"changes a FIFO", []string{"changes", fifo, fifo}, fifo + ": not a regular file (it is a FIFO)"},
		{"fidelity a FIFO", []string{"fidelity", fifo}, fifo + ": not a regular file (it is a FIFO)"},
		{"snapshot too large", []string{"diff", huge, huge}, huge + ": file too large: over the limit of 4 MiB"},
		{"report too large", []string{"fidelity", hugeReport}, hugeReport + ": file too large: over the limit of 64 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			done := make(chan int)
			go func() { done <- exitCode(run(context.Background(), tt.args, &out, &errb), &errb) }()
			var code int
			select {
			case code = <-done:
			case <-time.After(10 * time.Second):
				// Unblock the reader so the test binary can finish.
				if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
					w.Close()
				}
				<-done
				t.Fatalf("%v still running after 10 s", tt.args)
			}
			if code != exitError || !strings.Contains(errb.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errb.String(), exitError, tt.want)
			}
		})
	}
}

// TestFidelityNothingCompared: a run none of whose cells has a snapshot
// proves nothing about the model, so fidelity says so and fails.
func TestFidelityNothingCompared(t *testing.T) {
	dir := t.TempDir()
	for name, doc := range map[string]string{
		"errors.json": `{"backend":"qemu","cells":[{"cell":"faux/realm","results":[],"error":"boot: i/o timeout"}]}`,
		"empty.json":  `{"backend":"qemu","cells":[]}`,
	} {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := testbed(t, "fidelity", file)
		if code != exitError || !strings.Contains(stderr, "no cell compared") {
			t.Errorf("%s: exit %d, stderr %q; want exit %d, no cell compared", name, code, stderr, exitError)
		}
	}
}

// TestTerminalOutputEscaped: control characters from snapshot files,
// reports and arguments reach the terminal escaped, on stdout and stderr.
func TestTerminalOutputEscaped(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.snap")
	b := filepath.Join(dir, "b\x1b[2J.snap")
	if err := os.WriteFile(a, []byte("cca-testbed snapshot 2\nfile firmware/cca/realm_guest 1\nend\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("cca-testbed snapshot 2\nfile firmware/cca/realm_guest 1\x1b]0;pwned\x07\nend\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := filepath.Join(dir, "report.json")
	if err := os.WriteFile(rep, []byte(`{"backend":"qemu","cells":[{"cell":"faux/realm","results":[],"error":"boot failed: \u001b[31mred"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"diff", a, b},
		{"fidelity", rep},
		{"diff", a, filepath.Join(dir, "nope\x1b[2J")},
		{"frobnicate\x1b[2J"},
	} {
		out, stderr, _ := testbed(t, args...)
		if strings.ContainsAny(out+stderr, "\x1b\x07") {
			t.Errorf("%q: raw control characters in stdout %q, stderr %q", args, out, stderr)
		}
	}
}
