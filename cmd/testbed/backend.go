package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"cca-testbed/cell"
	"cca-testbed/emulated"
	"cca-testbed/guest"
	"cca-testbed/matrix"
	"cca-testbed/rmi"
	"cca-testbed/snapshot"
)

// backendOptions are the flags every command that brings cells up shares.
type backendOptions struct {
	name    string
	profile string
}

func (o *backendOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.name, "backend", "emulated", "emulated (instant, modelled driver core) or qemu (real boots)")
	fs.StringVar(&o.profile, "firmware-profile", "", "rmi firmware profile for every cell instead of the role's own (e.g. rmm-2.0)")
}

// backend wraps a matrix.Backend with the parallelism that suits it.
type backend struct {
	matrix.Backend
	DefaultParallel int
	Instant         bool // no progress lines: cells take microseconds
}

func (o *backendOptions) backend(ctx context.Context, stderr io.Writer) (*backend, error) {
	if o.profile != "" {
		if _, err := rmi.LookupProfile(o.profile); err != nil {
			return nil, usagef("--firmware-profile: %v", err)
		}
	}
	switch o.name {
	case "emulated":
		return &backend{Backend: emulatedBackend{profile: o.profile}, DefaultParallel: 4, Instant: true}, nil
	}
	return nil, usagef("unknown backend %q (known: emulated)", o.name)
}

// profileFor is the firmware profile a cell boots with.
func profileFor(c cell.Cell, override string) (rmi.Profile, error) {
	name := c.Role.FirmwareProfile()
	if override != "" {
		name = override
	}
	return rmi.LookupProfile(name)
}

// emulatedBackend models each cell in process: the rmi model answers the
// firmware calls and the emulated driver core builds /sys from them.
type emulatedBackend struct{ profile string }

func (emulatedBackend) Name() string { return "emulated" }

func (b emulatedBackend) Start(ctx context.Context, c cell.Cell) (matrix.Instance, error) {
	p, err := profileFor(c, b.profile)
	if err != nil {
		return nil, err
	}
	d, _ := rmi.Probe(rmi.New(p))
	sys, err := emulated.New(c, d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	return &emulatedInstance{g: guest.NewEmulated(sys.FS(), sys.Run), profile: p.Name}, nil
}

type emulatedInstance struct {
	g       *guest.Emulated
	profile string
}

func (i *emulatedInstance) Guest() guest.Guest { return i.g }
func (i *emulatedInstance) Close() error       { return nil }
func (i *emulatedInstance) Meta() snapshot.Meta {
	return snapshot.Meta{Backend: "emulated", Conduit: "emulated-rmi:" + i.profile, Kernel: "model of 7.3"}
}
