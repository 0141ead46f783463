package vm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// A kept run directory belongs to one instance at a time, in this process
// or any other: the instance holds an exclusive flock on the directory
// itself for its whole life. A cell that is already running (the same cell
// twice in one matrix, two testbed runs with one --out) gets the next free
// name, <cell>.2, <cell>.3, so no instance ever shares, clears or removes
// another's files. The lock ends with the process, so a killed run never
// holds a name.

// maxRunDirs bounds the search for a free run directory name.
const maxRunDirs = 64

// claimRunDir makes (or reuses) a run directory for name under root that no
// live instance holds, locks it, and returns it with the lock's release.
// It never clears the directory: only its holder may.
func claimRunDir(root, name string) (dir string, release func() error, err error) {
	for n := 1; n <= maxRunDirs; n++ {
		dir = filepath.Join(root, name)
		if n > 1 {
			dir += "." + strconv.Itoa(n)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", nil, err
		}
		f, err := lockDir(dir)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return dir, f.Close, nil
	}
	return "", nil, fmt.Errorf("%s: %d run directories of %s are in use", root, maxRunDirs, name)
}

// lockDir takes the exclusive lock on dir without waiting.
func lockDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking run directory %s: %w", dir, err)
	}
	return f, nil
}

// InUse reports whether a live instance (of any process) holds run
// directory dir, so that tidying an output directory can pass it by.
func InUse(dir string) bool {
	f, err := lockDir(dir)
	if err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	f.Close()
	return false
}

// clearDir removes what dir holds but not dir itself: the lock is on the
// directory, and a directory made anew would be another, unlocked one.
func clearDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}
