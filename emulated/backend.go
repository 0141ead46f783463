package emulated

import (
	"cmp"
	"context"
	"fmt"

	"cca-testbed/cell"
	"cca-testbed/guest"
	"cca-testbed/matrix"
	"cca-testbed/rmi"
	"cca-testbed/snapshot"
)

// Backend is the emulated matrix.Backend: the rmi model answers each
// cell's firmware calls and New builds its guest. Every caller that wants
// the model's view of a cell (the CLI, the fidelity tests) starts it here,
// so they all read it the same way matrix reads a real guest.
type Backend struct {
	// Profile overrides every role's rmi firmware profile; "" means the
	// role's own (cell.Role.FirmwareProfile).
	Profile string
}

var _ matrix.Backend = Backend{}

// Name implements matrix.Backend.
func (Backend) Name() string { return "emulated" }

// Start implements matrix.Backend.
func (b Backend) Start(ctx context.Context, c cell.Cell) (matrix.Instance, error) {
	p, err := rmi.LookupProfile(cmp.Or(b.Profile, c.Role.FirmwareProfile()))
	if err != nil {
		return nil, err
	}
	d, _ := rmi.Probe(rmi.New(p))
	sys, err := New(c, d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	return &instance{
		g: guest.NewEmulated(sys.FS(), sys.Run),
		meta: snapshot.Meta{Backend: "emulated", Conduit: "emulated-rmi:" + p.Name,
			Userspace: string(c.Userspace), Kernel: Kernel, Firmware: b.Profile},
	}, nil
}

type instance struct {
	g    *guest.Emulated
	meta snapshot.Meta
}

func (i *instance) Guest() guest.Guest  { return i.g }
func (i *instance) Meta() snapshot.Meta { return i.meta }
func (i *instance) Close() error        { return nil }
