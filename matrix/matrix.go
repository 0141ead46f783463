// Package matrix runs cells: it brings each one up through a Backend, reads
// it through the guest.Guest interface the same way whatever the backend
// (settle udev, run the in-guest snapshot helper, ask systemd), and grades
// the snapshot with the checks. Errors from many cells are gathered, never
// dropped: a cell that cannot come up still yields one result per check,
// Boot when its kernel failed (a finding) and Infra when the harness did.
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

// BootFailure is implemented by a backend's errors that say the kernel
// under test failed to come up (a panic, oops or stall on the console:
// qemu.BootError), as opposed to the harness failing. matrix finds it with
// errors.As, so it knows no backend's package.
type BootFailure interface {
	error
	BootFailure()
}

// Class says which side failed a cell that could not be measured.
type Class string

const (
	ClassBoot  Class = "boot"  // the kernel under test: a finding
	ClassInfra Class = "infra" // the harness (QEMU, SSH, the cache, ...)
)

// ClassOf is ClassBoot when err holds a BootFailure, else ClassInfra.
func ClassOf(err error) Class {
	var bf BootFailure
	if errors.As(err, &bf) {
		return ClassBoot
	}
	return ClassInfra
}

// CellResult is everything measured for one cell.
type CellResult struct {
	Cell     cell.Cell          `json:"-"`
	Name     string             `json:"cell"`
	Snapshot *snapshot.Snapshot `json:"snapshot,omitempty"`
	Results  []checks.Result    `json:"results"`
	Err      string             `json:"error,omitempty"` // why the cell was not measured, if it was not
	Class    Class              `json:"class,omitempty"` // which side Err is on
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
// that fails, or a kernel that fails to boot, is a result, not an error.
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
			if err != nil && r.Class == ClassInfra {
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
	r := CellResult{Cell: c, Name: c.String(), Err: err.Error(), Class: ClassOf(err), Duration: d}
	if r.Class == ClassBoot {
		r.Results = checks.BootFailed(c.String(), err)
	} else {
		r.Results = checks.Infrastructure(c.String(), err)
	}
	return r
}

// RunCell brings one cell up, snapshots it and grades it. A cell that was
// not measured returns its error too; the result's Class says whose it is.
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
	if cell.FromSeries(c.Variant) {
		exp = exp.ForSeries(string(c.Variant)) // the defaults describe the built-in variants
	}
	return CellResult{Cell: c, Name: c.String(), Snapshot: s, Results: checks.Run(c.String(), s, exp), Dir: dir}, nil
}

// Snapshot reads a running instance with snapshot.Steps: waits for the
// boot and for udev to finish (autoload races otherwise), runs the
// snapshot helper, and records what the guest's own systemd says.
func Snapshot(ctx context.Context, inst Instance) (*snapshot.Snapshot, error) {
	g := inst.Guest()
	var s *snapshot.Snapshot
	var facts []snapshot.Fact
	for _, st := range snapshot.Steps() {
		r, err := g.Run(ctx, st.Argv...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", st.What, err)
		}
		if st.Must && r.ExitCode != 0 {
			return nil, fmt.Errorf("%s exited %d: %s", strings.Join(st.Argv, " "), r.ExitCode, strings.TrimSpace(string(r.Stderr)))
		}
		switch {
		case st.Document:
			if s, err = snapshot.Parse(bytes.NewReader(r.Stdout)); err != nil {
				return nil, fmt.Errorf("snapshot helper output: %w", err)
			}
		case st.Kind != "":
			facts = append(facts, st.Fact(r.Stdout, r.ExitCode))
		}
	}
	if s == nil {
		return nil, errors.New("no step yields the snapshot document")
	}
	meta := inst.Meta()
	meta.Conduit = conduit(s.Meta.Conduit, meta.Conduit)
	meta.Kernel = cmp.Or(s.Meta.Kernel, meta.Kernel)
	s.Meta = meta
	s.Add(facts...)
	return s, nil
}

// conduit is who answered the guest's firmware calls. The guest's own word
// wins ("smc" even where the backend meant to emulate), except that the
// kernel only knows it was the model ("emulated-rmi") while the backend
// knows which profile answered ("emulated-rmi:rmm-1.1"), which is kept,
// and below the testbed's firmware ("realmfw:realm", in host mode
// "hostfw:rmm-1.1"), which answers whatever the kernel asks over SMC (the
// glue says "smc", recipe kernels have no glue).
func conduit(guest, backend string) string {
	if guest == "" || strings.HasPrefix(backend, guest+":") || strings.HasPrefix(backend, "realmfw:") || strings.HasPrefix(backend, "hostfw:") {
		return backend
	}
	return guest
}
