package cvm

import (
	"io/fs"
	"testing"
	"testing/fstest"
)

func TestSystemd(t *testing.T) {
	withDev := fstest.MapFS{"devices/platform/arm-cca-dev/uevent": {Data: []byte("MODALIAS=platform:arm-cca-dev\n")}}
	faux := fstest.MapFS{"devices/faux/arm-rsi-dev/uevent": {Data: []byte("DRIVER=faux_driver\n")}}
	link := fstest.MapFS{
		"devices/platform/arm-cca-dev": {Data: []byte("../elsewhere"), Mode: fs.ModeSymlink},
		"devices/elsewhere/uevent":     {Data: []byte("")},
	}
	tests := []struct {
		name    string
		sys     fs.FS
		version int
		want    string
	}{
		{"forky with arm-cca-dev", withDev, 262, CCA},
		{"trixie with arm-cca-dev", withDev, 257, None},
		{"first version with the check", withDev, 258, CCA},
		{"faux device only", faux, 262, None},
		{"empty sysfs", fstest.MapFS{}, 262, None},
		{"symlink followed like access(2)", link, 262, CCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Systemd(tt.sys, tt.version); got != tt.want {
				t.Fatalf("Systemd(v%d) = %q, want %q", tt.version, got, tt.want)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	if ExitCode(None) != 1 || ExitCode(CCA) != 0 {
		t.Fatal("systemd-detect-virt exits 1 for none, 0 otherwise")
	}
}
