package firmware

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"cca-testbed/images"
	"cca-testbed/qemu"
)

// sharedCache is the cache the real builds go to, so make test and the
// boots that follow share one build root and one flash image.
func sharedCache(t *testing.T) *images.Cache {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("firmware builds need root (make test runs as root)")
	}
	c, err := images.Open("")
	if err != nil {
		t.Fatal(err)
	}
	c.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// builds bounds what TestBuild builds: make test builds tf-rmm-0.9, the
// one its real-firmware boots use; `go test ./images/firmware -run
// 'TestBuild$' -builds all` builds both.
var builds = flag.String("builds", "tf-rmm-0.9", `comma-separated firmware builds, or "all"`)

// TestBuild builds each firmware for real (a cache hit after the first
// time), checks the flash image the way the rme profile will, checks that
// it carries the pinned versions, and times a second, cached, lookup.
func TestBuild(t *testing.T) {
	c := sharedCache(t)
	names := strings.Split(*builds, ",")
	if *builds == "all" {
		names = Names()
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) { testBuild(t, c, name) })
	}
}

func testBuild(t *testing.T, c *images.Cache, name string) {
	s, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	fw, err := Build(ctx, Options{Cache: c, Log: c.Log}, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first Build (cold or cached): %s", time.Since(start).Round(time.Millisecond))
	if err := qemu.CheckFirmware(fw.Flash); err != nil {
		t.Fatalf("built flash refused: %v", err)
	}
	img, err := os.ReadFile(fw.Flash)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{s.TFAVersion + "(release)", "\x00" + s.RMMVersion + "\x00", "RMI ABI revision"} {
		if !bytes.Contains(img, []byte(want)) {
			t.Errorf("flash.bin lacks %q", want)
		}
	}
	if fw.Name != s.Name || fw.TFA != s.TFAVersion || fw.RMM != s.RMMVersion || fw.KernelBase != "0x60000000" {
		t.Errorf("info: got %+v", fw.Info)
	}
	if !strings.HasPrefix(fw.Toolchain, "aarch64-linux-gnu-gcc") {
		t.Errorf("toolchain: got %q, want the cross gcc's version line", fw.Toolchain)
	}
	if info, err := os.Stat(fw.Log); err != nil || info.Size() == 0 {
		t.Errorf("build log: %v", err)
	}

	start = time.Now()
	again, err := Build(ctx, Options{Cache: c}, s)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cached Build: %s", took.Round(time.Millisecond))
	if again.Flash != fw.Flash {
		t.Errorf("second Build gave %s, want the cached %s", again.Flash, fw.Flash)
	}
	if took > 5*time.Second {
		t.Errorf("cached Build took %s; a hit should take well under a second", took)
	}
}

// TestBuildFails: an option TF-RMM rejects fails the build with one line
// naming the step and ending in the log's last lines, keeps the full log,
// and leaves no entry.
func TestBuildFails(t *testing.T) {
	c := sharedCache(t)
	s, _ := Lookup("tf-rmm-0.9")
	s.RMMOptions = append(s.RMMOptions, "RMM_CONFIG=no_such_board_defcfg")
	before, _ := filepath.Glob(filepath.Join(c.Dir, Kind, ".tmp-tf-rmm-0.9-*"))
	_, err := Build(context.Background(), Options{Cache: c, Log: c.Log}, s)
	checkOneLine(t, err, ErrBuild, "firmware tf-rmm-0.9", "tf-rmm configure failed", "last lines:", "full log: ")
	if !strings.Contains(err.Error(), "no_such_board") {
		t.Errorf("error %q does not show the log's complaint about the config", err)
	}
	logPath := err.Error()[strings.LastIndex(err.Error(), "full log: ")+len("full log: "):]
	logPath = strings.TrimSuffix(logPath, ")")
	if b, rerr := os.ReadFile(logPath); rerr != nil || !bytes.Contains(b, []byte("cmake")) {
		t.Errorf("full log %s: %v", logPath, rerr)
	}
	after, _ := filepath.Glob(filepath.Join(c.Dir, Kind, ".tmp-tf-rmm-0.9-*"))
	for _, d := range after {
		if !slices.Contains(before, d) {
			t.Errorf("failed build left %s", d)
		}
	}
}

// TestCancel: cancelling a build while the compilers run returns promptly
// and leaves no process in the build root, no mount and no build
// directory behind.
func TestCancel(t *testing.T) {
	c := sharedCache(t)
	s, _ := Lookup("tf-rmm-0.9")
	// A key of its own, which is never built to the end, so never a hit.
	s.RMMOptions = append(s.RMMOptions, "CCA_TESTBED_CANCEL_TEST=1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Build(ctx, Options{Cache: c, Log: c.Log}, s)
		done <- err
	}()
	// Wait until the RMM is compiling inside the build root.
	deadline := time.After(10 * time.Minute)
	var tmp string
	for tmp == "" {
		select {
		case err := <-done:
			t.Fatalf("build ended before it could be cancelled: %v", err)
		case <-deadline:
			t.Fatal("the build never reached the compile step")
		case <-time.After(500 * time.Millisecond):
		}
		logs, _ := filepath.Glob(filepath.Join(c.Dir, Kind, ".tmp-tf-rmm-0.9-*", LogName))
		for _, l := range logs {
			if b, _ := os.ReadFile(l); bytes.Contains(b, []byte(stageMarker+"stage tf-rmm build")) && bytes.Contains(b, []byte("Building C object")) {
				tmp = filepath.Dir(l)
			}
		}
	}
	if procsIn(tmp) == 0 {
		t.Fatal("no process runs in the build root: the check below would prove nothing")
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		// Measured: 0.3 s. The work tree is a tmpfs in the build's
		// namespace, so there is nothing to delete.
		t.Fatal("Build did not return within 30 s of the cancel")
	}
	t.Logf("returned %s after the cancel", time.Since(start).Round(time.Millisecond))
	if n := procsIn(tmp); n > 0 {
		t.Errorf("%d processes still run in %s", n, tmp)
	}
	if err := noMountsUnder(c.Dir); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cancelled build left %s (%v)", tmp, err)
	}
}

// procsIn counts processes whose root or working directory is at or
// below dir, or whose command line names a path there.
func procsIn(dir string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' || e.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		in := false
		for _, l := range []string{"root", "cwd"} {
			p, err := os.Readlink(filepath.Join("/proc", e.Name(), l))
			in = in || (err == nil && (p == dir || strings.HasPrefix(p, dir+"/")))
		}
		if cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && bytes.Contains(cmd, []byte(dir)) {
			in = true
		}
		if in {
			n++
		}
	}
	return n
}

// TestBuildRootFails: a build root that cannot be made (an archive that
// does not answer) is one line naming mmdebstrap and what to check.
func TestBuildRootFails(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mmdebstrap --mode=root needs root")
	}
	tmp := t.TempDir()
	err := makeRoot(context.Background(), tmp, "http://127.0.0.1:9/debian")
	checkOneLine(t, err, ErrBuildRoot, "mmdebstrap trixie failed", "check the network")
	if _, serr := os.Stat(filepath.Join(tmp, rootLog)); serr != nil {
		t.Errorf("no log kept: %v", serr)
	}
	if err := noMountsUnder(tmp); err != nil {
		t.Error(err)
	}
}

// TestBuildRootCancel: cancelling mmdebstrap while it installs leaves no
// process, no mount and no build directory (in a cache of its own).
func TestBuildRootCancel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mmdebstrap --mode=root needs root")
	}
	c, err := images.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := BuildRoot(ctx, c, nil)
		done <- err
	}()
	var tmp string
	deadline := time.After(5 * time.Minute)
	for tmp == "" {
		select {
		case err := <-done:
			t.Fatalf("BuildRoot ended before it could be cancelled: %v", err)
		case <-deadline:
			t.Fatal("mmdebstrap never got to downloading")
		case <-time.After(250 * time.Millisecond):
		}
		logs, _ := filepath.Glob(filepath.Join(c.Dir, KindBuildRoot, ".tmp-*", rootLog))
		for _, l := range logs {
			if b, _ := os.ReadFile(l); bytes.Contains(b, []byte("I: downloading packages")) {
				tmp = filepath.Dir(l)
			}
		}
	}
	if procsIn(tmp) == 0 {
		t.Fatal("no process runs in the build directory: the check below would prove nothing")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("BuildRoot did not return within 30 s of the cancel")
	}
	if n := procsIn(tmp); n > 0 {
		t.Errorf("%d processes still run in %s", n, tmp)
	}
	if err := noMountsUnder(c.Dir); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cancelled build root left %s (%v)", tmp, err)
	}
}
