package vm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cca-testbed/cell"
	"cca-testbed/checks"
	"cca-testbed/emulated"
	"cca-testbed/images/firmware"
	"cca-testbed/internal/timeout"
	"cca-testbed/matrix"
	"cca-testbed/qemu"
	"cca-testbed/rmi"
	"cca-testbed/snapshot"
)

// These tests boot real kernels with a real Debian userspace under QEMU
// (TCG). They need what scripts/setup-host installs, and build into the
// shared cache on first use. Those that boot run in parallel (go test's
// -parallel, GOMAXPROCS by default, bounds them: two on a 2-core machine):
// one TCG guest keeps one core busy, and much of a test is waiting.

// newBackend is a backend with o whose temporary run directories go to a
// directory of the test's own (ownTemp) unless o names one.
func newBackend(t *testing.T, o Options) *Backend {
	t.Helper()
	o.Logger = nil
	if o.TempDir == "" {
		o.TempDir = ownTemp(t)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ownTemp is a directory of the test's own for the run directories of
// its backends (newBackend), so tests can boot in parallel and each still
// be checked for what it left: when the test ends (after the instances it
// closes in defers or in cleanups registered later), no run directory and
// no QEMU of its may be left.
// It is short, not t.TempDir (which carries the test's name): QMP's unix
// socket lives in the run directory and its path is bounded (107 bytes).
func ownTemp(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vmt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	t.Cleanup(func() {
		for _, l := range leaks(d) {
			t.Error(l)
		}
	})
	return d
}

// leaks lists the run directories in tmp and the live QEMU children of
// this process that run from tmp (their command line names it): only what
// one test made, never another test's or another testbed's.
func leaks(tmp string) []string {
	var out []string
	dirs, _ := filepath.Glob(filepath.Join(tmp, "cca-testbed-*"))
	for _, d := range dirs {
		out = append(out, "run directory left behind: "+d)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		if ppid(p) != os.Getpid() {
			continue
		}
		// A reaped-to-be zombie has an empty cmdline: it is not running.
		b, err := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		argv0, _, _ := strings.Cut(string(b), "\x00")
		if err == nil && strings.HasPrefix(filepath.Base(argv0), "qemu-system-") && strings.Contains(string(b), tmp) {
			out = append(out, "QEMU left running: "+strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")))
		}
	}
	return out
}

// ppid is the parent pid in a /proc/PID/stat file, -1 if unreadable. The
// fields follow the command name's closing parenthesis (the name itself
// may hold spaces and parentheses).
func ppid(statPath string) int {
	b, err := os.ReadFile(statPath)
	if err != nil {
		return -1
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return -1
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return n
}

// grandchildNamed reports whether a child of pid runs with argv[0] name.
func grandchildNamed(pid int, name string) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		if ppid(p) == pid && strings.HasPrefix(string(b), name+"\x00") {
			return true
		}
	}
	return false
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}

// TestLeaks: the leftover check sees a QEMU-named child of this process
// running from the test's directory and a run directory in it, and passes
// by a QEMU-named child running from elsewhere (another test's), a
// QEMU-named process that is not its child (another testbed's) and run
// directories elsewhere.
func TestLeaks(t *testing.T) {
	tmp, other := ownTemp(t), t.TempDir()
	for _, d := range []string{filepath.Join(other, "cca-testbed-theirs"), filepath.Join(tmp, "unrelated")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Not our child: bash's, named as QEMU is.
	theirs := exec.Command("bash", "-c", "exec -a qemu-system-aarch64 sleep 60 & wait")
	theirs.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := theirs.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { syscall.Kill(-theirs.Process.Pid, syscall.SIGKILL); theirs.Wait() }()
	waitFor(t, func() bool { return grandchildNamed(theirs.Process.Pid, "qemu-system-aarch64") })
	// Our children named as QEMU is, one running from each directory (the
	// directory is sh's $0; "; :" keeps sh from exec'ing sleep).
	fake := func(dir string) *exec.Cmd {
		c := &exec.Cmd{Path: "/bin/sh", Args: []string{"qemu-system-aarch64", "-c", "sleep 60; :", dir}}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	elsewhere := fake(other)
	defer func() { elsewhere.Process.Kill(); elsewhere.Wait() }()
	if got := leaks(tmp); len(got) != 0 {
		t.Fatalf("leaks with nothing of ours left: %q", got)
	}

	ours := fake(tmp)
	dir, err := os.MkdirTemp(tmp, "cca-testbed-x-")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(leaks(tmp), "\n")
	if !strings.Contains(got, "QEMU left running: qemu-system-aarch64 -c sleep 60; : "+tmp) || !strings.Contains(got, "run directory left behind: "+dir) {
		t.Errorf("leaks missed ours:\n%s", got)
	}
	ours.Process.Kill()
	ours.Wait()
	os.Remove(dir)
	if got := leaks(tmp); len(got) != 0 {
		t.Errorf("leaks after cleaning up: %q", got)
	}
}

func mustCell(t *testing.T, s string) cell.Cell {
	t.Helper()
	c, err := cell.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFidelity boots cells for real, grades them, and compares each
// snapshot with the emulated model's, fact for fact: 0 differences is the
// bar (issue: the model must agree with every real cell).
func TestFidelity(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	cells := []cell.Cell{mustCell(t, "platform/realm"), mustCell(t, "faux/realm"), mustCell(t, "platform/host-da")}
	ctx := context.Background()
	if err := b.Prepare(ctx, cells); err != nil {
		t.Fatal(err)
	}
	results, err := matrix.Run(ctx, b, cells, matrix.Options{Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		for _, res := range r.Results {
			if res.Status != checks.Pass && res.Status != checks.XFail {
				t.Errorf("%s %s: %s, measured %q, expected %q", r.Name, res.Check, res.Status, res.Measured, res.Expected)
			}
		}
		inst, err := emulated.Backend{}.Start(ctx, r.Cell)
		if err != nil {
			t.Fatal(err)
		}
		model, err := matrix.Snapshot(ctx, inst)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range snapshot.Diff(r.Snapshot, model) {
			t.Errorf("%s: real vs model: %s", r.Name, ch)
		}
		want := "emulated-rmi" // the kernel glue's own conduit
		if r.Cell.Role == cell.Realm {
			want = "realmfw:realm" // the realm firmware, over SMC
		}
		if r.Snapshot.Meta.Backend != "qemu" || !strings.HasPrefix(r.Snapshot.Meta.Conduit, want) {
			t.Errorf("%s: meta %+v: want the qemu backend and conduit %s", r.Name, r.Snapshot.Meta, want)
		}
	}
}

// TestFaults: each way a boot or a session can go wrong ends in a clear
// error, promptly, with no QEMU process or run directory left behind.
func TestFaults(t *testing.T) {
	t.Parallel()
	c := mustCell(t, "platform/plain")
	ctx := context.Background()
	if err := newBackend(t, Options{}).Prepare(ctx, []cell.Cell{c}); err != nil {
		t.Fatal(err)
	}

	t.Run("kernel panic", func(t *testing.T) {
		b := newBackend(t, Options{ExtraCmdline: "init=/nonexistent"})
		start := time.Now()
		_, err := b.Start(ctx, c)
		var be *qemu.BootError
		if !errors.As(err, &be) || !strings.Contains(err.Error(), "panic") {
			t.Fatalf("err = %v, want a BootError naming the panic", err)
		}
		if strings.Count(err.Error(), "boot failed") != 1 {
			t.Errorf("err = %v: say \"boot failed\" once", err)
		}
		if cl := matrix.ClassOf(err); cl != matrix.ClassBoot {
			t.Errorf("class %q, want %q: a panic is a finding", cl, matrix.ClassBoot)
		}
		t.Logf("error: %v", err)
		if d := time.Since(start); d > timeout.Scaled(60*time.Second) {
			t.Errorf("panic noticed after %s", d)
		}
	})

	t.Run("sshd never starts", func(t *testing.T) {
		b := newBackend(t, Options{ExtraCmdline: "systemd.mask=ssh.socket systemd.mask=ssh.service", BootTimeout: 20 * time.Second})
		inst, err := b.Start(ctx, c)
		if err == nil {
			inst.Close() // leave nothing running for the tests after this one
		}
		if err == nil || !strings.Contains(err.Error(), "no SSH") {
			t.Fatalf("err = %v, want no SSH with the console's last lines", err)
		}
		if cl := matrix.ClassOf(err); cl != matrix.ClassInfra {
			t.Errorf("class %q, want %q", cl, matrix.ClassInfra)
		}
		t.Logf("error: %v", err)
	})

	t.Run("QEMU killed, SSH hanging, then closed", func(t *testing.T) {
		b := newBackend(t, Options{})
		inst, err := b.Start(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		li := inst.(*Instance)
		// A command that hangs past its deadline fails on time and leaves
		// the connection usable.
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = li.SSH().Run(short, "sleep", "600")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("hanging command: err = %v, want DeadlineExceeded", err)
		}
		if r, err := li.SSH().Run(ctx, "true"); err != nil || r.ExitCode != 0 {
			t.Errorf("after a timeout: %v %v", r, err)
		}
		if err := syscall.Kill(li.VM().Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case <-li.VM().Exited():
		case <-time.After(10 * time.Second):
			t.Fatal("QEMU's death not noticed within 10 s")
		}
		if !errors.Is(li.VM().Err(), qemu.ErrExited) {
			t.Errorf("VM.Err = %v, want ErrExited", li.VM().Err())
		}
		if _, err := matrix.Snapshot(ctx, inst); err == nil {
			t.Error("snapshot of a dead VM succeeded")
		}
		inst.Close()
	})

	t.Run("Ctrl-C during boot", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		b := newBackend(t, Options{})
		b.opts.Progress = func(_, phase string) {
			if phase == "boot" {
				time.AfterFunc(2*time.Second, cancel)
			}
		}
		start := time.Now()
		_, err := b.Start(cctx, c)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want Canceled", err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("cancel took %s", d)
		}
	})

	t.Run("bad RSI table", func(t *testing.T) {
		table, err := newBackend(t, Options{}).rsiTable(mustCell(t, "platform/realm"))
		if err != nil {
			t.Fatal(err)
		}
		table[0x18] = 48 // IPA width; the checksum no longer matches either
		b := newBackend(t, Options{RSITable: table})
		start := time.Now()
		_, err = b.Start(ctx, mustCell(t, "platform/realm"))
		var be *qemu.BootError
		if !errors.As(err, &be) || be.Reason != "realm firmware fault" || !strings.Contains(be.Line, "realmfw: fatal: RSI table: checksum mismatch") {
			t.Fatalf("err = %v, want a BootError with the firmware's line", err)
		}
		if !strings.Contains(be.Excerpt, "realmfw: fatal:") {
			t.Errorf("excerpt lacks the firmware's line:\n%s", be.Excerpt)
		}
		if d := time.Since(start); d > timeout.Scaled(30*time.Second) {
			t.Errorf("fault noticed after %s", d)
		}
	})

	t.Run("missing firmware", func(t *testing.T) {
		_, err := New(Options{Machine: qemu.ProfileRME, Firmware: filepath.Join(t.TempDir(), "flash.bin")})
		if !errors.Is(err, qemu.ErrFirmware) || !strings.Contains(err.Error(), "flash.bin") {
			t.Fatalf("err = %v, want ErrFirmware naming the file", err)
		}
	})
}

// TestRealFirmware boots a host cell on the tf-rmm-0.9 build (TF-A v2.15 +
// TF-RMM v0.9, built into the cache by images/firmware): the glue asks the
// real RMM over SMC, the checks grade what it answered, and the model's
// tf-rmm-0.9 profile must agree with the real boot fact for fact, every
// firmware answer included.
func TestRealFirmware(t *testing.T) {
	t.Parallel()
	b, c := preparedCell(t, "platform/host@tf-rmm-0.9", Options{}) // the kernel TestFidelity builds too
	_, r := bootGraded(t, b, c)
	ctx := context.Background()
	m := r.Snapshot.Meta
	if m.Conduit != "smc" || m.RealFirmware != "tf-rmm-0.9" || !strings.Contains(m.RMMVersion, "RMM v.0.9.0") {
		t.Errorf("meta %+v: want conduit smc, real firmware tf-rmm-0.9 and the RMM's v.0.9.0 line", m)
	}
	// The RMM 2.0 refuses the RFC's revision 1.0 and names 2.0 as both
	// lower and higher (TF-RMM smc_version): the glue records it raw.
	want := "x0=0x1 x1=0x20000 x2=0x20000 x3=0x0"
	if got, _ := r.Snapshot.Lookup(snapshot.KindAnswer, snapshot.AnswerPath(0xC4000150, 0x10000)); got != want {
		t.Errorf("RMI_VERSION(1.0) answered %q, want %q", got, want)
	}
	if n := len(r.Snapshot.Of(snapshot.KindAnswer)); n != 9 {
		t.Errorf("%d answers recorded, want the glue's 9", n)
	}
	agreesWithModel(t, ctx, c, r.Snapshot)
}

// agreesWithModel fails t for every fact in which the emulated model of
// cell c differs from real, the snapshot of its real boot.
func agreesWithModel(t *testing.T, ctx context.Context, c cell.Cell, real *snapshot.Snapshot) {
	t.Helper()
	inst, err := emulated.Backend{}.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	model, err := matrix.Snapshot(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range snapshot.Diff(real, model) {
		t.Errorf("%s: real vs model: %s", c, ch)
	}
}

// TestFirmwareFaults: a firmware that hangs is named by the last stage it
// printed, and a cell whose firmware this machine lacks fails before any
// QEMU starts; neither leaves anything running.
func TestFirmwareFaults(t *testing.T) {
	t.Parallel()
	c := mustCell(t, "platform/host@tf-rmm-0.9")
	ctx := context.Background()

	t.Run("missing", func(t *testing.T) {
		b := newBackend(t, Options{FirmwareImage: func(context.Context, cell.Firmware) (string, error) {
			return "", errors.New("no sources")
		}})
		_, err := b.Start(ctx, c)
		if err == nil || !strings.Contains(err.Error(), "firmware tf-rmm-0.9 is not available") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("err = %v, want one line saying the firmware is not available", err)
		}
	})

	t.Run("hang", func(t *testing.T) {
		good := newBackend(t, Options{})
		if err := good.Prepare(ctx, []cell.Cell{c}); err != nil {
			t.Fatal(err)
		}
		flash, err := good.flash(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		// The same image with an empty FIP (its ToC header kept, no
		// entries): BL1 finds no BL2, says so and spins in its panic loop.
		data, err := os.ReadFile(flash)
		if err != nil {
			t.Fatal(err)
		}
		const fip = 64 * 4096
		clear(data[fip+16:])
		hung := filepath.Join(t.TempDir(), "flash.bin")
		if err := os.WriteFile(hung, data, 0o600); err != nil {
			t.Fatal(err)
		}
		b := newBackend(t, Options{Firmware: hung, BootTimeout: timeout.Scaled(12 * time.Second)})
		_, err = b.Start(ctx, c)
		if err == nil || !strings.Contains(err.Error(), "stopped in the firmware after BL1") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("err = %v, want one line naming BL1 as the last stage", err)
		}
		t.Logf("error: %v", err)
	})
}

// BenchmarkBootToSSH measures QEMU start to the first SSH session of one
// cell, kernel and rootfs cached (go test ./vm -run '^$' -bench Boot).
func BenchmarkBootToSSH(b *testing.B) {
	bk, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	c := cell.Cell{Variant: cell.Platform, Role: cell.Realm, Userspace: cell.Forky}
	ctx := context.Background()
	if err := bk.Prepare(ctx, []cell.Cell{c}); err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for b.Loop() {
		inst, err := bk.Start(ctx, c)
		if err != nil {
			b.Fatal(err)
		}
		total += inst.(*Instance).BootToSSH
		inst.Close()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-ssh")
}

func TestRunDirMadeAbsolute(t *testing.T) {
	b := newBackend(t, Options{RunDir: "results/cells"})
	if !filepath.IsAbs(b.opts.RunDir) {
		t.Fatalf("RunDir %q is relative; ssh_config needs absolute paths", b.opts.RunDir)
	}
}

func TestHostAlias(t *testing.T) {
	for in, want := range map[string]string{"faux/realm": "faux_realm", "platform/realm@trixie": "platform_realm-trixie"} {
		if got := HostAlias(mustCell(t, in)); got != want {
			t.Errorf("HostAlias(%s) = %q, want %q", in, got, want)
		}
	}
}

// TestResume: a kept cell saves its booted guest once and later starts
// from it with -loadvm, faster than a boot and just as usable.
func TestResume(t *testing.T) {
	t.Parallel()
	c := mustCell(t, "platform/plain")
	b := newBackend(t, Options{RunDir: t.TempDir(), Resume: true})
	ctx := context.Background()
	first, err := b.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	fresh := first.(*Instance).BootToSSH
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := b.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	resumed := again.(*Instance).BootToSSH
	t.Logf("boot to SSH %s, resumed %s", fresh, resumed)
	// reproduce.sh, as qemu wrote it, makes the overlay again when it is gone.
	rep, err := os.ReadFile(filepath.Join(again.(*Instance).dir, qemu.Reproduce))
	if n := strings.Count(string(rep), "|| qemu-img create -q -f qcow2 -F raw -b "); err != nil || n != 1 {
		t.Errorf("reproduce.sh: %v; %d lines recreating the overlay, want 1:\n%s", err, n, rep)
	}
	if resumed >= fresh {
		t.Errorf("resume took %s, a fresh boot %s: the saved boot was not used", resumed, fresh)
	}
	s, err := matrix.Snapshot(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Lookup(snapshot.KindCVM, "systemd-detect-virt"); v != "none" {
		t.Errorf("resumed plain guest: systemd-detect-virt = %q, want none", v)
	}
}

// TestCleanupStack: undo steps run newest first, all of them, even after
// one fails, and every failure is reported.
func TestCleanupStack(t *testing.T) {
	var order []string
	var s cleanupStack
	errA, errC := errors.New("a failed"), errors.New("c failed")
	s.push(func() error { order = append(order, "a"); return errA })
	s.push(func() error { order = append(order, "b"); return nil })
	s.push(func() error { order = append(order, "c"); return errC })
	err := s.run()
	if got := strings.Join(order, ","); got != "c,b,a" {
		t.Errorf("order %s, want c,b,a", got)
	}
	if !errors.Is(err, errA) || !errors.Is(err, errC) {
		t.Errorf("err = %v, want both failures", err)
	}
	order = nil
	if err := s.run(); err != nil || order != nil {
		t.Errorf("second run: err %v, ran %v; want nothing left to undo", err, order)
	}
}

// TestRunDirCleanup: a temporary run directory is registered for removal
// as soon as it is made; a kept one is not.
func TestRunDirCleanup(t *testing.T) {
	c := mustCell(t, "faux/realm")
	for _, keep := range []bool{false, true} {
		b := &Backend{opts: Options{}}
		if keep {
			b.opts.RunDir = t.TempDir()
		}
		i := &Instance{cell: c, keep: keep}
		if err := b.makeRunDir(context.Background(), i, &bootInputs{}); err != nil {
			t.Fatal(err)
		}
		if err := i.Close(); err != nil {
			t.Fatal(err)
		}
		_, err := os.Stat(i.dir)
		if gone := errors.Is(err, os.ErrNotExist); gone == keep {
			t.Errorf("keep=%v: run dir %s gone=%v after Close", keep, i.dir, gone)
		}
	}
}

// TestSameCellTwice: two instances of one cell in flight with kept run
// directories each get their own directory and both come through; before,
// the second cleared the first's live directory (overlay, QMP socket).
func TestSameCellTwice(t *testing.T) {
	t.Parallel()
	c := mustCell(t, "platform/plain")
	root := t.TempDir()
	b := newBackend(t, Options{RunDir: root})
	results, err := matrix.Run(context.Background(), b, []cell.Cell{c, c}, matrix.Options{Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]bool{}
	for _, r := range results {
		if r.Err != "" || r.Snapshot == nil {
			t.Errorf("%s: %s", r.Name, r.Err)
		}
		if _, err := os.Stat(filepath.Join(r.Dir, qemu.ConsoleLog)); err != nil {
			t.Errorf("%s: %v", r.Name, err)
		}
		dirs[r.Dir] = true
	}
	want := map[string]bool{filepath.Join(root, c.FileName()): true, filepath.Join(root, c.FileName()+".2"): true}
	if len(dirs) != 2 || !dirs[filepath.Join(root, c.FileName())] || !dirs[filepath.Join(root, c.FileName()+".2")] {
		t.Errorf("run directories %v, want %v", dirs, want)
	}
	for d := range dirs {
		if InUse(d) {
			t.Errorf("%s still held after Close", d)
		}
	}
}

// smcccBusCase is one version of the SMCCC bus series as a realm.
type smcccBusCase struct {
	name, cell    string
	dev, modalias string // the RSI device under /sys and its MODALIAS
	aliases       []string
}

// smcccBusCases are the versions TestSMCCCBusRealm boots: make test boots
// the queued one; the nightly tag adds v7 as posted (nightly_test.go).
var smcccBusCases = []smcccBusCase{
	{"next", "smccc-bus-next/realm", "devices/arm-rsi", "arm_smccc:fC4000190", nil},
}

// TestSMCCCBusRealm boots each SMCCC bus recipe as a realm through the
// realm firmware: v7 as posted (variants/smccc-bus) and the version
// queued for the next merge window (variants/smccc-bus-next). It asserts
// what the real kernel did: its modules.alias carries arm_cca_guest's
// arm_smccc alias (by service name in v7, by function ID queued) and no
// longer upstream's platform one; the SMCCC core added the RSI device with
// no parent because RSI_VERSION answered over SMC (v7: arm-rsi-dev-1,
// queued: arm-rsi); udev loaded arm_cca_guest by its MODALIAS and it bound
// the device; realm_guest reads 1; there is no arm-cca-dev; and so forky's
// systemd, which looks for arm-cca-dev, says none. The emulated model must
// agree fact for fact.
func TestSMCCCBusRealm(t *testing.T) {
	t.Parallel()
	for _, tc := range smcccBusCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := mustCell(t, tc.cell)
			b := newBackend(t, Options{})
			if err := b.Prepare(ctx, []cell.Cell{c}); err != nil {
				t.Fatal(err)
			}
			alias := modulesAlias(t, ctx, b, c)
			for _, want := range append([]string{"alias " + tc.modalias + " arm_cca_guest\n"}, tc.aliases...) {
				if !bytes.Contains(alias, []byte(want)) {
					t.Errorf("modules.alias lacks %q", want)
				}
			}
			if bytes.Contains(alias, []byte("platform:arm-cca-dev")) {
				t.Error("modules.alias still has upstream's platform:arm-cca-dev alias")
			}
			results, err := matrix.Run(ctx, b, []cell.Cell{c}, matrix.Options{})
			if err != nil {
				t.Fatal(err)
			}
			r := results[0]
			gradedAsExpected(t, r)
			for kind, facts := range map[string][2]string{
				snapshot.KindDevice:   {tc.dev, ""},
				snapshot.KindDriver:   {tc.dev, "arm_cca_guest"},
				snapshot.KindModalias: {tc.dev, tc.modalias},
				snapshot.KindFile:     {"firmware/cca/realm_guest", "1"},
				snapshot.KindModule:   {"module/arm_cca_guest", "live"},
				snapshot.KindCVM:      {"systemd-detect-virt", "none"},
			} {
				if v, ok := r.Snapshot.Lookup(kind, facts[0]); !ok || v != facts[1] {
					t.Errorf("snapshot %s %s = %q (%v), want %q", kind, facts[0], v, ok, facts[1])
				}
			}
			if _, ok := r.Snapshot.Lookup(snapshot.KindDevice, "devices/platform/arm-cca-dev"); ok {
				t.Error("arm-cca-dev is registered")
			}
			if want := "7.3.4-" + string(c.Variant); r.Snapshot.Meta.Conduit != "realmfw:realm" || r.Snapshot.Meta.Kernel != want {
				t.Errorf("meta %+v: want conduit realmfw:realm, kernel %s", r.Snapshot.Meta, want)
			}
			agreesWithModel(t, ctx, c, r.Snapshot)
		})
	}
}

// recipeRealm is what a recipe variant's realm cell must show on a real
// boot through the realm firmware.
type recipeRealm struct {
	cell   string
	kernel string // the release, e.g. 7.3.4-smccc-bus-next
	// aliases must be in the kernel's modules.alias, notAliases must not.
	aliases, notAliases []string
	// facts are snapshot facts (kind, path, value); absent are device
	// paths that must not exist.
	facts  [][3]string
	absent []string
	// report: the configfs-tsm report hands out the model's token.
	report bool
}

// modulesAlias is modules.alias of cell c's kernel, read from its modules
// disk as the guest will see it.
func modulesAlias(t *testing.T, ctx context.Context, b *Backend, c cell.Cell) []byte {
	t.Helper()
	k, err := b.kernel(ctx, c.Variant)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("debugfs", "-R", "cat /"+k.Release+"/modules.alias", k.ModulesDisk)
	cmd.Stderr = &stderr
	alias, err := cmd.Output()
	if err != nil {
		t.Fatalf("debugfs: %v (%s)", err, stderr.String())
	}
	return alias
}

// bootRecipeRealm builds and boots w's cell, grades it against
// expectations.txt (pass or xfail only), asserts w's facts and that the
// emulated model agrees with the real snapshot fact for fact.
func bootRecipeRealm(t *testing.T, w recipeRealm) {
	t.Helper()
	ctx := context.Background()
	b, c := preparedCell(t, w.cell, Options{})
	alias := modulesAlias(t, ctx, b, c)
	for _, want := range w.aliases {
		if !bytes.Contains(alias, []byte(want)) {
			t.Errorf("modules.alias lacks %q", want)
		}
	}
	for _, bad := range w.notAliases {
		if bytes.Contains(alias, []byte(bad)) {
			t.Errorf("modules.alias still has %q", bad)
		}
	}
	li, r := bootGraded(t, b, c)
	for _, f := range w.facts {
		if v, ok := r.Snapshot.Lookup(f[0], f[1]); !ok || v != f[2] {
			t.Errorf("snapshot %s %s = %q (%v), want %q", f[0], f[1], v, ok, f[2])
		}
	}
	for _, dev := range w.absent {
		if _, ok := r.Snapshot.Lookup(snapshot.KindDevice, dev); ok {
			t.Errorf("%s is registered", dev)
		}
	}
	if r.Snapshot.Meta.Conduit != "realmfw:realm" || r.Snapshot.Meta.Kernel != w.kernel {
		t.Errorf("meta %+v: want conduit realmfw:realm, kernel %s", r.Snapshot.Meta, w.kernel)
	}
	if w.report {
		checkReport(t, li)
	}
	agreesWithModel(t, ctx, c, r.Snapshot)
}

// TestFauxRealm boots the posted faux patch built as a module, as distros
// build arm_cca_guest (variants/faux), as a realm through the realm
// firmware: rsi.c registered no arm-cca-dev, arm_cca_guest has no alias
// (the posting dropped its device table), so udev loaded nothing, no faux
// arm-rsi-dev was created (only the module's own init would), there is no
// report interface, and forky's systemd says none. Nothing was loaded
// (the autoload check, graded, is none). The emulated model must agree
// fact for fact.
func TestFauxRealm(t *testing.T) {
	t.Parallel()
	bootRecipeRealm(t, recipeRealm{
		cell:       "faux/realm",
		kernel:     "7.3.4-faux",
		notAliases: []string{" arm_cca_guest\n", "platform:arm-cca-dev"},
		facts: [][3]string{
			{snapshot.KindAbsent, "kernel/config/tsm", ""},
			{snapshot.KindCVM, "systemd-detect-virt", "none"},
		},
		absent: []string{"devices/faux/arm-rsi-dev", "devices/platform/arm-cca-dev"},
	})
}

// TestFirmwareNamesAgree: every firmware a cell can name has a build, and
// the rme machine loads the kernel where those builds enter it.
func TestFirmwareNamesAgree(t *testing.T) {
	var names []string
	for _, f := range cell.Firmwares {
		names = append(names, string(f.Name))
		if _, err := firmware.Lookup(string(f.Name)); err != nil {
			t.Errorf("cell firmware %s: %v", f.Name, err)
		}
	}
	if got := strings.Join(firmware.Names(), ","); got != strings.Join(names, ",") {
		t.Errorf("builds %s, cell firmwares %s", got, strings.Join(names, ","))
	}
	if qemu.RMEKernelAddr != firmware.KernelBase {
		t.Errorf("qemu loads the kernel at %#x, the builds enter it at %#x", qemu.RMEKernelAddr, firmware.KernelBase)
	}
}

// TestStockRealm boots Debian's unpatched 7.3 as a realm through the realm
// firmware and asserts what the real kernel did: upstream rsi.c found the
// realm over SMC and registered arm-cca-dev, udev autoloaded
// arm_cca_guest through its alias (which binds nothing), forky's systemd
// says cca, and the configfs-tsm report carries the model's token for our
// challenge. The emulated model must agree fact for fact.
func TestStockRealm(t *testing.T) {
	t.Parallel()
	upstreamRealm(t, "stock/realm", "7.3.4-stock")
}

// upstreamRealm boots an unmodified 7.3 kernel as a realm through the
// realm firmware and checks it against the expectations, the facts
// upstream's code produces, its configfs-tsm report and the model.
func upstreamRealm(t *testing.T, name, release string) {
	ctx := context.Background()
	b, c := preparedCell(t, name, Options{})
	inst, err := b.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	li := inst.(*Instance)
	t.Logf("%s: SSH after %v", c, li.BootToSSH.Round(time.Millisecond))
	con := li.VM().ConsoleTail(1000)
	for _, want := range []string{"realmfw: RSI table v1", "RME: Using RSI version 1.0"} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	results, err := matrix.Run(ctx, reuse{b, inst}, []cell.Cell{c}, matrix.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := results[0]
	gradedAsExpected(t, r)
	for kind, facts := range map[string][2]string{
		snapshot.KindDevice: {"devices/platform/arm-cca-dev", ""},
		snapshot.KindModule: {"module/arm_cca_guest", "live"},
		snapshot.KindCVM:    {"systemd-detect-virt", "cca"},
	} {
		if v, ok := r.Snapshot.Lookup(kind, facts[0]); !ok || v != facts[1] {
			t.Errorf("snapshot %s %s = %q (%v), want %q", kind, facts[0], v, ok, facts[1])
		}
	}
	if r.Snapshot.Meta.Conduit != "realmfw:realm" || r.Snapshot.Meta.Kernel != release {
		t.Errorf("meta %+v: want conduit realmfw:realm, kernel %s", r.Snapshot.Meta, release)
	}
	checkReport(t, li)
	agreesWithModel(t, ctx, c, r.Snapshot)
}

// reuse is a matrix.Backend that hands out one running instance, so a
// test can look at the VM before and after the matrix grades it.
// preparedCell is a new backend with opts (newBackend) that has built
// what cell name needs.
func preparedCell(t *testing.T, name string, opts Options) (*Backend, cell.Cell) {
	t.Helper()
	c := mustCell(t, name)
	b := newBackend(t, opts)
	if err := b.Prepare(context.Background(), []cell.Cell{c}); err != nil {
		t.Fatal(err)
	}
	return b, c
}

// bootGraded boots c (closed when the test ends), runs the matrix's checks
// on it and asserts that each came out as its expectation says.
func bootGraded(t *testing.T, b *Backend, c cell.Cell) (*Instance, matrix.CellResult) {
	t.Helper()
	ctx := context.Background()
	inst, err := b.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close() })
	results, err := matrix.Run(ctx, reuse{b, inst}, []cell.Cell{c}, matrix.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gradedAsExpected(t, results[0])
	return inst.(*Instance), results[0]
}

type reuse struct {
	*Backend
	inst matrix.Instance
}

func (r reuse) Start(context.Context, cell.Cell) (matrix.Instance, error) {
	return keepOpen{r.inst}, nil
}

// keepOpen leaves closing to the test.
type keepOpen struct{ matrix.Instance }

func (keepOpen) Close() error { return nil }

// checkReport asks the guest's configfs-tsm for a report: the realm
// kernel's provider calls RSI_ATTESTATION_TOKEN_INIT and _CONTINUE, and
// the outblob must be the model's token for this challenge, byte for byte.
func checkReport(t *testing.T, li *Instance) {
	t.Helper()
	ctx := context.Background()
	var challenge [64]byte
	for i := range challenge {
		challenge[i] = byte(0xA0 + i)
	}
	const rep = "/sys/kernel/config/tsm/report/testbed"
	sh := li.SSH()
	if err := sh.Upload(ctx, "/tmp/challenge", challenge[:], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, argv := range [][]string{{"mkdir", rep}, {"dd", "if=/tmp/challenge", "of=" + rep + "/inblob", "bs=64", "count=1"}} {
		if r, err := sh.Run(ctx, argv...); err != nil || r.ExitCode != 0 {
			t.Fatalf("%v: %v %+v", argv, err, r)
		}
	}
	provider, err := sh.ReadFile(ctx, rep+"/provider")
	if err != nil || strings.TrimSpace(string(provider)) != "arm_cca_guest" {
		t.Errorf("report provider %q (%v), want arm_cca_guest", provider, err)
	}
	out, err := sh.ReadFile(ctx, rep+"/outblob")
	if err != nil {
		t.Fatalf("outblob: %v", err)
	}
	p, err := rmi.LookupProfile("realm")
	if err != nil {
		t.Fatal(err)
	}
	want, err := rmi.New(p).Token(challenge)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("outblob (%d bytes) is not the model's token for the challenge (%d bytes)", len(out), len(want))
	}
	tok, err := rmi.ParseToken(out)
	if err != nil {
		t.Fatalf("outblob: %v", err)
	}
	rim, _ := rmi.New(p).Measurement(rmi.RIMIndex)
	if !bytes.Equal(tok.Challenge, challenge[:]) || !bytes.Equal(tok.RPV, p.Realm.RPV[:]) || tok.HashAlgo != p.Realm.HashAlgo.String() ||
		!bytes.Equal(tok.RIM, rim) || !tok.Model || tok.VerificationService != rmi.ModelLabel {
		t.Errorf("token %+v: want our challenge, the profile's RPV and hash algorithm, the model's RIM, signatures and label", tok)
	}
}

// gradedAsExpected fails the test for every check of r that is neither a
// pass nor a recorded expected failure.
func gradedAsExpected(t *testing.T, r matrix.CellResult) {
	t.Helper()
	for _, res := range r.Results {
		if res.Status != checks.Pass && res.Status != checks.XFail {
			t.Errorf("%s %s: %s, measured %q, expected %q", r.Name, res.Check, res.Status, res.Measured, res.Expected)
		}
	}
}

// TestPrepareLaneFails: when the firmware lane fails, Prepare returns
// its error, not the kernel lane's cancellation, and returns promptly.
func TestPrepareLaneFails(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{FirmwareImage: func(context.Context, cell.Firmware) (string, error) {
		return "", errors.New("no sources")
	}})
	start := time.Now()
	err := b.Prepare(context.Background(), []cell.Cell{mustCell(t, "platform/host@tf-rmm-0.9")})
	if err == nil || !strings.Contains(err.Error(), "firmware tf-rmm-0.9 is not available") {
		t.Fatalf("err = %v, want the firmware lane's error", err)
	}
	t.Logf("failed in %s: %v", time.Since(start), err)
}
