package cell

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"faux/realm", "faux/realm", ""},
		{"platform/realm@trixie", "platform/realm@trixie", ""},
		{"platform/realm@forky", "platform/realm", ""},
		{"nosuch/realm", "", `variant "nosuch" (known: platform, faux, faux-builtin, smccc-aux, smccc-aux-nolegacy, smccc-bus, virtual, module-faux, stock, smccc-bus-next, smccc-aux-v5, smccc-aux-v4, smccc-aux-v4-nolegacy, debian-kernel, faux-tree, tsm-null, rfc)`},
		{"faux/guest", "", `role "guest" (known: host-da, host-noda, realm, plain, host)`},
		{"faux/host@tf-rmm-0.9", "faux/host@tf-rmm-0.9", ""},
		{"faux/host@tf-rmm-0.8@trixie", "faux/host@tf-rmm-0.8@trixie", ""},
		{"faux/host@trixie@tf-rmm-0.8", "faux/host@tf-rmm-0.8@trixie", ""},
		{"faux/host@forky@tf-rmm-0.9", "faux/host@tf-rmm-0.9", ""},
		{"faux/host", "", "role host needs real firmware"},
		{"faux/host-da@tf-rmm-0.9", "", "only the host role exists (use role host"},
		{"faux/realm@tf-rmm-0.9", "", "drop @tf-rmm-0.9"},
		{"faux/host@tf-rmm-1.0", "", `qualifier "tf-rmm-1.0" is not a firmware`},
		{"faux/host@tf-rmm-0.9@tf-rmm-0.8", "", "or repeats one"},
		{"faux/realm@", "", `qualifier ""`},
		{"faux/realm@trixie@trixie", "", "or repeats one"},
		{"faux/realm@sid", "", `qualifier "sid" is not a firmware (tf-rmm-0.9, tf-rmm-0.8) or userspace (forky, trixie)`},
		{"faux", "", "want variant/role"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := Parse(tt.in)
			if tt.err != "" {
				if !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line wrapping ErrUnknown containing %q", err, tt.err)
				}
				return
			}
			if err != nil || c.String() != tt.want {
				t.Fatalf("Parse(%q) = %v, %v; want %s", tt.in, c, err, tt.want)
			}
		})
	}
}

func TestMatrix(t *testing.T) {
	cells := Matrix()
	if want := len(Variants) * (len(Roles) + 1 + len(Firmwares)); len(cells) != want {
		t.Fatalf("len = %d, want %d", len(cells), want)
	}
	seen := map[string]bool{}
	for _, c := range cells {
		if seen[c.String()] {
			t.Fatalf("duplicate cell %s", c)
		}
		seen[c.String()] = true
		back, err := Parse(c.String())
		if err != nil || back != c {
			t.Fatalf("round trip %s: %v, %v", c, back, err)
		}
		if strings.Trim(c.FileName(), "abcdefghijklmnopqrstuvwxyz0123456789-_.@") != "" {
			t.Fatalf("FileName %q holds a character unsafe in a file name", c.FileName())
		}
		if err := c.Check(); err != nil {
			t.Fatalf("matrix cell %s: %v", c, err)
		}
	}
}

func TestProfilesAndSystemd(t *testing.T) {
	want := map[Role]string{HostDA: "rmm-1.1", HostNoDA: "rmm-1.0", Realm: "realm", Plain: "none"}
	for r, p := range want {
		if got := r.FirmwareProfile(); got != p {
			t.Errorf("%s.FirmwareProfile() = %q, want %q", r, got, p)
		}
	}
	for _, f := range Firmwares {
		c := Cell{Variant: Platform, Role: Host, Firmware: f.Name}
		if got := c.FirmwareProfile(); got != string(f.Name) {
			t.Errorf("%s.FirmwareProfile() = %q, want the profile named after the firmware", c, got)
		}
	}
	if Trixie.SystemdVersion() != 257 || Forky.SystemdVersion() != 262 {
		t.Errorf("systemd versions: trixie %d forky %d", Trixie.SystemdVersion(), Forky.SystemdVersion())
	}
}

func FuzzParse(f *testing.F) {
	f.Add("faux/realm@trixie")
	f.Add("/@")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrUnknown) {
				t.Fatalf("unwrapped error %v", err)
			}
			return
		}
		if back, err := Parse(c.String()); err != nil || back != c {
			t.Fatalf("round trip of %q: %v %v", s, back, err)
		}
	})
}

// TestNoRMIAnswerer: only the model's host cells of a prebuilt package
// have nothing answering RMI: recipes and series boot on the testbed's
// firmware in host mode, the glue reads the command line, real firmware
// answers any kernel, and other roles ask no RMI.
func TestOnHostFirmware(t *testing.T) {
	unregister, err := Register(VariantInfo{Name: "my-series"})
	if err != nil {
		t.Fatal(err)
	}
	defer unregister()
	for _, tt := range []struct {
		cell Cell
		want bool
	}{
		{Cell{Variant: TSMNull, Role: HostDA}, true},
		{Cell{Variant: Stock, Role: HostNoDA}, true},
		{Cell{Variant: "my-series", Role: HostDA}, true},
		{Cell{Variant: TSMNull, Role: Realm}, false},
		{Cell{Variant: TSMNull, Role: Plain}, false},
		{Cell{Variant: TSMNull, Role: Host, Firmware: TFRMM08}, false},
		{Cell{Variant: Platform, Role: HostDA}, false},
		{Cell{Variant: DebianKernel, Role: HostDA}, false},
	} {
		if got := tt.cell.OnHostFirmware(); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.cell, got, tt.want)
		}
	}
}

func TestNoRMIAnswerer(t *testing.T) {
	unregister, err := Register(VariantInfo{Name: "my-series"})
	if err != nil {
		t.Fatal(err)
	}
	defer unregister()
	tests := []struct {
		cell Cell
		want string // a substring of the answer; "" for none
	}{
		{Cell{Variant: Stock, Role: HostDA}, ""},
		{Cell{Variant: SMCCCBusNext, Role: HostNoDA}, ""},
		{Cell{Variant: "my-series", Role: HostDA}, ""},
		{Cell{Variant: DebianKernel, Role: HostDA}, "prebuilt kernel"},
		{Cell{Variant: Stock, Role: Host, Firmware: TFRMM09}, ""},
		{Cell{Variant: Stock, Role: Realm}, ""},
		{Cell{Variant: Stock, Role: Plain}, ""},
		{Cell{Variant: Platform, Role: HostDA}, ""},
		{Cell{Variant: SMCCCAux, Role: HostNoDA}, ""},
	}
	for _, tt := range tests {
		got := tt.cell.NoRMIAnswerer()
		if got != "" && tt.cell.OnHostFirmware() {
			t.Errorf("%s: on the host firmware yet %q", tt.cell, got)
		}
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.cell, got, tt.want)
		}
	}
}
