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

// Poll is a short wait the tests use to let a lock change hands.
const Poll = 200 * time.Millisecond

// Lock takes an exclusive flock on path (created 0600 if missing), waiting
// until it is free or ctx ends; onWait, if set, runs once when the lock is
// busy. The lock file stays behind: removing it would race with a waiter.
//
// A busy lock is waited for in a blocking flock(2), not by polling: the
// kernel hands a released lock to a blocked waiter at once, whereas a
// poller lost nearly every race against a process taking the lock again
// right after releasing it (a kernel build waited 36 minutes on a shared
// machine while other builds followed one another).
func Lock(ctx context.Context, path string, onWait func()) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return release(f), nil
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if onWait != nil {
		onWait()
	}
	got := make(chan error, 1)
	go func() {
		for {
			err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
			if !errors.Is(err, syscall.EINTR) {
				got <- err
				return
			}
		}
	}()
	select {
	case err := <-got:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return release(f), nil
	case <-ctx.Done():
		// flock(2) cannot be interrupted: the waiter goes on and drops
		// the lock the moment it gets it.
		go func() {
			if err := <-got; err == nil {
				release(f)()
				return
			}
			f.Close()
		}()
		return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
	}
}

func release(f *os.File) func() {
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}
}
