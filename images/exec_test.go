package images

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunCancelStopsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "survived")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The grandchild would create the marker after 2 s if it outlived the
	// cancellation.
	err := run(ctx, nil, "sh", "-c", "(sleep 2; touch "+marker+") & wait")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("run err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("run returned after %s, want soon after the deadline", d)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Error("a grandchild survived cancellation")
	}
}

func TestRunReportsOutput(t *testing.T) {
	err := run(context.Background(), nil, "sh", "-c", "echo noise; echo more; echo more; echo why it failed >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "why it failed") || strings.Contains(err.Error(), "\n") {
		t.Errorf("run err = %v, want one line with the tool's message", err)
	}
}
