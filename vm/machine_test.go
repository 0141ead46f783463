package vm

import (
	"testing"

	"cca-testbed/firmware/realm"
	"cca-testbed/qemu"
)

// TestMachine: which machine and conduit each kind of cell gets, without
// booting: a recipe's model host goes to the firmware in host mode (its
// table a host table), the glue's keeps the command line, and
// PlainHost restores the plain virt machine.
func TestMachine(t *testing.T) {
	tests := []struct {
		cell      string
		plainHost bool
		machine   string
		conduit   string
	}{
		{"tsm-null/host-da", false, qemu.ProfileRealm, "hostfw:rmm-1.1"},
		{"stock/host-noda", false, qemu.ProfileRealm, "hostfw:rmm-1.0"},
		{"tsm-null/host-da", true, qemu.ProfileVirt, "none"},
		{"tsm-null/realm", false, qemu.ProfileRealm, "realmfw:realm"},
		{"tsm-null/plain", false, qemu.ProfileVirt, "none"},
		{"platform/host-da", false, qemu.ProfileVirt, "emulated-rmi:rmm-1.1"},
		{"debian-kernel/host-da", false, qemu.ProfileVirt, "none"},
	}
	for _, tt := range tests {
		b := newBackend(t, Options{Machine: qemu.ProfileVirt, PlainHost: tt.plainHost})
		c := mustCell(t, tt.cell)
		_, conduit, err := b.Cmdline(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.machine(c); got != tt.machine || conduit != tt.conduit {
			t.Errorf("%s (PlainHost %v): machine %s, conduit %s; want %s, %s", tt.cell, tt.plainHost, got, conduit, tt.machine, tt.conduit)
		}
		if tt.machine != qemu.ProfileRealm {
			continue
		}
		b2, err := b.rsiTable(c)
		if err != nil {
			t.Fatal(err)
		}
		tab, err := realm.ParseTable(b2)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]realm.Mode{true: realm.ModeHost, false: realm.ModeRealm}[c.OnHostFirmware()]; tab.Mode != want {
			t.Errorf("%s: table mode %s, want %s", tt.cell, tab.Mode, want)
		}
	}
}
