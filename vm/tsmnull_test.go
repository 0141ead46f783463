package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cca-testbed/qemu"
	"cca-testbed/rmi"
	"cca-testbed/snapshot"
)

// TestTSMNullRealFirmware boots the "no device" position
// (variants/tsm-null) as a host on TF-A + TF-RMM v0.8.0, the build that
// accepts RMI 1.0, so the real RMM answers the built-in arm_cca_host's
// own SMCs: RMI_VERSION(1.0) succeeds, RMI_FEATURES(0) has no DA bit
// (QEMU has no SMMU for the RMM to offer), and so, as the RFC gated its
// device on DA, no tsm0 and nothing else CCA-related on the host. The
// module's console line is the evidence of what it was told. The
// emulated model must agree fact for fact.
func TestTSMNullRealFirmware(t *testing.T) {
	ctx := context.Background()
	b, c := preparedCell(t, "tsm-null/host@tf-rmm-0.8", Options{})
	li, r := bootGraded(t, b, c)
	m := r.Snapshot.Meta
	if m.RealFirmware != "tf-rmm-0.8" || m.Kernel != "7.3.4-tsm-null" {
		t.Errorf("meta %+v: want real firmware tf-rmm-0.8, kernel 7.3.4-tsm-null", m)
	}
	if _, ok := r.Snapshot.Lookup(snapshot.KindDevice, "devices/virtual/tsm/tsm0"); ok {
		t.Error("tsm0 registered although the RMM reports no DA")
	}
	// The kernel has no glue, so no answers are recorded: the module's
	// own line says what the RMM told it.
	if n := len(r.Snapshot.Of(snapshot.KindAnswer)); n != 0 {
		t.Errorf("%d glue answers recorded in a kernel without the glue", n)
	}
	out, err := li.SSH().Run(ctx, "dmesg")
	if err != nil || out.ExitCode != 0 {
		t.Fatalf("dmesg: %v %+v", err, out)
	}
	// The register the model's profile holds for this build (measured
	// by the glue on 2026-11-28) is what the module read itself.
	p, err := rmi.LookupProfile(string(c.Firmware))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("arm_cca_host: RMI 1.0 without Device Assignment (RMI_FEATURES(0) 0x0 %#x): no TSM", p.RMIFeatures[0])
	if !strings.Contains(string(out.Stdout), want) {
		t.Errorf("dmesg has no %q; its arm_cca_host lines: %q", want, grepLines(string(out.Stdout), "arm_cca_host"))
	}
	agreesWithModel(t, ctx, c, r.Snapshot)
}

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
