package sysfs

import (
	"errors"
	"io/fs"
	"testing"
	"testing/fstest"
)

func sample(t *testing.T) *Tree {
	t.Helper()
	tr := New()
	for _, err := range []error{
		tr.Mkdir("devices/platform/arm-cca-dev/power"),
		tr.WriteFile("devices/platform/arm-cca-dev/uevent", "MODALIAS=platform:arm-cca-dev\n"),
		tr.Mkdir("bus/platform/devices"),
		tr.Symlink("../../../devices/platform/arm-cca-dev", "bus/platform/devices/arm-cca-dev"),
		tr.Symlink("../../../bus/platform", "devices/platform/arm-cca-dev/subsystem"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

func TestFSContract(t *testing.T) {
	if err := fstest.TestFS(sample(t), "devices/platform/arm-cca-dev/uevent", "bus/platform/devices/arm-cca-dev"); err != nil {
		t.Fatal(err)
	}
}

func TestLinks(t *testing.T) {
	tr := sample(t)
	tests := []struct {
		name, path, want string
	}{
		{"through bus link", "bus/platform/devices/arm-cca-dev/uevent", "MODALIAS=platform:arm-cca-dev\n"},
		{"link to link", "devices/platform/arm-cca-dev/subsystem/devices/arm-cca-dev/uevent", "MODALIAS=platform:arm-cca-dev\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := fs.ReadFile(tr, tt.path)
			if err != nil || string(b) != tt.want {
				t.Fatalf("ReadFile(%s) = %q, %v; want %q", tt.path, b, err, tt.want)
			}
		})
	}
	got, err := fs.ReadLink(tr, "bus/platform/devices/arm-cca-dev")
	if err != nil || got != "../../../devices/platform/arm-cca-dev" {
		t.Fatalf("ReadLink = %q, %v", got, err)
	}
	fi, err := fs.Lstat(tr, "bus/platform/devices/arm-cca-dev")
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("Lstat mode = %v, %v; want a symlink", fi, err)
	}
	if _, err := fs.ReadLink(tr, "devices/platform/arm-cca-dev/uevent"); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("ReadLink(file) err = %v, want ErrInvalid", err)
	}
}

func TestErrors(t *testing.T) {
	tr := sample(t)
	if _, err := fs.ReadFile(tr, "class/tsm/tsm0/uevent"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want ErrNotExist", err)
	}
	if err := tr.WriteFile("devices/platform/arm-cca-dev/uevent", "x"); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("duplicate: err = %v, want ErrExist", err)
	}
	if err := tr.Symlink("../../..", "escape"); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(tr, "escape/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("escaping link: err = %v, want ErrNotExist", err)
	}
	if err := tr.Symlink("loop", "loop"); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(tr, "loop"); err == nil {
		t.Fatal("self link: want an error")
	}
	if err := tr.Remove("devices/platform/arm-cca-dev"); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(tr, "bus/platform/devices/arm-cca-dev"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dangling link: err = %v, want ErrNotExist", err)
	}
}

func TestGraft(t *testing.T) {
	root := New()
	if err := root.Graft("sys", sample(t)); err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(root, "sys/bus/platform/devices/arm-cca-dev/uevent")
	if err != nil || len(b) == 0 {
		t.Fatalf("through graft: %q, %v", b, err)
	}
}
