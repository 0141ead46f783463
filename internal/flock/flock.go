// Package flock takes exclusive file locks that a context can abandon, so
// two testbed processes can share one cache: the second waits its turn,
// Ctrl-C included.
//
// Tests: go test ./internal/flock
package flock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Poll is how often a waiter retries. flock(2) cannot be interrupted by a
// context, so waiting polls a non-blocking attempt.
const Poll = 200 * time.Millisecond

// Lock takes an exclusive flock on path (created 0600 if missing), waiting
// until it is free or ctx ends; onWait, if set, runs once when the lock is
// busy. The lock file stays behind: removing it would race with a waiter.
func Lock(ctx context.Context, path string, onWait func()) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	waited := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !waited && onWait != nil {
			onWait()
		}
		waited = true
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(Poll):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
