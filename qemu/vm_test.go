package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cca-testbed/internal/timeout"
)

// needQEMU fails (never skips) when scripts/setup-host has not run.
func needQEMU(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(DefaultBinary); err != nil {
		t.Fatalf("%s is not installed: run scripts/setup-host (make test does): %v", DefaultBinary, err)
	}
}

// pausedConfig is a VM that QEMU fully sets up but never runs: a
// header-only kernel and -S.
func pausedConfig(t *testing.T) Config {
	t.Helper()
	return Config{
		Kernel: writeFile(t, "Image", fakeImage()),
		Append: "console=ttyAMA0",
		Dir:    t.TempDir(),
		Paused: true,
	}
}

// gone reports whether pid no longer names a live QEMU (reaped, not a zombie).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err != nil || !strings.Contains(string(b), "qemu")
}

func startT(t *testing.T, ctx context.Context, cfg Config, opts Options) *VM {
	t.Helper()
	needQEMU(t)
	v, err := Start(ctx, cfg, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v.Stop(sctx)
		if !gone(v.Pid()) {
			t.Errorf("QEMU pid %d still alive after the test", v.Pid())
		}
	})
	return v
}

// within fails unless ch closes within d.
func within(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	if d == 0 {
		select {
		case <-ch:
		default:
			t.Fatalf("%s has not happened", what)
		}
		return
	}
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s did not happen within %s", what, d)
	}
}

func TestStartStatusStop(t *testing.T) {
	cfg := pausedConfig(t)
	raw := writeFile(t, "data.img", make([]byte, 1<<20))
	qcow := filepath.Join(t.TempDir(), "root.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", qcow, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img (run scripts/setup-host): %v: %s", err, out)
	}
	cfg.Disks = []Disk{{Path: qcow, Format: "qcow2"}, {Path: raw, ReadOnly: true}}
	cfg.MemoryMB = 256 // savevm scans all of RAM
	v := startT(t, context.Background(), cfg, Options{Name: t.Name(), Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if st, err := os.Stat(cfg.Dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("run dir not tightened to 0700: %v %v", st.Mode(), err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout.Scaled(5*time.Second))
	defer cancel()
	st, err := v.Status(ctx)
	if err != nil || st != "prelaunch" {
		t.Fatalf("Status: got %q, %v; want prelaunch", st, err)
	}
	// Raw QMP passes arguments and returns the "return" value.
	out, err := v.QMP(ctx, "query-block", nil)
	if err != nil || !strings.Contains(string(out), "root.qcow2") || !strings.Contains(string(out), "data.img") {
		t.Fatalf("query-block: got %s, %v; want both disks", out, err)
	}
	if _, err := v.QMP(ctx, "no-such-command", map[string]int{"x": 1}); err == nil {
		t.Fatal("an unknown QMP command succeeded")
	}
	if st, err := v.Status(ctx); err != nil || st != "prelaunch" {
		t.Fatalf("QMP unusable after an error reply: %q, %v", st, err)
	}
	// SaveVM's own budget (60 s × timeout.Scale), not the 5 s of the quick
	// commands: savevm writes all of RAM and takes seconds on a busy host.
	if err := v.SaveVM(context.Background(), "t1"); err != nil {
		t.Fatalf("SaveVM: %v", err)
	}
	if err := v.SaveVM(ctx, "bad tag"); !errors.Is(err, ErrConfig) {
		t.Errorf("SaveVM with a bad tag: got %v, want ErrConfig", err)
	}

	// SSH forwarding is bound, on loopback only.
	host, _, _ := net.SplitHostPort(v.SSHAddr())
	if host != "127.0.0.1" {
		t.Errorf("SSHAddr %s is not loopback", v.SSHAddr())
	}
	c, err := net.DialTimeout("tcp", v.SSHAddr(), 2*time.Second)
	if err != nil {
		t.Errorf("nothing listens on %s: %v", v.SSHAddr(), err)
	} else {
		c.Close()
	}

	// The run directory holds what a person needs to look and reproduce.
	cmdline, err := os.ReadFile(filepath.Join(cfg.Dir, CmdlineFile))
	if err != nil || !strings.Contains(string(cmdline), "-qmp unix:"+cfg.Dir) || !strings.Contains(string(cmdline), "hostfwd=tcp:"+v.SSHAddr()+"-:22") {
		t.Errorf("cmdline.txt: %q, %v", cmdline, err)
	}
	if st, err := os.Stat(filepath.Join(cfg.Dir, Reproduce)); err != nil || st.Mode().Perm()&0o100 == 0 {
		t.Errorf("reproduce.sh missing or not executable: %v", err)
	}
	if out, err := exec.Command("sh", "-n", filepath.Join(cfg.Dir, Reproduce)).CombinedOutput(); err != nil {
		t.Errorf("reproduce.sh is not valid sh: %v: %s", err, out)
	}

	// Stop's own budget: savevm may have used up ctx on a busy host.
	sctx, scancel := context.WithTimeout(context.Background(), timeout.Scaled(10*time.Second))
	defer scancel()
	pid := v.Pid()
	if err := v.Stop(sctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !gone(pid) {
		t.Fatalf("QEMU pid %d alive after Stop", pid)
	}
	if err := v.Wait(); err != nil {
		t.Errorf("Wait after Stop: %v, want nil", err)
	}
	within(t, v.Exited(), 0, "Exited after Stop")
	if err := v.Stop(sctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, QMPSocket)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("qmp.sock left behind: %v", err)
	}
	for _, f := range []string{ConsoleLog, CmdlineFile, Reproduce} {
		if _, err := os.Stat(filepath.Join(cfg.Dir, f)); err != nil {
			t.Errorf("%s removed from a caller's Dir: %v", f, err)
		}
	}
	start := time.Now()
	if _, err := v.QMP(context.Background(), "query-status", nil); !errors.Is(err, ErrExited) {
		t.Errorf("QMP after exit: got %v, want ErrExited", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("QMP after exit took %s", time.Since(start))
	}
	// The snapshot really landed in the qcow2.
	if out, err := exec.Command("qemu-img", "snapshot", "-l", qcow).CombinedOutput(); err != nil || !strings.Contains(string(out), "t1") {
		t.Errorf("snapshot t1 not in %s: %v: %s", qcow, err, out)
	}
}

func TestKilledQEMU(t *testing.T) {
	v := startT(t, context.Background(), pausedConfig(t), Options{})
	if err := syscall.Kill(v.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	within(t, v.Exited(), 5*time.Second, "Exited after SIGKILL")
	err := v.Wait()
	var ie *InfraError
	if !errors.As(err, &ie) || !errors.Is(err, ErrExited) {
		t.Fatalf("Wait: got %v, want an InfraError wrapping ErrExited", err)
	}
	if !strings.Contains(err.Error(), "signal: killed") {
		t.Errorf("message %q does not say how QEMU died", err)
	}
	if !gone(v.Pid()) {
		t.Error("QEMU not reaped")
	}
}

func TestContextCancelStopsQEMU(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	v := startT(t, ctx, pausedConfig(t), Options{StopGrace: 2 * time.Second})
	cancel()
	within(t, v.Exited(), 3*time.Second, "reaping after cancel")
	if err := v.Wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait: got %v, want context.Canceled", err)
	}
	if !gone(v.Pid()) {
		t.Error("QEMU alive after cancel")
	}
}

func TestFrozenQEMU(t *testing.T) {
	v := startT(t, context.Background(), pausedConfig(t), Options{StopGrace: time.Second})
	// A stopped process keeps its sockets open but never answers: the
	// worst case for a QMP client without deadlines.
	if err := syscall.Kill(v.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := v.Status(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Status on a frozen QEMU: got %v, want a deadline error", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Status took %s past its 300ms deadline", el)
	}
	start = time.Now()
	err = v.Stop(context.Background())
	var ie *InfraError
	if !errors.As(err, &ie) || ie.Op != "stop" {
		t.Errorf("Stop of a frozen QEMU: got %v, want an InfraError saying it was killed", err)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("Stop took %s with a 1s grace", el)
	}
	if !gone(v.Pid()) {
		t.Error("frozen QEMU survived Stop")
	}
}

func TestQEMUMissing(t *testing.T) {
	cfg := pausedConfig(t)
	cfg.Binary = "/nonexistent"
	_, err := Start(context.Background(), cfg, Options{})
	var ie *InfraError
	if !errors.Is(err, ErrQEMUMissing) || !errors.As(err, &ie) || ie.Op != "lookup" {
		t.Fatalf("got %v, want an InfraError(lookup) wrapping ErrQEMUMissing", err)
	}
	if !strings.Contains(err.Error(), "run scripts/setup-host") {
		t.Errorf("message %q does not say what to do", err)
	}
}

func TestQEMURejectsCommandLine(t *testing.T) {
	needQEMU(t)
	cfg := pausedConfig(t)
	cfg.Extra = []string{"-device", "no-such-device-xyz"}
	start := time.Now()
	_, err := Start(context.Background(), cfg, Options{})
	var ie *InfraError
	if !errors.As(err, &ie) || !errors.Is(err, ErrExited) || ie.Op != "start" {
		t.Fatalf("got %v, want an InfraError(start) wrapping ErrExited", err)
	}
	if !strings.Contains(ie.Stderr, "no-such-device-xyz") || !strings.Contains(err.Error(), "no-such-device-xyz") {
		t.Errorf("QEMU's complaint is missing: %q / %q", err, ie.Stderr)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("message is not one line: %q", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %s to notice", el)
	}
}

func TestStartRefusesBadInputs(t *testing.T) {
	needQEMU(t)
	notDir := writeFile(t, "file", nil)
	tests := []struct {
		name string
		mod  func(*Config)
		is   error
	}{
		{"missing disk", func(c *Config) { c.Disks = []Disk{{Path: "/nonexistent.img"}} }, ErrDisk},
		{"bad kernel", func(c *Config) { c.Kernel = writeFile(t, "x", []byte("not a kernel")) }, ErrKernel},
		{"dir is a file", func(c *Config) { c.Dir = notDir }, ErrConfig},
		{"rme bad firmware", func(c *Config) {
			c.Profile, c.Firmware = ProfileRME, writeFile(t, "flash.bin", make([]byte, 100))
		}, ErrFirmware},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := pausedConfig(t)
			tc.mod(&cfg)
			if _, err := Start(context.Background(), cfg, Options{}); !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want %v", err, tc.is)
			}
		})
	}
}

func TestPortCollisionRetry(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPort = func() (int, error) {
		calls++
		if calls == 1 {
			return takenPort, nil
		}
		return freePort()
	}
	t.Cleanup(func() { pickPort = freePort })
	v := startT(t, context.Background(), pausedConfig(t), Options{})
	if calls != 2 || v.SSHAddr() == taken.Addr().String() {
		t.Errorf("got %d port picks and %s, want a retry onto another port than %d", calls, v.SSHAddr(), takenPort)
	}
}

func TestTemporaryDir(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run("keep="+strconv.FormatBool(keep), func(t *testing.T) {
			cfg := pausedConfig(t)
			cfg.Dir = ""
			v := startT(t, context.Background(), cfg, Options{KeepDir: keep})
			dir := v.Dir()
			if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
				t.Fatalf("run dir %s: %v, mode %v; want 0700", dir, err, st.Mode())
			}
			v.Stop(context.Background())
			_, err := os.Stat(dir)
			if keep {
				if err != nil {
					t.Errorf("KeepDir: %s removed", dir)
				}
				os.RemoveAll(dir)
			} else if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary %s left behind: %v", dir, err)
			}
		})
	}
}

func TestRMEProfileAccepted(t *testing.T) {
	// QEMU takes the rme machine (secure + EL2 + x-rme) with a synthetic
	// flash image; paused, so the fake BL1 never runs.
	cfg := pausedConfig(t)
	cfg.Profile = ProfileRME
	cfg.Firmware = writeFile(t, "flash.bin", fakeFlash(FIPOffset+4096, FIPHeaderName))
	cfg.MemoryMB = 512
	v := startT(t, context.Background(), cfg, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := v.Status(ctx); err != nil || st != "prelaunch" {
		t.Fatalf("Status: %q, %v", st, err)
	}
	out, err := v.QMP(ctx, "query-kvm", nil)
	var kvm struct{ Enabled bool }
	if err == nil {
		err = json.Unmarshal(out, &kvm)
	}
	if err != nil || kvm.Enabled {
		t.Errorf("rme must run under TCG: query-kvm %s, %v", out, err)
	}
}

func TestRelativePaths(t *testing.T) {
	cfg := pausedConfig(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, cfg.Kernel)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kernel = rel // QEMU runs in Dir, elsewhere
	v := startT(t, context.Background(), cfg, Options{})
	b, err := os.ReadFile(filepath.Join(cfg.Dir, CmdlineFile))
	if err != nil || !strings.Contains(string(b), "-kernel /") {
		t.Errorf("cmdline.txt has a relative kernel path: %s %v", b, err)
	}
	_ = v
}

// TestQEMUDiesWithUs kills a process that started a VM and checks QEMU
// does not outlive it (Pdeathsig), as after a testbed crash or SIGKILL.
func TestQEMUDiesWithUs(t *testing.T) {
	if os.Getenv("QEMU_TEST_ORPHAN_DIR") != "" {
		return // the child side runs in TestOrphanChild
	}
	needQEMU(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOrphanChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "QEMU_TEST_ORPHAN_DIR="+dir, "QEMU_TEST_ORPHAN_KERNEL="+writeFile(t, "Image", fakeImage()))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	var pid int
	if _, err := fmt.Fscanf(out, "qemu-pid %d\n", &pid); err != nil {
		cmd.Process.Kill()
		t.Fatalf("child did not report a QEMU pid: %v", err)
	}
	if gone(pid) {
		t.Fatalf("QEMU %d not running in the child", pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(3 * time.Second)
	for !gone(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !gone(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("QEMU %d outlived the process that started it", pid)
	}
}

func TestOrphanChild(t *testing.T) {
	dir := os.Getenv("QEMU_TEST_ORPHAN_DIR")
	if dir == "" {
		return // only as TestQEMUDiesWithUs's child
	}
	v, err := Start(context.Background(), Config{Kernel: os.Getenv("QEMU_TEST_ORPHAN_KERNEL"), Dir: dir, Paused: true}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("qemu-pid %d\n", v.Pid())
	select {} // until killed
}
