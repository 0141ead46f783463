// Package matrix runs cells: it brings each one up through a Backend, reads
// it through the guest.Guest interface the same way whatever the backend
// (settle udev, run the in-guest snapshot helper, ask systemd), and grades
// the snapshot with the checks. Errors from many cells are gathered, never
// dropped: a cell that cannot come up still yields one Infra result per check.
//
// Tests: go test ./matrix
package matrix

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"

	"cca-testbed/cell"
	"cca-testbed/checks"
	"cca-testbed/guest"
	"cca-testbed/snapshot"
)

// Backend brings cells up. Implementations: emulated (in process) and qemu.
type Backend interface {
	Name() string
	Start(ctx context.Context, c cell.Cell) (Instance, error)
}

// Instance is one running cell.
type Instance interface {
	Guest() guest.Guest
	// Meta describes the instance (backend, kernel, conduit) for the snapshot.
	Meta() snapshot.Meta
	// Close stops the instance and removes what it created.
	Close() error
}

// SnapshotCommand is the in-guest snapshot helper (cmd/sysfs-snapshot).
const SnapshotCommand = "sysfs-snapshot"

// CellResult is everything measured for one cell.
type CellResult struct {
	Cell     cell.Cell          `json:"-"`
	Name     string             `json:"cell"`
	Snapshot *snapshot.Snapshot `json:"snapshot,omitempty"`
	Results  []checks.Result    `json:"results"`
	Err      string             `json:"error,omitempty"` // infrastructure error, if any
	Duration time.Duration      `json:"duration_ns"`
	Dir      string             `json:"dir,omitempty"` // result directory (console log, cmdline, reproduce.sh)
}

// Options tune a run. The zero value runs one cell at a time with the
// default expectations.
type Options struct {
	Parallel     int                  // cells in flight; 0 means 1
	Expectations *checks.Expectations // nil means checks.Default()
	// Progress, when set, is told when a cell starts and ends.
	Progress func(c cell.Cell, phase string, elapsed time.Duration)
}

// Run runs every cell and returns results in the order of cells. The error
// gathers infrastructure failures (which are also in the results); a check
// that fails is a result, not an error.
func Run(ctx context.Context, b Backend, cells []cell.Cell, o Options) ([]CellResult, error) {
	if o.Expectations == nil {
		o.Expectations = checks.Default()
	}
	par := max(o.Parallel, 1)
	results := make([]CellResult, len(cells))
	var (
		mu   sync.Mutex
		errs *multierror.Error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, par)
	)
	for i, c := range cells {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = failed(c, ctx.Err(), 0)
				mu.Lock()
				errs = multierror.Append(errs, fmt.Errorf("%s: %w", c, ctx.Err()))
				mu.Unlock()
				return
			}
			defer func() { <-sem }()
			start := time.Now()
			progress(o, c, "start", 0)
			r, err := RunCell(ctx, b, c, o.Expectations)
			r.Duration = time.Since(start)
			results[i] = r
			progress(o, c, "done", r.Duration)
			if err != nil {
				mu.Lock()
				errs = multierror.Append(errs, fmt.Errorf("%s: %w", c, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return results, errs.ErrorOrNil()
}

func progress(o Options, c cell.Cell, phase string, d time.Duration) {
	if o.Progress != nil {
		o.Progress(c, phase, d)
	}
}

func failed(c cell.Cell, err error, d time.Duration) CellResult {
	return CellResult{Cell: c, Name: c.String(), Results: checks.Infrastructure(c.String(), err), Err: err.Error(), Duration: d}
}

// RunCell brings one cell up, snapshots it and grades it.
func RunCell(ctx context.Context, b Backend, c cell.Cell, exp *checks.Expectations) (CellResult, error) {
	inst, err := b.Start(ctx, c)
	if err != nil {
		return failed(c, err, 0), err
	}
	dir := ""
	if d, ok := inst.(interface{ Dir() string }); ok {
		dir = d.Dir() // console log, command line, reproduce.sh
	}
	s, err := Snapshot(ctx, inst)
	if cerr := inst.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing: %w", cerr))
	}
	if err != nil {
		r := failed(c, err, 0)
		r.Dir = dir
		return r, err
	}
	s.Meta.Cell = c.String()
	return CellResult{Cell: c, Name: c.String(), Snapshot: s, Results: checks.Run(c.String(), s, exp), Dir: dir}, nil
}

// Snapshot reads a running instance: waits for udev to finish (autoload
// races otherwise), runs the snapshot helper, and records what the guest's
// own systemd says.
func Snapshot(ctx context.Context, inst Instance) (*snapshot.Snapshot, error) {
	g := inst.Guest()
	// sshd starts with sysinit, so SSH can answer before systemd has
	// triggered udev or reached multi-user.target: wait for the boot to
	// finish ("degraded" exits 1 and is fine: a failed unit not under test).
	if _, err := g.Run(ctx, "systemctl", "is-system-running", "--wait"); err != nil {
		return nil, fmt.Errorf("waiting for boot to finish: %w", err)
	}
	if _, err := mustRun(ctx, g, "udevadm", "settle", "--timeout=60"); err != nil {
		return nil, err
	}
	out, err := mustRun(ctx, g, SnapshotCommand)
	if err != nil {
		return nil, err
	}
	s, err := snapshot.Parse(bytes.NewReader(out.Stdout))
	if err != nil {
		return nil, fmt.Errorf("snapshot helper output: %w", err)
	}
	meta := inst.Meta()
	meta.Conduit = cmp.Or(s.Meta.Conduit, meta.Conduit)
	meta.Kernel = cmp.Or(s.Meta.Kernel, meta.Kernel)
	s.Meta = meta

	// systemd-detect-virt --cvm prints the verdict and exits 1 for "none".
	r, err := g.Run(ctx, "systemd-detect-virt", "--cvm")
	if err != nil {
		return nil, fmt.Errorf("systemd-detect-virt: %w", err)
	}
	s.Add(snapshot.Fact{Kind: snapshot.KindCVM, Path: "systemd-detect-virt", Value: verdict(r)})
	r, err = g.Run(ctx, "systemctl", "is-active", "cca-cvm-gated.service")
	if err != nil {
		return nil, fmt.Errorf("systemctl: %w", err)
	}
	s.Add(snapshot.Fact{Kind: snapshot.KindUnit, Path: "cca-cvm-gated.service", Value: firstWord(r.Stdout)})
	return s, nil
}

func verdict(r guest.Result) string {
	v := firstWord(r.Stdout)
	// Keep the exit code in the fact when it contradicts the output, so a
	// "none" that exits 0 (or "cca" exiting 1) shows up as a difference.
	if (v == "none") != (r.ExitCode != 0) {
		return fmt.Sprintf("%s(exit=%d)", v, r.ExitCode)
	}
	return v
}

func firstWord(b []byte) string {
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "empty"
	}
	return f[0]
}

func mustRun(ctx context.Context, g guest.Guest, argv ...string) (guest.Result, error) {
	r, err := g.Run(ctx, argv...)
	if err != nil {
		return r, fmt.Errorf("%s: %w", argv[0], err)
	}
	if r.ExitCode != 0 {
		return r, fmt.Errorf("%s exited %d: %s", strings.Join(argv, " "), r.ExitCode, strings.TrimSpace(string(r.Stderr)))
	}
	return r, nil
}
