package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary play the testbed that dies: with
// PROC_TEST_PARENT set it runs the command in its arguments the way its
// value says (run or start) and waits.
func TestMain(m *testing.M) {
	switch os.Getenv("PROC_TEST_PARENT") {
	case "run":
		err := Run(context.Background(), Cmd{Argv: os.Args[1:]})
		fmt.Fprintln(os.Stderr, "run returned:", err)
		os.Exit(3)
	case "start":
		if _, err := Start(Cmd{Argv: os.Args[1:]}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		select {}
	}
	os.Exit(m.Run())
}

// waitPidFile waits for a pid written to path.
func waitPidFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

// TestChildrenDieWithParent: a tool's children die with the testbed even
// when it is killed outright (SIGKILL: no clean-up of its own runs). The
// grandchild stands for a compiler behind make.
func TestChildrenDieWithParent(t *testing.T) {
	for _, mode := range []string{"run", "start"} {
		t.Run(mode, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			argv := []string{"sh", "-c", "sleep 60 & echo $! > " + pidFile + "; wait"}
			if mode == "start" { // one process, no children: it records its own pid
				argv = []string{"sh", "-c", "echo $$ > " + pidFile + "; exec sleep 60"}
			}
			parent := exec.Command(os.Args[0], argv...)
			parent.Env = append(os.Environ(), "PROC_TEST_PARENT="+mode)
			var stderr bytes.Buffer
			parent.Stderr = &stderr
			if err := parent.Start(); err != nil {
				t.Fatal(err)
			}
			child := waitPidFile(t, pidFile)
			if !alive(child) {
				t.Fatalf("pid %d not running before the parent died", child)
			}
			parent.Process.Kill()
			parent.Wait()
			deadline := time.Now().Add(5 * time.Second)
			for alive(child) {
				if time.Now().After(deadline) {
					syscall.Kill(child, syscall.SIGKILL)
					t.Fatalf("pid %d outlived its killed parent by 5 s (parent stderr: %s)", child, stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func TestRunCancelStopsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "survived")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The grandchild would create the marker after 2 s if it outlived the
	// cancellation.
	err := Run(ctx, Cmd{Argv: []string{"sh", "-c", "(sleep 2; touch " + marker + ") & wait"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run returned after %s, want soon after the deadline", d)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Error("a grandchild survived cancellation")
	}
}

// TestRunCancelGraceThenKill: a tool that ignores SIGTERM gets SIGKILL
// after the grace period, not never.
func TestRunCancelGraceThenKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Run(ctx, Cmd{Argv: []string{"sh", "-c", "trap '' TERM; sleep 30 & wait; wait"}, Grace: 500 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run returned after %s, want about deadline + grace (0.7 s)", d)
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		argv []string
		want []string
	}{
		{"last lines, one line", []string{"sh", "-c", "echo noise; echo more; echo more; echo why it failed >&2; exit 3"}, []string{"sh: exit status 3: more | more | why it failed"}},
		{"killed", []string{"sh", "-c", "kill -KILL $$"}, []string{"exit status 137 (killed)"}},
		{"missing program", []string{"no-such-tool-here"}, []string{"no-such-tool-here:", "not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Run(context.Background(), Cmd{Argv: tt.argv})
			var pe *Error
			if !errors.As(err, &pe) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Run err = %v, want a one-line *Error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Run err = %q, want %q in it", err, w)
				}
			}
		})
	}
	var ee *exec.ExitError
	err := Run(context.Background(), Cmd{Argv: []string{"sh", "-c", "exit 4"}})
	if !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Errorf("exit 4: err %v, want an *exec.ExitError with code 4", err)
	}
}

func TestRunStreams(t *testing.T) {
	var out, errb bytes.Buffer
	err := Run(context.Background(), Cmd{Argv: []string{"sh", "-c", "cat; echo err >&2; pwd"}, Dir: "/tmp",
		Stdin: strings.NewReader("in\n"), Stdout: &out, Stderr: &errb, Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != "in\n/tmp\n" || errb.String() != "err\n" {
		t.Errorf("stdout %q, stderr %q, want the stdin line and /tmp, and err", out.String(), errb.String())
	}
	b, err := Output(context.Background(), Cmd{Argv: []string{"sh", "-c", "echo out; echo err >&2"}})
	if err != nil || string(b) != "out\n" {
		t.Errorf("Output = %q, %v, want \"out\\n\"", b, err)
	}
}

func TestStartKill(t *testing.T) {
	p, err := Start(Cmd{Argv: []string{"sh", "-c", "echo hello; exec sleep 30"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	p.Kill()
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not reaped 5 s after Kill")
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Err = %v, want killed", err)
	}
	if p.Output() != "hello\n" {
		t.Errorf("Output = %q", p.Output())
	}
	p.Kill() // after the reaping: a no-op
}

func TestTailAndLastLines(t *testing.T) {
	tl := NewTail(8)
	fmt.Fprint(tl, "0123456789abc")
	if tl.String() != "56789abc" {
		t.Errorf("tail = %q, want the last 8 bytes", tl.String())
	}
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\n\n  c  \n\n", 2, "b | c"},
		{"only", 3, "only"},
		{"", 3, ""},
		{"x\r\ny\r\n", 1, "y"},
	} {
		if got := LastLines(tt.in, tt.n); got != tt.want {
			t.Errorf("LastLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// alive reports whether pid is alive; a zombie waiting for its new
// parent to reap it counts as ended.
func alive(pid int) bool {
	_, err := StartTime(pid)
	return err == nil
}
