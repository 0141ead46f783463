package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cca-testbed/internal/proc"
)

// TestFlagsNotIgnored: every flag given is read, or refused with a usage
// error that names it and says why.
func TestFlagsNotIgnored(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"variants argument", []string{"variants", "platform"}, `variants: takes no arguments, got "platform"`},
		{"matrix argument", []string{"matrix", "faux/realm"}, `matrix: takes no arguments`},
		{"machine on emulated", []string{"matrix", "--machine", "rme"}, "--machine: the emulated backend boots nothing"},
		{"firmware on emulated", []string{"snapshot", "faux/realm", "--firmware", "flash.bin"}, "--firmware: the emulated backend"},
		{"boot-timeout on emulated", []string{"matrix", "--boot-timeout", "1m"}, "--boot-timeout: the emulated backend"},
		{"cache on emulated", []string{"diff", "platform/realm", "faux/realm", "--cache", "/nonexistent"}, "--cache: the emulated backend"},
		{"negative boot-timeout", []string{"matrix", "--backend", "qemu", "--boot-timeout", "-5s"}, "--boot-timeout -5s: a deadline cannot be negative"},
		{"negative parallel", []string{"matrix", "--parallel", "-1"}, "--parallel -1"},
		{"userspace contradicts cell", []string{"snapshot", "faux/realm@trixie", "--userspace", "forky"}, "--userspace forky contradicts the cell faux/realm@trixie"},
		{"two userspaces for one cell", []string{"snapshot", "faux/realm", "--userspace", "forky,trixie"}, "snapshot: --userspace"},
		{"boot on emulated", []string{"boot", "faux/realm", "--backend", "emulated"}, "boot: --backend emulated: boot always boots under QEMU"},
		{"bench qemu without boots", []string{"bench", "--backend", "qemu"}, "bench: --backend qemu times real boots"},
		{"bench emulated with boots", []string{"bench", "--backend", "emulated", "--boots", "2"}, "bench: --boots 2 boots under QEMU"},
		{"bench cell without boots", []string{"bench", "--cell", "faux/realm"}, "bench: --cell faux/realm is booted only with --boots N"},
		{"host without firmware", []string{"snapshot", "faux/host"}, "role host needs real firmware (faux/host@tf-rmm-0.9)"},
		{"model role on real firmware", []string{"snapshot", "faux/host-da@tf-rmm-0.9"}, "the RMM decides Device Assignment and only the host role exists"},
		{"host role by flags", []string{"snapshot", "--variant", "faux", "--role", "host"}, "role host needs real firmware"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, code := testbed(t, tt.args...)
			if code != exitError || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q, want exit %d and %q", code, stderr, exitError, tt.want)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}

// TestUserspaceBesideCell: --userspace next to a cell without one is
// honoured, not dropped.
func TestUserspaceBesideCell(t *testing.T) {
	out, stderr, code := testbed(t, "snapshot", "faux/realm", "--userspace", "trixie", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var s struct {
		Meta struct {
			Cell      string `json:"cell"`
			Userspace string `json:"userspace"`
		} `json:"meta"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Meta.Cell != "faux/realm@trixie" || s.Meta.Userspace != "trixie" {
		t.Errorf("snapshot of %q (userspace %q), want faux/realm@trixie", s.Meta.Cell, s.Meta.Userspace)
	}
}

// TestBadFlagUsageOnStderr: a mistake prints one line on stderr and no
// usage text on stdout, where it would pass for output.
func TestBadFlagUsageOnStderr(t *testing.T) {
	for _, args := range [][]string{{"matrix", "--colour"}, {"snapshot", "--format"}, {}, {"ssh", "--nope"}} {
		out, stderr, code := testbed(t, args...)
		if code != exitError || out != "" || stderr == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
		}
	}
}

// TestDuplicateCells: a cell named twice runs once, in first order.
func TestDuplicateCells(t *testing.T) {
	for _, args := range [][]string{
		{"--userspace", "forky,forky", "--variant", "faux", "--role", "realm"},
		{"--variant", "faux,platform,faux", "--role", "realm,realm", "--userspace", "forky"},
	} {
		out, stderr, code := testbed(t, append([]string{"matrix", "--format", "json"}, args...)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var rep struct {
			Cells []struct {
				Cell string `json:"cell"`
			} `json:"cells"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range rep.Cells {
			names = append(names, c.Cell)
		}
		want := "faux/realm"
		if len(args) > 0 && strings.Contains(args[1], "platform") {
			want = "platform/realm faux/realm" // the matrix's own order
		}
		if got := strings.Join(names, " "); got != want {
			t.Errorf("%v: cells %q, want %q", args, got, want)
		}
	}
}

// TestOutCheckedFirst: a bad --out fails before any work, naming the path;
// the firmware error that today's code hits first shows nothing was built
// or checked ahead of it.
func TestOutCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	taken := filepath.Join(dir, "taken")
	if err := os.MkdirAll(filepath.Join(taken, "report.md"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		out, want string
	}{
		{file, "--out " + file + ": not a directory"},
		{filepath.Join(file, "sub"), "--out " + filepath.Join(file, "sub") + ": "},
		{taken, filepath.Join(taken, "report.md") + " is in the way of the report (a directory)"},
	} {
		start := time.Now()
		out, stderr, code := testbed(t, "matrix", "--backend", "qemu", "--cache", filepath.Join(dir, "cache"),
			"--machine", "rme", "--firmware", filepath.Join(dir, "no-flash.bin"), "--out", tt.out)
		if code != exitError || !strings.Contains(stderr, tt.want) || out != "" {
			t.Errorf("--out %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", tt.out, code, out, stderr, tt.want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("--out %s: failed after %s, want at once", tt.out, d)
		}
	}
	// A command line refused after --out was checked leaves no --out behind.
	fresh := filepath.Join(dir, "new", "out")
	if _, stderr, code := testbed(t, "matrix", "--out", fresh, "--firmware-profile", "rmm-9"); code != exitError {
		t.Errorf("--firmware-profile rmm-9: exit %d %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
		t.Errorf("a refused run made its --out: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cache")); !os.IsNotExist(err) {
		t.Errorf("the cache was opened before --out was checked: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Errorf("--out FILE changed the file: %q", b)
	}
}

// TestWriteAllGoesOn: one report file that cannot be written costs only
// that file, the error names it, and stdout still gets the report.
func TestWriteAllGoesOn(t *testing.T) {
	dir := t.TempDir()
	// Something has taken a snapshot's name (the --out check looks at the
	// report files only; snapshot names depend on the cells).
	blocked := filepath.Join(dir, "snapshots", "faux_realm.snap")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := testbed(t, "matrix", "--variant", "faux", "--role", "realm,realm@trixie", "--out", dir)
	if code != exitError || !strings.Contains(stderr, "writing "+blocked) {
		t.Errorf("exit %d, stderr %q; want exit 2 naming %s", code, stderr, blocked)
	}
	for _, f := range []string{"report.txt", "report.json", "report.xml", "report.md", "report.html", "snapshots/faux_realm@trixie.snap"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	if !strings.Contains(out, "emulated backend, 2 cells, ") {
		t.Errorf("stdout lacks the report:\n%s", out)
	}
}

// TestOutPermissions: report files are readable by whoever may read the
// directory, whatever the umask.
func TestOutPermissions(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, mode := range []os.FileMode{0o755, 0o750, 0o700} {
		dir := filepath.Join(t.TempDir(), "out")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := testbed(t, "matrix", "--variant", "faux", "--role", "realm", "--out", dir); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, f := range []string{"report.txt", "report.json", "report.html", "snapshots/faux_realm.snap"} {
			st, err := os.Stat(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if want := mode &^ 0o111; st.Mode().Perm() != want {
				t.Errorf("dir %04o: %s is %04o, want %04o", mode, f, st.Mode().Perm(), want)
			}
		}
		if st, err := os.Stat(filepath.Join(dir, "snapshots")); err != nil || st.Mode().Perm() != mode {
			t.Errorf("dir %04o: snapshots/ %v %v", mode, st.Mode(), err)
		}
	}
}

// TestOutReused: a second run into the same --out leaves no snapshot or
// cell directory of the first run's cells beside the new report, and
// touches nothing the testbed did not write.
func TestOutReused(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, code := testbed(t, "matrix", "--variant", "platform,faux", "--role", "realm", "--out", dir); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// What a qemu run would have left, and what the user put there.
	for _, d := range []string{"cells/platform_realm", "cells/platform_realm.2", "cells/mine", "notes"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "snapshots", "mine.snap"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A run directory a live instance holds (vm locks it) is not ours to remove.
	held := filepath.Join(dir, "cells", "platform_realm.3")
	if err := os.MkdirAll(held, 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := os.Open(held)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := testbed(t, "matrix", "--variant", "faux", "--role", "realm,realm@trixie", "--out", dir); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, gone := range []string{"snapshots/platform_realm.snap", "snapshots/platform_realm@trixie.snap", "cells/platform_realm", "cells/platform_realm.2"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s left beside the new report: %v", gone, err)
		}
	}
	for _, kept := range []string{"snapshots/faux_realm.snap", "snapshots/faux_realm@trixie.snap", "snapshots/mine.snap", "cells/mine", "cells/platform_realm.3", "notes"} {
		if _, err := os.Stat(filepath.Join(dir, kept)); err != nil {
			t.Errorf("%s: %v", kept, err)
		}
	}
}

// TestSSHToEndedSession: a session whose QEMU has ended is reported at
// once, not dialled until the deadline.
func TestSSHToEndedSession(t *testing.T) {
	cache := t.TempDir()
	dir := filepath.Join(cache, "run", "faux_realm")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A pid that surely ended: a child we started and reaped.
	p := exec.Command("true")
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	live, err := proc.StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []session{
		{Cell: "faux/realm", Addr: "127.0.0.1:9", Pid: p.Process.Pid, Started: 1},
		// This process is alive, but started at another time: a recycled pid.
		{Cell: "faux/realm", Addr: "127.0.0.1:9", Pid: os.Getpid(), Started: live + 1},
	} {
		file := filepath.Join(dir, sessionFile)
		if err := writeJSON(file, s); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, stderr, code := testbed(t, "ssh", "faux/realm", "--cache", cache, "--", "true")
		if code != exitError || !strings.Contains(stderr, "its QEMU (pid") || !strings.Contains(stderr, "has ended") {
			t.Errorf("pid %d: exit %d, stderr %q", s.Pid, code, stderr)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("pid %d: took %s, want at once", s.Pid, d)
		}
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Errorf("stale session left: %v", err)
		}
	}
}

// TestSecondInterruptExits builds the CLI with a test-only command that
// hangs after Ctrl-C, as a stuck clean-up would: the first SIGINT cancels
// (the process keeps waiting), the second ends it at once.
func TestSecondInterruptExits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI")
	}
	bin := filepath.Join(t.TempDir(), "testbed")
	if out, err := exec.Command("go", "build", "-tags", "testbedhang", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "hang-after-cancel")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("stdout %q, want %q (stderr %q)", lines.Text(), want, stderr.String())
		}
	}
	expect("waiting")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	expect("cancelled, now hanging")
	exited := make(chan error, 1)
	go func() { io.Copy(io.Discard, stdout); exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("the first interrupt ended the process (%v); it must only cancel", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitError {
			t.Errorf("second interrupt: %v, want exit %d", err, exitError)
		}
		if !strings.Contains(stderr.String(), "interrupted twice") {
			t.Errorf("stderr %q", stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second interrupt did not end the process")
	}
}

// TestErrorsNameTheirSubject: an error about a file or a cell names it.
func TestErrorsNameTheirSubject(t *testing.T) {
	cache := t.TempDir()
	dir := filepath.Join(cache, "run", "faux_realm")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	start, err := proc.StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	sess := filepath.Join(dir, sessionFile)
	if err := writeJSON(sess, session{Cell: "faux/realm", Addr: "127.0.0.1:9", Pid: os.Getpid(), Started: start, HostKey: "not a key"}); err != nil {
		t.Fatal(err)
	}
	run := t.TempDir()
	if _, stderr, code := testbed(t, "matrix", "--variant", "faux", "--role", "realm", "--out", run); code != exitOK {
		t.Fatalf("matrix: exit %d %s", code, stderr)
	}
	rj := filepath.Join(run, "report.json")
	b, err := os.ReadFile(rj)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rj, []byte(strings.Replace(string(b), `"cell": "faux/realm"`, `"cell": "faux/queen"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"ssh", "faux/realm", "--cache", cache, "--", "true"}, sess + ": host key"},
		{[]string{"fidelity", run}, "fidelity " + run + ": "},
	} {
		_, stderr, code := testbed(t, tt.args...)
		if code != exitError || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tt.args, code, stderr, tt.want)
		}
	}
}

// TestBootAlreadyUp: a second testbed boot of a cell that is up is refused
// before anything is built (the rme firmware error would come first
// otherwise), instead of booting a twin testbed ssh cannot tell apart.
func TestBootAlreadyUp(t *testing.T) {
	cache := t.TempDir()
	dir := filepath.Join(cache, "run", "faux_realm")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	start, err := proc.StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(dir, sessionFile), session{Cell: "faux/realm", Pid: os.Getpid(), Started: start}); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := testbed(t, "boot", "faux/realm", "--cache", cache, "--machine", "rme", "--firmware", filepath.Join(cache, "none.bin"))
	if code != exitError || !strings.Contains(stderr, "boot: faux/realm is already up") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestHelpAfterDashDash: --help after "--" belongs to the guest command,
// not to testbed ssh.
func TestHelpAfterDashDash(t *testing.T) {
	out, stderr, code := testbed(t, "ssh", "faux/realm", "--cache", t.TempDir(), "--", "ls", "--help")
	if code != exitError || strings.Contains(out, "usage: testbed") || !strings.Contains(stderr, "faux/realm is not running") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

// TestDiffFilesTakeNoBackend: diffing two files brings nothing up, so a
// backend flag there is refused rather than dropped.
func TestDiffFilesTakeNoBackend(t *testing.T) {
	out, stderr, code := testbed(t, "snapshot", "faux/realm")
	if code != exitOK {
		t.Fatalf("exit %d %s", code, stderr)
	}
	f := filepath.Join(t.TempDir(), "a.snap")
	if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := testbed(t, "diff", f, f, "--backend", "qemu"); code != exitError || !strings.Contains(stderr, "diff: --backend: both arguments are snapshot files") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := testbed(t, "diff", f, "faux/realm", "--firmware-profile", "realm"); code != exitOK {
		t.Errorf("a file and a cell: exit %d, stderr %q", code, stderr)
	}
}

// TestRealFirmwareUnavailable: a cell on real firmware, on a machine that
// can neither find its build nor make one (no sources), is one line and
// exit 2, before any QEMU starts.
func TestRealFirmwareUnavailable(t *testing.T) {
	t.Setenv("CCA_TESTBED_FIRMWARE_SRC", t.TempDir())
	// A QEMU of this test's would run from a directory in its own TMPDIR;
	// the vm tests, in another process, may be booting this cell meanwhile.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	out, stderr, code := testbed(t, "snapshot", "platform/host@tf-rmm-0.9", "--backend", "qemu")
	want := "platform/host@tf-rmm-0.9: firmware tf-rmm-0.9 is not available on this machine"
	var errLines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "testbed: ") { // progress lines aside
			errLines = append(errLines, l)
		}
	}
	if code != exitError || len(errLines) != 1 || !strings.Contains(errLines[0], want) || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and one error line with %q", code, out, stderr, exitError, want)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), tmp) && strings.Contains(string(b), "qemu-system-") {
			t.Errorf("left running: %s", strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}
