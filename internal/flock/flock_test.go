package flock

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestLockWaitsAndCancels(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := Lock(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	waited := 0
	ctx, cancel := context.WithTimeout(context.Background(), 3*Poll)
	defer cancel()
	if _, err := Lock(ctx, p, func() { waited++ }); !errors.Is(err, context.DeadlineExceeded) || waited != 1 {
		t.Fatalf("busy lock: err = %v, onWait ran %d times; want DeadlineExceeded after one onWait", err, waited)
	}
	time.AfterFunc(Poll, unlock)
	u2, err := Lock(context.Background(), p, nil)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	u2()
}
