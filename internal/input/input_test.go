package input

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("small", link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		file  string
		limit int64
		want  string // "" means success
		is    error
	}{
		{"fits", small, 5, "", nil},
		{"symlink to a file", link, 5, "", nil},
		{"one byte over", small, 4, "snapshot " + small + ": file too large: over the limit of 4 bytes", ErrTooLarge},
		{"missing", filepath.Join(dir, "nope"), 5, "nope: no such file", os.ErrNotExist},
		{"directory", dir, 5, "it is a directory", ErrNotRegular},
		{"fifo", fifo, 5, "it is a FIFO", ErrNotRegular},
		{"device", "/dev/zero", 5, "it is a character device", ErrNotRegular},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			var b []byte
			var err error
			go func() { b, err = ReadFile(tt.file, "snapshot", tt.limit); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("ReadFile(%s) still waiting after 5 s", tt.file)
			}
			if tt.want == "" {
				if err != nil || string(b) != "12345" {
					t.Fatalf("got %q, %v; want the contents", b, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want one wrapping %v containing %q", err, tt.is, tt.want)
			}
			if !strings.Contains(err.Error(), tt.file) {
				t.Errorf("error %q does not name %s", err, tt.file)
			}
		})
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{4 << 20: "4 MiB", 1 << 10: "1 KiB", 1500: "1500 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPosition(t *testing.T) {
	data := []byte("ab\ncd\n\xffx")
	for off, want := range map[int64]string{0: "line 1:1", 2: "line 1:3", 3: "line 2:1", 7: "line 3:2", 99: "line 3:3"} {
		if got := Position(data, off); got != want {
			t.Errorf("Position(%d) = %q, want %q", off, got, want)
		}
	}
	if got := InvalidUTF8(data); got != 6 {
		t.Errorf("InvalidUTF8 = %d, want 6", got)
	}
	if got := InvalidUTF8([]byte("café")); got != -1 {
		t.Errorf("InvalidUTF8(valid) = %d, want -1", got)
	}
}
