// Package guest is how checks and snapshots reach a running system: run a
// command, read a file, list a directory, read a link. Two implementations
// exist: Emulated, over an fs.FS shaped like the guest's root (the emulated
// backend's /sys), and SSH (with the QEMU path). Callers never know which one
// they got.
//
// Tests: go test ./guest
package guest

import (
	"context"
	"errors"
	"io/fs"
)

// ErrNotSupported is returned by a Guest that cannot do the operation at all
// (an emulated guest has no shell for arbitrary commands).
var ErrNotSupported = errors.New("not supported by this guest")

// Guest is a running (or modelled) system under test. Paths are absolute
// guest paths ("/sys/class/tsm").
type Guest interface {
	// Run runs argv (no shell) and returns its stdout, stderr and exit code.
	// A non-zero exit is not an error; failing to run it is.
	Run(ctx context.Context, argv ...string) (Result, error)
	ReadFile(ctx context.Context, path string) ([]byte, error)
	ReadDir(ctx context.Context, path string) ([]fs.DirEntry, error)
	ReadLink(ctx context.Context, path string) (string, error)
}

// Result is the outcome of Run.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int
}
