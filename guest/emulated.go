package guest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// Emulated is a Guest over an fs.FS shaped like the guest's root: its names
// are guest paths without the leading slash ("sys/class/tsm"). Links are
// read through fs.ReadLinkFS, so the FS must implement it for ReadLink to
// work. Commands go to the run function given to NewEmulated, which models
// the few commands the emulated backend understands.
type Emulated struct {
	root fs.FS
	run  func(ctx context.Context, argv []string) (Result, error)
}

var _ Guest = (*Emulated)(nil)

// NewEmulated returns a Guest reading root. run may be nil, and then Run
// reports ErrNotSupported.
func NewEmulated(root fs.FS, run func(ctx context.Context, argv []string) (Result, error)) *Emulated {
	return &Emulated{root: root, run: run}
}

// Run hands argv to the run function. An empty argv is an error.
func (e *Emulated) Run(ctx context.Context, argv ...string) (Result, error) {
	if len(argv) == 0 {
		return Result{}, fmt.Errorf("run: empty command: pass at least the program name")
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("run %s: %w", argv[0], err)
	}
	if e.run == nil {
		return Result{}, fmt.Errorf("run %s: %w", argv[0], ErrNotSupported)
	}
	return e.run(ctx, argv)
}

// ReadFile reads a file; a missing one gives an error wrapping fs.ErrNotExist.
func (e *Emulated) ReadFile(ctx context.Context, path string) ([]byte, error) {
	name, err := e.name(ctx, "read", path)
	if err != nil {
		return nil, err
	}
	b, err := fs.ReadFile(e.root, name)
	return b, guestPathErr(err, path)
}

// ReadDir lists a directory sorted by name. Symlinks are reported as such
// (Type has fs.ModeSymlink), not followed.
func (e *Emulated) ReadDir(ctx context.Context, path string) ([]fs.DirEntry, error) {
	name, err := e.name(ctx, "readdir", path)
	if err != nil {
		return nil, err
	}
	ents, err := fs.ReadDir(e.root, name)
	return ents, guestPathErr(err, path)
}

// ReadLink returns a symlink's raw target.
func (e *Emulated) ReadLink(ctx context.Context, path string) (string, error) {
	name, err := e.name(ctx, "readlink", path)
	if err != nil {
		return "", err
	}
	if _, ok := e.root.(fs.ReadLinkFS); !ok {
		return "", fmt.Errorf("readlink %s: %w: the emulated tree (%T) does not implement fs.ReadLinkFS", path, ErrNotSupported, e.root)
	}
	t, err := fs.ReadLink(e.root, name)
	return t, guestPathErr(err, path)
}

func (e *Emulated) name(ctx context.Context, op, path string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("%s %s: %w", op, path, err)
	}
	return fsPath(op, path)
}

// guestPathErr rewrites an fs.PathError to name the guest path the caller
// passed ("/sys/x") rather than the FS name ("sys/x"), keeping its cause.
func guestPathErr(err error, path string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &fs.PathError{Op: pe.Op, Path: path, Err: pe.Err}
	}
	return err
}
