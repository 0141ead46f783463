// Package emulated is the instant backend: for a cell (variant, role,
// userspace) and the firmware's answers (rmi.Decisions), it models what the
// variant's kernel and the guest's udev, kmod and systemd would produce —
// devices, buses, class devices, uevents, autoloaded modules, bound drivers,
// the CVM verdict — and serves it as a guest root whose sys/ is a sysfs
// tree with real symlinks. It needs neither QEMU nor firmware.
//
// The model follows the 7.3 driver core (see drivercore.go) and the
// contract in kernel-configs/README.md; the fidelity test compares it with
// real boots field by field. Golden snapshots of every cell live in
// testdata/ (go test ./emulated -update regenerates them; review the diff).
//
// Tests: go test ./emulated (and -bench . for the whole-matrix benchmark).
package emulated

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"cca-testbed/cell"
	"cca-testbed/emulated/cvm"
	"cca-testbed/emulated/sysfs"
	"cca-testbed/guest"
	"cca-testbed/rmi"
	"cca-testbed/snapshot"
)

// Kernel is what the model reports as its kernel release.
const Kernel = "7.3-model"

// System is one modelled guest.
type System struct {
	cell cell.Cell
	sys  *sysfs.Tree
	root *sysfs.Tree // the guest's root: sys/ is the sysfs tree
}

// New models cell c whose firmware answered d.
func New(c cell.Cell, d rmi.Decisions) (*System, error) {
	k, err := boot(c.Variant, d)
	if err != nil {
		return nil, err
	}
	root := sysfs.New()
	if err := root.Graft("sys", k.t); err != nil {
		return nil, err
	}
	return &System{cell: c, sys: k.t, root: root}, nil
}

// SetAnswers lists the calls the glue made and their answers in its
// read-only answers parameter, as the real glue does (kernel-configs/README.md).
// A kernel without the glue (stock) has no such parameter.
func (s *System) SetAnswers(t rmi.Table) error {
	if _, err := fs.Stat(s.sys, path.Join(path.Dir(snapshot.AnswersParam), "conduit")); err != nil {
		return nil
	}
	return s.sys.WriteFile(snapshot.AnswersParam, t.Value()+"\n")
}

// FS is the guest root (paths like "sys/class/tsm").
func (s *System) FS() fs.FS { return s.root }

// Sys is the sysfs tree itself (paths like "class/tsm").
func (s *System) Sys() fs.FS { return s.sys }

// Run answers the steps the matrix runner sends a guest
// (snapshot.Steps), as the guest's own tools would. Anything else is
// guest.ErrNotSupported.
func (s *System) Run(ctx context.Context, argv []string) (guest.Result, error) {
	if err := ctx.Err(); err != nil {
		return guest.Result{}, err
	}
	st, ok := snapshot.StepFor(argv)
	if answer := answers[st.Name]; ok && answer != nil {
		return answer(s)
	}
	return guest.Result{}, fmt.Errorf("emulated guest cannot run %q: %w", strings.Join(argv, " "), guest.ErrNotSupported)
}

// answers is the model's answer to each step; TestAnswersEveryStep keeps
// it complete.
var answers = map[string]func(*System) (guest.Result, error){
	snapshot.StepBoot: func(*System) (guest.Result, error) {
		return guest.Result{Stdout: []byte("running\n")}, nil
	},
	snapshot.StepSettle: func(*System) (guest.Result, error) {
		return guest.Result{}, nil // coldplug already finished in the model
	},
	snapshot.StepHelper: func(s *System) (guest.Result, error) {
		snap, err := s.Snapshot(snapshot.Meta{Kernel: Kernel, Conduit: "emulated-rmi"})
		if err != nil {
			return guest.Result{}, err
		}
		var b bytes.Buffer
		if err := snap.WriteJSON(&b); err != nil {
			return guest.Result{}, err
		}
		return guest.Result{Stdout: b.Bytes()}, nil
	},
	snapshot.StepDetectVirt: func(s *System) (guest.Result, error) {
		v := cvm.Systemd(s.sys, s.cell.Userspace.SystemdVersion())
		return guest.Result{Stdout: []byte(v + "\n"), ExitCode: cvm.ExitCode(v)}, nil
	},
	snapshot.StepGatedUnit: func(s *System) (guest.Result, error) {
		// ConditionSecurity=cvm uses the same detection; a unit whose
		// condition fails is "inactive" and is-active exits 3.
		if cvm.Systemd(s.sys, s.cell.Userspace.SystemdVersion()) == cvm.None {
			return guest.Result{Stdout: []byte("inactive\n"), ExitCode: 3}, nil
		}
		return guest.Result{Stdout: []byte("active\n")}, nil
	},
}

// Snapshot takes the sysfs snapshot the in-guest helper would.
func (s *System) Snapshot(meta snapshot.Meta) (*snapshot.Snapshot, error) {
	return snapshot.Take(s.sys, meta)
}
