package guest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"
)

func testTree() fstest.MapFS {
	return fstest.MapFS{
		"sys/class/tsm/tsm0":                          {Data: []byte("../../devices/virtual/tsm/tsm0"), Mode: fs.ModeSymlink},
		"sys/devices/virtual/tsm/tsm0/uevent":         {Data: []byte("MAJOR=1\n")},
		"sys/devices/platform/arm-cca-dev/uevent":     {Data: []byte("MODALIAS=platform:arm-cca-dev\n")},
		"sys/devices/platform/arm-cca-dev/driver":     {Data: []byte("../../../bus/platform/drivers/cca_guest_tsm"), Mode: fs.ModeSymlink},
		"sys/devices/platform/arm-cca-dev/power":      {Mode: fs.ModeDir | 0o755},
		"sys/module/cca_testbed/parameters/conduit":   {Data: []byte("emulated-rmi\n")},
		"sys/bus/platform/drivers/cca_guest_tsm/bind": {Data: []byte{}},
	}
}

func TestEmulatedRead(t *testing.T) {
	ctx := context.Background()
	g := NewEmulated(testTree(), nil)

	t.Run("file", func(t *testing.T) {
		got, err := g.ReadFile(ctx, "/sys/module/cca_testbed/parameters/conduit")
		if err != nil || string(got) != "emulated-rmi\n" {
			t.Fatalf("got %q, %v, want %q", got, err, "emulated-rmi\n")
		}
	})
	t.Run("file through a symlinked directory", func(t *testing.T) {
		got, err := g.ReadFile(ctx, "/sys/class/tsm/tsm0/uevent")
		if err != nil || string(got) != "MAJOR=1\n" {
			t.Fatalf("got %q, %v, want %q", got, err, "MAJOR=1\n")
		}
	})
	t.Run("unclean path", func(t *testing.T) {
		if _, err := g.ReadFile(ctx, "/sys//devices/./virtual/../virtual/tsm/tsm0/uevent"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("dir types", func(t *testing.T) {
		ents, err := g.ReadDir(ctx, "/sys/devices/platform/arm-cca-dev")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]fs.FileMode{}
		for _, e := range ents {
			got[e.Name()] = e.Type()
		}
		want := map[string]fs.FileMode{"driver": fs.ModeSymlink, "power": fs.ModeDir, "uevent": 0}
		if len(got) != len(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		for n, m := range want {
			if got[n] != m {
				t.Errorf("%s: got type %v, want %v", n, got[n], m)
			}
		}
	})
	t.Run("root", func(t *testing.T) {
		ents, err := g.ReadDir(ctx, "/")
		if err != nil || len(ents) != 1 || ents[0].Name() != "sys" || !ents[0].IsDir() {
			t.Fatalf("got %v, %v, want [sys/]", ents, err)
		}
	})
	t.Run("link", func(t *testing.T) {
		got, err := g.ReadLink(ctx, "/sys/class/tsm/tsm0")
		if err != nil || got != "../../devices/virtual/tsm/tsm0" {
			t.Fatalf("got %q, %v", got, err)
		}
	})
	t.Run("link of a regular file", func(t *testing.T) {
		if _, err := g.ReadLink(ctx, "/sys/devices/virtual/tsm/tsm0/uevent"); err == nil {
			t.Fatal("got nil error, want one")
		}
	})
}

func TestEmulatedErrors(t *testing.T) {
	ctx := context.Background()
	g := NewEmulated(testTree(), nil)
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	tests := []struct {
		name string
		ctx  context.Context
		op   func(ctx context.Context, p string) error
		path string
		want error
	}{
		{"missing file", ctx, readFile(g), "/sys/nope", fs.ErrNotExist},
		{"missing dir", ctx, readDir(g), "/sys/class/nope", fs.ErrNotExist},
		{"missing link", ctx, readLink(g), "/sys/class/tsm/tsm9", fs.ErrNotExist},
		{"relative file", ctx, readFile(g), "sys/module", ErrRelativePath},
		{"relative dir", ctx, readDir(g), "", ErrRelativePath},
		{"relative link", ctx, readLink(g), "./sys/class/tsm/tsm0", ErrRelativePath},
		{"canceled", canceled, readFile(g), "/sys/module/cca_testbed/parameters/conduit", context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op(tt.ctx, tt.path)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want an error wrapping %v", err, tt.want)
			}
		})
	}

	t.Run("error names the guest path", func(t *testing.T) {
		_, err := g.ReadFile(ctx, "/sys/nope")
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != "/sys/nope" {
			t.Fatalf("got %v, want a PathError for /sys/nope", err)
		}
	})
	t.Run("readlink without ReadLinkFS", func(t *testing.T) {
		plain := NewEmulated(struct{ fs.FS }{testTree()}, nil)
		if _, err := plain.ReadLink(ctx, "/sys/class/tsm/tsm0"); !errors.Is(err, ErrNotSupported) {
			t.Fatalf("got %v, want ErrNotSupported", err)
		}
	})
}

func readFile(g Guest) func(context.Context, string) error {
	return func(ctx context.Context, p string) error { _, err := g.ReadFile(ctx, p); return err }
}
func readDir(g Guest) func(context.Context, string) error {
	return func(ctx context.Context, p string) error { _, err := g.ReadDir(ctx, p); return err }
}
func readLink(g Guest) func(context.Context, string) error {
	return func(ctx context.Context, p string) error { _, err := g.ReadLink(ctx, p); return err }
}

func TestEmulatedRun(t *testing.T) {
	ctx := context.Background()
	t.Run("nil run", func(t *testing.T) {
		_, err := NewEmulated(testTree(), nil).Run(ctx, "uname", "-r")
		if !errors.Is(err, ErrNotSupported) {
			t.Fatalf("got %v, want ErrNotSupported", err)
		}
	})
	t.Run("empty argv", func(t *testing.T) {
		called := false
		g := NewEmulated(testTree(), func(context.Context, []string) (Result, error) { called = true; return Result{}, nil })
		if _, err := g.Run(ctx); err == nil || called {
			t.Fatalf("got err %v, called %v; want an error and no call", err, called)
		}
	})
	t.Run("passes argv and result", func(t *testing.T) {
		var gotArgv []string
		g := NewEmulated(testTree(), func(_ context.Context, argv []string) (Result, error) {
			gotArgv = argv
			return Result{Stdout: []byte("cca\n"), ExitCode: 0}, nil
		})
		r, err := g.Run(ctx, "systemd-detect-virt", "--cvm")
		if err != nil || string(r.Stdout) != "cca\n" {
			t.Fatalf("got %+v, %v", r, err)
		}
		if !slices.Equal(gotArgv, []string{"systemd-detect-virt", "--cvm"}) {
			t.Fatalf("got argv %q", gotArgv)
		}
	})
}

// os.DirFS is what cmd/sysfs-snapshot hands to snapshot.Take; it must read
// links too (fs.ReadLinkFS since Go 1.25).
func TestEmulatedDirFS(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sys/devices/x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../devices/x", filepath.Join(dir, "sys/class")); err != nil {
		t.Fatal(err)
	}
	g := NewEmulated(os.DirFS(dir), nil)
	got, err := g.ReadLink(context.Background(), "/sys/class")
	if err != nil || got != "../devices/x" {
		t.Fatalf("got %q, %v, want ../devices/x", got, err)
	}
	ents, err := g.ReadDir(context.Background(), "/sys")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 || ents[0].Name() != "class" || ents[0].Type() != fs.ModeSymlink || !ents[1].IsDir() {
		t.Fatalf("got %v, want [class@ devices/]", ents)
	}
}
