package kernel

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cca-testbed/internal/proc"
)

// TestMain lets the test binary play a testbed in the middle of a kernel
// build: with KERNEL_TEST_BUILD=<tree> it runs make in tree through the
// build's own runner (maker) and waits to be killed.
func TestMain(m *testing.M) {
	if tree := os.Getenv("KERNEL_TEST_BUILD"); tree != "" {
		mk := &maker{tree: tree, obj: filepath.Join(tree, "obj"), cross: "none-", log: os.Stderr, logPath: "stderr"}
		err := mk.run(context.Background(), "all")
		fmt.Fprintln(os.Stderr, "make returned:", err)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// TestBuildDiesWithTestbed (issue 12.9): when the testbed is killed
// outright in the middle of a build, make and what it started (a compiler
// stands for it here) die too, instead of writing on into the shared
// build directory beside the next run.
func TestBuildDiesWithTestbed(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make: %v (scripts/setup-host installs it)", err)
	}
	tree := t.TempDir()
	pids := filepath.Join(tree, "pids")
	// A recipe like a compile: a child that keeps writing, make waiting.
	mf := "all:\n\tsleep 60 & echo $$! > " + pids + ".tmp; echo $$$$ >> " + pids + ".tmp; mv " + pids + ".tmp " + pids + "; wait\n"
	if err := os.WriteFile(filepath.Join(tree, "Makefile"), []byte(mf), 0o644); err != nil {
		t.Fatal(err)
	}
	testbed := exec.Command(os.Args[0])
	testbed.Env = append(os.Environ(), "KERNEL_TEST_BUILD="+tree)
	var stderr bytes.Buffer
	testbed.Stderr = &stderr
	if err := testbed.Start(); err != nil {
		t.Fatal(err)
	}
	var build []int // the compiler, the recipe's shell
	deadline := time.Now().Add(10 * time.Second)
	for len(build) == 0 {
		if time.Now().After(deadline) {
			testbed.Process.Kill()
			t.Fatalf("the build never started: %s", stderr.String())
		}
		if b, err := os.ReadFile(pids); err == nil {
			for _, f := range strings.Fields(string(b)) {
				pid, err := strconv.Atoi(f)
				if err != nil {
					t.Fatal(err)
				}
				build = append(build, pid)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	testbed.Process.Kill() // SIGKILL: nothing of the testbed's own runs
	testbed.Wait()
	deadline = time.Now().Add(5 * time.Second)
	for _, pid := range build {
		for running(pid) {
			if time.Now().After(deadline) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("build process %d outlived the killed testbed by 5 s (testbed stderr: %s)", pid, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// running reports whether pid is alive; a zombie waiting for its new
// parent to reap it counts as ended.
func running(pid int) bool {
	_, err := proc.StartTime(pid)
	return err == nil
}
