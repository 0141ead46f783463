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
	// Profile overrides every cell's rmi firmware profile; "" means the
	// cell's own (cell.Cell.FirmwareProfile: the profile named after a
	// real firmware build, else the role's).
	Profile string
}

var _ matrix.Backend = Backend{}

// Name implements matrix.Backend.
func (Backend) Name() string { return "emulated" }

// Start implements matrix.Backend.
func (b Backend) Start(ctx context.Context, c cell.Cell) (matrix.Instance, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	p, err := rmi.LookupProfile(cmp.Or(b.Profile, c.FirmwareProfile()))
	if err != nil {
		return nil, err
	}
	m := rmi.New(p)
	d, table := rmi.Probe(m)
	// The testbed's firmware in host mode gives a recipe's host cell
	// the SMCCC 1.2 conduit its profile (QEMU's PSCI below the glue)
	// lacks; only real firmware enters the kernel at EL2.
	d.SMCCC11 = p.SMCCC11 || c.OnHostFirmware()
	d.EL2 = c.Real()
	if r := m.SMC(rmi.RSIFeatures, 0); d.RSI && r[0] == rmi.RSISuccess {
		d.RealmDA = rmi.RSIReg0DA.Get(r[1]) == 1
	}
	sys, err := New(c, d)
	if err == nil {
		err = sys.SetAnswers(table)
	}
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
