package main

import (
	"strings"
	"testing"

	"cca-testbed/cell"
)

// TestSelectionCells: a bare role means its cells on the default
// userspace, so --role realm is one cell per variant; the trixie realm is
// asked for as realm@trixie (or with --userspace), host@FIRMWARE picks one
// firmware build, and no --role keeps the whole default matrix.
func TestSelectionCells(t *testing.T) {
	tests := []struct {
		sel     selection
		want    string // the cells, space-separated; "" for the full matrix's count
		wantErr string
	}{
		{sel: selection{variants: "faux", roles: "realm"}, want: "faux/realm"},
		{sel: selection{variants: "faux", roles: "realm@trixie"}, want: "faux/realm@trixie"},
		{sel: selection{variants: "faux", roles: "realm,realm@trixie"}, want: "faux/realm faux/realm@trixie"},
		{sel: selection{variants: "faux", roles: "realm", userspaces: "trixie"}, want: "faux/realm@trixie"},
		{sel: selection{variants: "faux", roles: "realm", userspaces: "forky,trixie"}, want: "faux/realm faux/realm@trixie"},
		{sel: selection{variants: "faux", roles: "plain,host-da"}, want: "faux/host-da faux/plain"},
		{sel: selection{variants: "faux", roles: "host"}, want: "faux/host@tf-rmm-0.9 faux/host@tf-rmm-0.8"},
		{sel: selection{variants: "faux", roles: "host@tf-rmm-0.8"}, want: "faux/host@tf-rmm-0.8"},
		{sel: selection{variants: "faux"}, want: "faux/host-da faux/host-noda faux/realm faux/plain faux/realm@trixie faux/host@tf-rmm-0.9 faux/host@tf-rmm-0.8"},
		{sel: selection{}},
		{sel: selection{variants: "faux", roles: "realm@sid"}, wantErr: `qualifier "sid"`},
		{sel: selection{variants: "faux", roles: "realm@tf-rmm-0.9"}, wantErr: "only the host role"},
		{sel: selection{variants: "faux", roles: "realm@trixie", userspaces: "forky"}, wantErr: "no cell matches"},
	}
	for _, tt := range tests {
		got, err := tt.sel.cells()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%+v: err %v, want %q", tt.sel, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", tt.sel, err)
			continue
		}
		if tt.want == "" {
			if len(got) != len(cell.Matrix()) {
				t.Errorf("%+v: %d cells, want the default matrix's %d", tt.sel, len(got), len(cell.Matrix()))
			}
			continue
		}
		var names []string
		for _, c := range got {
			names = append(names, c.String())
		}
		if s := strings.Join(names, " "); s != tt.want {
			t.Errorf("%+v: cells %q, want %q", tt.sel, s, tt.want)
		}
	}
}
