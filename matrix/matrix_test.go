package matrix

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cca-testbed/cell"
	"cca-testbed/checks"
	"cca-testbed/guest"
	"cca-testbed/snapshot"
)

// fakeGuest answers the runner's steps from a table keyed by step name.
type fakeGuest map[string]guest.Result

func (f fakeGuest) Run(_ context.Context, argv ...string) (guest.Result, error) {
	st, ok := snapshot.StepFor(argv)
	if !ok {
		return guest.Result{}, fmt.Errorf("no such step %q", argv)
	}
	r, ok := f[st.Name]
	if !ok {
		return guest.Result{}, fmt.Errorf("no answer for step %s", st.Name)
	}
	return r, nil
}
func (fakeGuest) ReadFile(context.Context, string) ([]byte, error)       { return nil, fs.ErrNotExist }
func (fakeGuest) ReadDir(context.Context, string) ([]fs.DirEntry, error) { return nil, fs.ErrNotExist }
func (fakeGuest) ReadLink(context.Context, string) (string, error)       { return "", fs.ErrNotExist }

type fakeInstance struct {
	g      guest.Guest
	closed *atomic.Int32
}

func (i fakeInstance) Guest() guest.Guest  { return i.g }
func (i fakeInstance) Meta() snapshot.Meta { return snapshot.Meta{Backend: "fake"} }
func (i fakeInstance) Close() error        { i.closed.Add(1); return nil }

type fakeBackend struct {
	start  func(c cell.Cell) (guest.Guest, error)
	closed atomic.Int32
	active atomic.Int32
	peak   atomic.Int32
}

func (*fakeBackend) Name() string { return "fake" }
func (b *fakeBackend) Start(ctx context.Context, c cell.Cell) (Instance, error) {
	n := b.active.Add(1)
	defer b.active.Add(-1)
	for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
	}
	time.Sleep(5 * time.Millisecond)
	g, err := b.start(c)
	if err != nil {
		return nil, err
	}
	return fakeInstance{g, &b.closed}, nil
}

func plainGuest(cvm string, exit int) fakeGuest {
	return fakeGuest{
		snapshot.StepBoot:       {Stdout: []byte("degraded\n"), ExitCode: 1},
		snapshot.StepSettle:     {},
		snapshot.StepHelper:     {Stdout: []byte(`{"meta":{"kernel":"7.3.4"},"facts":[{"kind":"absent","path":"class/tsm"}]}`)},
		snapshot.StepDetectVirt: {Stdout: []byte(cvm + "\n"), ExitCode: exit},
		snapshot.StepGatedUnit:  {Stdout: []byte("inactive\n"), ExitCode: 3},
	}
}

func TestRun(t *testing.T) {
	cells := []cell.Cell{
		{Variant: cell.Platform, Role: cell.Plain, Userspace: cell.Forky},
		{Variant: cell.Faux, Role: cell.Plain, Userspace: cell.Forky},
		{Variant: cell.Virtual, Role: cell.Plain, Userspace: cell.Forky},
	}
	boom := errors.New("qemu died")
	b := &fakeBackend{start: func(c cell.Cell) (guest.Guest, error) {
		switch c.Variant {
		case cell.Faux:
			return nil, boom
		case cell.Virtual:
			return plainGuest("none", 0), nil // contradicts its exit code
		}
		return plainGuest("none", 1), nil
	}}
	res, err := Run(context.Background(), b, cells, Options{Parallel: 2})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the infrastructure error gathered", err)
	}
	if b.peak.Load() > 2 {
		t.Errorf("peak parallelism %d, want at most 2", b.peak.Load())
	}
	if b.closed.Load() != 2 {
		t.Errorf("closed %d instances, want 2", b.closed.Load())
	}
	if len(res) != 3 || res[0].Name != "platform/plain" || res[1].Name != "faux/plain" {
		t.Fatalf("results out of order: %+v", res)
	}
	for _, r := range res[1].Results {
		if r.Status != checks.Infra {
			t.Errorf("faux/plain %s: %s, want infra", r.Check, r.Status)
		}
	}
	for _, r := range res[0].Results {
		if r.Status != checks.Pass {
			t.Errorf("platform/plain %s: %s (%s), want pass", r.Check, r.Status, r.Measured)
		}
	}
	if v, _ := res[2].Snapshot.Lookup(snapshot.KindCVM, "systemd-detect-virt"); v != "none(exit=0)" {
		t.Errorf("verdict = %q, want the contradiction kept", v)
	}
	if res[0].Snapshot.Meta.Kernel != "7.3.4" || res[0].Snapshot.Meta.Backend != "fake" {
		t.Errorf("meta = %+v", res[0].Snapshot.Meta)
	}
}

// TestSeriesCellsMeasured: the cells of a variant from a user's series
// are not graded against the built-in variants' defaults: every check is
// measured (or skipped), none fails, and the run has no error.
func TestSeriesCellsMeasured(t *testing.T) {
	unregister, err := cell.Register(cell.VariantInfo{Name: "my-series"})
	if err != nil {
		t.Fatal(err)
	}
	defer unregister()
	tests := []struct {
		variant cell.Variant
		want    checks.Status
	}{
		{"my-series", checks.Measured},
		{cell.Platform, checks.Fail}, // a built-in cell keeps its grading: a realm should say cca
	}
	for _, tt := range tests {
		t.Run(string(tt.variant), func(t *testing.T) {
			b := &fakeBackend{start: func(cell.Cell) (guest.Guest, error) { return plainGuest("none", 1), nil }}
			c := cell.Cell{Variant: tt.variant, Role: cell.Realm, Userspace: cell.Forky}
			res, err := Run(context.Background(), b, []cell.Cell{c}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []checks.Status
			for _, r := range res[0].Results {
				if r.Check == "cvm-systemd" {
					got = append(got, r.Status)
				}
				if tt.want == checks.Measured && r.Status != checks.Measured && r.Status != checks.Skip {
					t.Errorf("%s %s: %s, want measured", c, r.Check, r.Status)
				}
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("%s cvm-systemd: %v, want %s", c, got, tt.want)
			}
		})
	}
}

func TestSnapshotHelperFails(t *testing.T) {
	g := plainGuest("none", 1)
	g[snapshot.StepHelper] = guest.Result{ExitCode: 2, Stderr: []byte("sysfs-snapshot: open /sys: permission denied\n")}
	b := &fakeBackend{start: func(cell.Cell) (guest.Guest, error) { return g, nil }}
	_, err := RunCell(context.Background(), b, cell.Cell{Variant: cell.Platform, Role: cell.Plain}, checks.Default())
	if err == nil || !strings.Contains(err.Error(), "permission denied") || b.closed.Load() != 1 {
		t.Fatalf("err = %v (closed %d), want the helper's stderr and the instance closed", err, b.closed.Load())
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := &fakeBackend{start: func(cell.Cell) (guest.Guest, error) { return nil, context.Canceled }}
	res, err := Run(ctx, b, cell.Matrix()[:4], Options{})
	if !errors.Is(err, context.Canceled) || len(res) != 4 {
		t.Fatalf("err = %v, %d results; want Canceled and every cell reported", err, len(res))
	}
}

// kernelPanic stands for a backend's boot error (qemu.BootError).
type kernelPanic struct{}

func (kernelPanic) Error() string { return "boot failed: kernel panic: Attempted to kill init!" }
func (kernelPanic) BootFailure()  {}

// TestBootFailureIsAFinding: a kernel that fails to boot is recorded as a
// Boot result with its class, not gathered as a harness error; a harness
// error stays Infra.
func TestBootFailureIsAFinding(t *testing.T) {
	harness := errors.New("qemu start: address in use")
	b := &fakeBackend{start: func(c cell.Cell) (guest.Guest, error) {
		if c.Role == cell.Realm {
			return nil, fmt.Errorf("%s: %w", c, kernelPanic{})
		}
		return nil, harness
	}}
	cells := []cell.Cell{{Variant: cell.Faux, Role: cell.Realm}, {Variant: cell.Faux, Role: cell.Plain}}
	res, err := Run(context.Background(), b, cells, Options{})
	if !errors.Is(err, harness) || strings.Contains(err.Error(), "panic") {
		t.Errorf("err = %v, want only the harness error", err)
	}
	for i, want := range []struct {
		class  Class
		status checks.Status
	}{{ClassBoot, checks.Boot}, {ClassInfra, checks.Infra}} {
		r := res[i]
		if r.Class != want.class || r.Err == "" {
			t.Errorf("%s: class %q err %q, want %q", r.Name, r.Class, r.Err, want.class)
		}
		for _, cr := range r.Results {
			if cr.Status != want.status {
				t.Errorf("%s %s: %s, want %s", r.Name, cr.Check, cr.Status, want.status)
			}
		}
	}
}

func TestConduit(t *testing.T) {
	for _, tt := range []struct{ guest, backend, want string }{
		{"emulated-rmi", "emulated-rmi:rmm-1.1", "emulated-rmi:rmm-1.1"}, // the profile that answered is kept
		{"smc", "emulated-rmi:rmm-1.1", "smc"},                           // the guest's own word wins
		{"", "emulated-rmi:rmm-2.0", "emulated-rmi:rmm-2.0"},
		{"smc", "smc", "smc"},
		{"emulated-rmi", "", "emulated-rmi"},
		{"smc", "realmfw:realm", "realmfw:realm"},   // the realm firmware answered the glue's SMCs
		{"none", "realmfw:realm", "realmfw:realm"},  // stock: no glue, upstream rsi.c asked
		{"smc", "hostfw:rmm-1.1", "hostfw:rmm-1.1"}, // the firmware in host mode answered
	} {
		if got := conduit(tt.guest, tt.backend); got != tt.want {
			t.Errorf("conduit(%q, %q) = %q, want %q", tt.guest, tt.backend, got, tt.want)
		}
	}
}
