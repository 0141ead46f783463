package images

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// OverlayName is the file Overlay creates in a run directory.
const OverlayName = "root.qcow2"

// Overlay creates <dir>/root.qcow2, a qcow2 copy-on-write overlay over the
// raw image base, and returns its path. A run boots the overlay, so the base
// in the cache is only ever read (it is 0444 too). An existing overlay in
// dir is replaced: it belongs to an earlier run in the same directory.
// Needs qemu-img (qemu-utils, installed by scripts/setup-host).
func Overlay(ctx context.Context, base, dir string) (path string, err error) {
	abs, err := filepath.Abs(base)
	if err != nil {
		return "", fmt.Errorf("overlay: %w", err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("overlay: base image: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("overlay: base image %s is not a regular file", abs)
	}
	path = filepath.Join(dir, OverlayName)
	// The backing path is stored in the overlay, so it must be absolute
	// for the overlay to work from any working directory.
	if err := run(ctx, nil, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", abs, path); err != nil {
		return "", fmt.Errorf("overlay over %s: %w; is qemu-utils installed (scripts/setup-host)?", abs, err)
	}
	return path, nil
}
