package vm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cca-testbed/qemu"
	"cca-testbed/snapshot"
)

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// TestTSMNullHostFirmware boots the "no device" position as the model's
// host-da cell, on the testbed's firmware in host mode: the built-in
// arm_cca_host's own SMCs reach the firmware, which answers them from the
// rmm-1.1 profile (RMI 1.0 accepted, feature register 0 with bit 42), so
// the module registers tsm0 with no parent, under devices/virtual, the
// path no other cell of this variant can reach. The console line says so,
// the conduit names the firmware, and the model agrees fact for fact.
func TestTSMNullHostFirmware(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, c := preparedCell(t, "tsm-null/host-da", Options{})
	li, r := bootGraded(t, b, c)
	if m := r.Snapshot.Meta; m.Conduit != "hostfw:rmm-1.1" || m.Kernel != "7.3.4-tsm-null" {
		t.Errorf("meta %+v: want conduit hostfw:rmm-1.1, kernel 7.3.4-tsm-null", m)
	}
	if _, ok := r.Snapshot.Lookup(snapshot.KindDevice, "devices/virtual/tsm/tsm0"); !ok {
		t.Error("no devices/virtual/tsm/tsm0 although the firmware reports DA")
	}
	out, err := li.SSH().Run(ctx, "dmesg")
	if err != nil || out.ExitCode != 0 {
		t.Fatalf("dmesg: %v %+v", err, out)
	}
	if want := "arm_cca_host: tsm0 registered without a parent device"; !strings.Contains(string(out.Stdout), want) {
		t.Errorf("dmesg has no %q; its arm_cca_host lines: %q", want, grepLines(string(out.Stdout), "arm_cca_host"))
	}
	// The firmware's banner is on the console, before the kernel's.
	con, err := os.ReadFile(filepath.Join(li.Dir(), qemu.ConsoleLog))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(con), "realmfw: host mode, RMI table v1") {
		t.Errorf("console lacks the firmware's host-mode banner: %q", grepLines(string(con), "realmfw"))
	}
	agreesWithModel(t, ctx, c, r.Snapshot)
}
