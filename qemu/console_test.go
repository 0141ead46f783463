package qemu

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWatcherPatterns(t *testing.T) {
	tests := []struct {
		line, reason string // reason "" means no match
	}{
		{"[    1.234567] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)", "kernel panic"},
		{"[    2.000000] Internal error: Oops: 0000000096000005 [#1] PREEMPT SMP", "kernel oops"},
		{"[    2.000000] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008", "kernel oops"},
		{"[    3.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000", "kernel BUG"},
		{"BUG: scheduling while atomic: swapper/0/1/0x00000002", "kernel BUG"},
		{"[   30.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [kworker/0:1:12]", "soft lockup"},
		{"[   60.000000] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "RCU stall"},
		{"[   60.000000] rcu: INFO: rcu_sched self-detected stall on CPU", "RCU stall"},
		{"[  240.000000] INFO: task systemd-udevd:123 blocked for more than 120 seconds.", "hung task"},
		{"[    0.000000] rcu: Hierarchical RCU implementation.", ""},
		{"[  OK  ] Started systemd-udevd.service - Rule-based Manager for Device Events and Files.", ""},
		{"[    1.000000] panic=-1 in the command line", ""},
		{"debian login: ", ""},
		{"DEBUG: nothing wrong", ""},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			w := NewWatcher(nil)
			got := w.Line(tc.line)
			if got != (tc.reason != "") {
				t.Fatalf("Line returned %v, want %v", got, tc.reason != "")
			}
			be := w.Err()
			if tc.reason == "" {
				if be != nil {
					t.Fatalf("got %v, want no failure", be)
				}
				return
			}
			if be == nil || be.Reason != tc.reason || be.Line != tc.line {
				t.Fatalf("got %+v, want reason %q", be, tc.reason)
			}
			if !errors.Is(be, ErrBoot) || strings.Contains(be.Error(), "\n") {
				t.Errorf("BootError %q: not ErrBoot or not one line", be)
			}
		})
	}
}

func TestWatcherExcerpt(t *testing.T) {
	w := NewWatcher(nil)
	matches := 0
	for i := range 80 {
		line := fmt.Sprintf("line %d", i)
		switch i {
		case 40:
			line = "Unable to handle kernel paging request at virtual address dead"
		case 45:
			line = "Kernel panic - not syncing: Oops: Fatal exception" // a second failure
		}
		if w.Line(line) {
			matches++
		}
	}
	if matches != 1 {
		t.Errorf("Line reported %d first matches, want 1", matches)
	}
	be := w.Err()
	if be.Reason != "kernel oops" {
		t.Errorf("reason %q, want the first failure (kernel oops)", be.Reason)
	}
	lines := strings.Split(be.Excerpt, "\n")
	if len(lines) != excerptLines || lines[0] != "line 30" || lines[excerptBefore] != be.Line || lines[len(lines)-1] != "line 59" {
		t.Errorf("excerpt has %d lines from %q to %q, want %d from line 30 through line 59 with the match 11th", len(lines), lines[0], lines[len(lines)-1], excerptLines)
	}
}

func TestWatcherTail(t *testing.T) {
	w := NewWatcher([]Pattern{}) // nothing fails
	for i := range tailLines + 5 {
		w.Line(fmt.Sprintf("l%d\r", i))
	}
	w.Partial("login: ")
	want := fmt.Sprintf("l%d\nl%d\nlogin: ", tailLines+3, tailLines+4)
	if got := w.Tail(2); got != want {
		t.Errorf("Tail(2) = %q, want %q", got, want)
	}
	w.Line("next")
	if got := w.Tail(1); got != "next" {
		t.Errorf("a finished line must replace the partial one: Tail(1) = %q", got)
	}
	if got := strings.Count(w.Tail(5000), "\n") + 1; got != tailLines {
		t.Errorf("Tail keeps %d lines, want %d", got, tailLines)
	}
	if w.Tail(0) != "" || w.Err() != nil {
		t.Error("Tail(0) or Err not empty")
	}
}

func TestWatcherFeed(t *testing.T) {
	w := NewWatcher(nil)
	matched, err := w.Feed(strings.NewReader("a\r\nb\r\n[ 1.0] Kernel panic - not syncing: x\r\nafter"))
	if err != nil || !matched {
		t.Fatalf("Feed: %v, %v", matched, err)
	}
	if got := w.Err().Excerpt; got != "a\nb\n[ 1.0] Kernel panic - not syncing: x\nafter" {
		t.Errorf("excerpt %q", got)
	}
}

func TestCustomPattern(t *testing.T) {
	w := NewWatcher([]Pattern{{"ssh refused", regexp.MustCompile(`sshd.*FAILED`)}})
	if w.Line("Kernel panic - not syncing: ignored by a custom set") {
		t.Error("a default pattern matched with a custom set")
	}
	if !w.Line("[FAILED] Failed to start sshd.service") {
		// The custom regexp is `sshd.*FAILED`: this line has them the other way round.
		w.Line("sshd: FAILED to bind")
	}
	if be := w.Err(); be == nil || be.Reason != "ssh refused" {
		t.Errorf("got %v, want the custom reason", be)
	}
}

// FuzzWatcherFeed: any console bytes, cut anywhere, give the same lines
// as in one piece, and never panic.
func FuzzWatcherFeed(f *testing.F) {
	f.Add([]byte("a\nb\r\nKernel panic - not syncing: x\n"), uint(3))
	f.Add([]byte(""), uint(0))
	f.Add(bytes.Repeat([]byte("x"), maxLine+10), uint(7))
	f.Fuzz(func(t *testing.T, data []byte, cut uint) {
		whole := NewWatcher(nil)
		m1, _ := whole.Feed(bytes.NewReader(data))
		split := NewWatcher(nil)
		c := int(cut % uint(len(data)+1))
		var s splitter
		m2 := false
		for _, part := range [][]byte{data[:c], data[c:]} {
			for _, l := range s.add(part) {
				m2 = split.Line(l) || m2
			}
		}
		if rest := s.flush(); rest != "" {
			m2 = split.Line(rest) || m2
		}
		// A line longer than maxLine is cut where the buffer filled, which
		// depends on the chunking; compare only when no line is that long.
		longest := 0
		for _, l := range bytes.Split(data, []byte("\n")) {
			longest = max(longest, len(l))
		}
		if longest <= maxLine && (m1 != m2 || whole.Tail(tailLines) != split.Tail(tailLines)) {
			t.Errorf("chunking changed the result: %v/%v\n%q\n%q", m1, m2, whole.Tail(tailLines), split.Tail(tailLines))
		}
		if n := strings.Count(whole.Tail(3), "\n"); n > 3 {
			t.Errorf("Tail(3) has %d newlines", n)
		}
	})
}

func TestTailFileFollowsGrowth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	exited := make(chan struct{})
	w := NewWatcher(nil)
	var lines []string
	var matches atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		tailFile(context.Background(), path, w, exited, func(l string) { lines = append(lines, l) }, func() { matches.Add(1) })
	}()
	// The file appears late and grows in pieces, as QEMU writes it.
	time.Sleep(2 * consolePoll)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, piece := range []string{"boot", "ing\nKernel panic - not", " syncing: test\n", "Rebooting in -1 seconds", "\n", "no newline at exit"} {
		f.WriteString(piece)
		time.Sleep(consolePoll / 2)
	}
	deadline := time.Now().Add(2 * time.Second)
	for w.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if w.Err() == nil {
		t.Fatal("the panic was not seen while the file grew")
	}
	close(exited)
	within(t, done, 2*time.Second, "tailFile returning after exit")
	want := []string{"booting", "Kernel panic - not syncing: test", "Rebooting in -1 seconds", "no newline at exit"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q, want %q", lines, want)
	}
	if matches.Load() != 1 {
		t.Errorf("onMatch ran %d times, want 1", matches.Load())
	}
}

// fakeKernel is an arm64 Image that prints msg on the virt machine's PL011
// and then either spins or powers off through PSCI: enough to drive the
// console watcher and the exit path through a real QEMU, no kernel build.
func fakeKernel(t *testing.T, msg string, powerOff bool) string {
	t.Helper()
	b := make([]byte, 4096)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 0x14000010) // b 64: skip the header
	copy(b[imageMagicOffset:], imageMagic)
	code := []uint32{
		0xD2A12001, // movz x1, #0x0900, lsl #16   (PL011 at 0x09000000)
		0x10000162, // adr  x2, msg                (offset 112)
		0x38401443, // loop: ldrb w3, [x2], #1
		0x34000063, // cbz  w3, done
		0x39000023, // strb w3, [x1]
		0x17fffffd, // b    loop
	}
	if powerOff {
		code = append(code,
			0xD2B08000, // movz x0, #0x8400, lsl #16
			0xF2800100, // movk x0, #0x8               (PSCI SYSTEM_OFF)
			0xD4000002, // hvc  #0
		)
	}
	code = append(code, 0x14000000) // b .
	for i, c := range code {
		le.PutUint32(b[64+4*i:], c)
	}
	if 64+4*len(code) > 112 || 112+len(msg) >= len(b) {
		t.Fatal("fake kernel layout overflow")
	}
	copy(b[112:], msg)
	return writeFile(t, "Image", b)
}

func TestBootPanicStopsVM(t *testing.T) {
	msg := "[    0.500000] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000\n" +
		"[    0.500001] Call trace:\n[    0.500002]  fake_probe+0x10/0x20\n" +
		"[    0.500003] Kernel panic - not syncing: Oops: Fatal exception\n"
	cfg := Config{Kernel: fakeKernel(t, msg, false), Dir: t.TempDir(), MemoryMB: 256}
	var mu sync.Mutex
	var seen []string
	start := time.Now()
	v := startT(t, context.Background(), cfg, Options{
		FailLinger: 300 * time.Millisecond,
		OnConsoleLine: func(l string) {
			mu.Lock()
			seen = append(seen, l)
			mu.Unlock()
		},
	})
	within(t, v.Exited(), 10*time.Second, "stopping a panicked guest")
	t.Logf("panic to reaped QEMU: %s after Start", time.Since(start))
	err := v.Wait()
	var be *BootError
	if !errors.As(err, &be) || !errors.Is(err, ErrBoot) {
		t.Fatalf("Wait: got %v, want a BootError", err)
	}
	if be.Reason != "kernel oops" || !strings.Contains(be.Line, "NULL pointer dereference") {
		t.Errorf("got reason %q line %q", be.Reason, be.Line)
	}
	// The trace after the first line made it into the excerpt.
	if !strings.Contains(be.Excerpt, "fake_probe+0x10/0x20") || !strings.Contains(be.Excerpt, "Fatal exception") {
		t.Errorf("excerpt lacks the trace:\n%s", be.Excerpt)
	}
	if !gone(v.Pid()) {
		t.Error("QEMU alive after a boot failure")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 4 {
		t.Errorf("OnConsoleLine saw %d lines, want 4: %q", len(seen), seen)
	}
}

func TestGuestPowerOffIsUnexpectedExit(t *testing.T) {
	// Paused, or the guest could be gone before Start has QMP.
	cfg := Config{Kernel: fakeKernel(t, "hello from a fake kernel\n", true), Dir: t.TempDir(), MemoryMB: 256, Paused: true}
	v := startT(t, context.Background(), cfg, Options{})
	if _, err := v.QMP(context.Background(), "cont", nil); err != nil {
		t.Fatalf("cont: %v", err)
	}
	within(t, v.Exited(), 10*time.Second, "QEMU exiting on PSCI SYSTEM_OFF")
	err := v.Wait()
	var ie *InfraError
	if !errors.As(err, &ie) || !errors.Is(err, ErrExited) || ie.Op != "run" {
		t.Fatalf("Wait: got %v, want InfraError(run) wrapping ErrExited", err)
	}
	if !strings.Contains(err.Error(), "exit status 0") {
		t.Errorf("message %q does not give the exit status", err)
	}
	if got := v.ConsoleTail(5); got != "hello from a fake kernel" {
		t.Errorf("ConsoleTail = %q", got)
	}
	b, _ := os.ReadFile(v.Console())
	if string(b) != "hello from a fake kernel\n" {
		t.Errorf("console.log = %q", b)
	}
}

func TestPatternsDisabled(t *testing.T) {
	cfg := Config{Kernel: fakeKernel(t, "Kernel panic - not syncing: ignored\n", false), Dir: t.TempDir(), MemoryMB: 256}
	v := startT(t, context.Background(), cfg, Options{Patterns: []Pattern{}})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(v.ConsoleTail(1), "ignored") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(v.ConsoleTail(1), "ignored") {
		t.Fatalf("the console line never arrived: %q", v.ConsoleTail(5))
	}
	select {
	case <-v.Exited():
		t.Fatalf("VM stopped with patterns disabled: %v", v.Err())
	case <-time.After(300 * time.Millisecond):
	}
	if err := v.Stop(context.Background()); err != nil || v.Wait() != nil {
		t.Errorf("Stop: %v, Wait: %v", err, v.Wait())
	}
}

func TestPanicBeforeQMPIsBootError(t *testing.T) {
	// The guest panics and powers off at once, as panic=-1 -no-reboot
	// does: whether or not Start saw QMP first, the answer is the kernel's.
	cfg := Config{Kernel: fakeKernel(t, "Kernel panic - not syncing: early\n", true), Dir: t.TempDir(), MemoryMB: 256}
	needQEMU(t)
	v, err := Start(context.Background(), cfg, Options{})
	if err == nil {
		within(t, v.Exited(), 10*time.Second, "QEMU exiting")
		err = v.Wait()
	}
	var be *BootError
	if !errors.As(err, &be) || be.Reason != "kernel panic" {
		t.Fatalf("got %v, want a BootError for the panic", err)
	}
}

// TestWatcherStages follows a real TF-A + TF-RMM boot's announcements
// (TF-A v2.15.0, TF-RMM v0.9.0 on QEMU 10, 2026-11-28) and names the last
// one reached, so a hung firmware can be told where it stopped.
func TestWatcherStages(t *testing.T) {
	console := []struct{ line, stage string }{
		{"NOTICE:  Booting Trusted Firmware", ""},
		{"NOTICE:  BL1: v2.15.0(release):", "BL1"},
		{"NOTICE:  BL1: Booting BL2", "BL1"},
		{"NOTICE:  BL2: v2.15.0(release):", "BL2"},
		{"NOTICE:  BL2: Booting BL31", "BL2"},
		{"NOTICE:  BL31: v2.15.0(release):", "BL31"},
		{"RMM EL3 compat memory reservation enabled.", "BL31"},
		{"Booting RMM v.0.9.0(release) e6f12ae Built: Nov 28 2026 12:40:48 with GCC 14.2.0", "RMM"},
		{"RMI ABI revision v2.0", "RMM"},
		{"Realm device assignment is not supported", "RMM"},
		{"Booting Linux on physical CPU 0x0000000000 [0x000f0510]", "kernel"},
		{"SMC_RMI_VERSION                   10000 > RMI_ERROR_INPUT", "kernel"},
	}
	w := NewWatcher(nil)
	for _, c := range console {
		w.Line(c.line)
		if got := w.Stage(); got != c.stage {
			t.Fatalf("after %q: stage %q, want %q", c.line, got, c.stage)
		}
	}
	if got := w.StageLine("RMM"); !strings.HasPrefix(got, "Booting RMM v.0.9.0(release)") {
		t.Errorf("StageLine(RMM) = %q, want the RMM's version line", got)
	}
	if w.StageAt("BL1").IsZero() || w.StageAt("BL1").After(w.StageAt("kernel")) || !w.StageAt("nosuch").IsZero() {
		t.Errorf("StageAt: BL1 %v, kernel %v", w.StageAt("BL1"), w.StageAt("kernel"))
	}
	if w.Err() != nil {
		t.Errorf("a healthy firmware boot matched a failure pattern: %v", w.Err())
	}
}
