//go:build nightly

package vm

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"cca-testbed/cell"
	"cca-testbed/emulated"
	"cca-testbed/matrix"
	"cca-testbed/rmi"
	"cca-testbed/snapshot"
)

// TestRFCRealm boots RFC v1 as posted (variants/rfc) as a realm through the
// realm firmware: rsi.c registered the renamed platform device arm-rsi-dev
// (no arm-cca-dev), udev loaded arm_cca_guest by platform:arm-rsi-dev and
// its platform driver arm-cca-guest bound the device and serves the
// attestation report; no realm tsm0, since the realm firmware's RSI
// feature register 0 has no DA; forky's systemd, looking for arm-cca-dev,
// says none. The emulated model must agree fact for fact.
func TestRFCRealm(t *testing.T) {
	t.Parallel()
	const rsi = "devices/platform/arm-rsi-dev"
	bootRecipeRealm(t, recipeRealm{
		cell:   "rfc/realm",
		kernel: "7.3.4-rfc",
		aliases: []string{
			"alias platform:arm-rsi-dev arm_cca_guest\n",
			"alias platform:arm-rmi-dev arm_cca_host\n",
		},
		notAliases: []string{"platform:arm-cca-dev"},
		facts: [][3]string{
			{snapshot.KindDevice, rsi, ""},
			{snapshot.KindSubsystem, rsi, "platform"},
			{snapshot.KindDriver, rsi, "arm-cca-guest"},
			{snapshot.KindModule, "module/arm_cca_guest", "live"},
			{snapshot.KindCVM, "systemd-detect-virt", "none"},
		},
		absent: []string{"devices/platform/arm-cca-dev", "devices/platform/arm-rmi-dev"},
		report: true,
	})
}

// featureReg0 is the rfc kernel's console line with what RMI_FEATURES(0)
// returned.
var featureReg0 = regexp.MustCompile(`arm-rmi-dev: RMI feature register 0: (0x[0-9a-f]+)`)

// TestRFCRealFirmware boots RFC v1's host side on TF-A + TF-RMM v0.8.0,
// which accepts the RFC's RMI revision 1.0 (TF-RMM v0.9.0, RMM 2.0,
// refuses it): the kernel, entered at EL2, asked the real RMM itself and
// read feature register 0, whose bit 42 (DA) is clear on this build, so
// there is no arm-rmi-dev, nothing loads arm_cca_host and there is no
// tsm0. The emulated model must agree fact for fact.
func TestRFCRealFirmware(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, c := preparedCell(t, "rfc/host@tf-rmm-0.8", Options{})
	inst, err := b.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	con := inst.(*Instance).VM().ConsoleTail(2000)
	// The RMM's own log of the call, and what the kernel made of it.
	for _, want := range []string{"RMI_SUCCESS 10000 10000", "arm-rmi-dev: RMI version 1.0"} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	// The register the kernel read is the one the model's profile of this
	// build answers, and its DA bit (42) is clear.
	p, err := rmi.LookupProfile(string(cell.TFRMM08))
	if err != nil {
		t.Fatal(err)
	}
	want := rmi.New(p).SMC(rmi.RMIFeatures, 0)[1]
	if m := featureReg0.FindStringSubmatch(con); m == nil {
		t.Error("console lacks the kernel's line with RMI feature register 0")
	} else if got, err := strconv.ParseUint(m[1], 0, 64); err != nil || got != want || rmi.DA(got) {
		t.Errorf("kernel read RMI feature register 0 = %s, want %#x without DA", m[1], want)
	}
	if strings.Contains(con, "CCA host DA platform device registered") {
		t.Error("the kernel registered arm-rmi-dev without DA")
	}
	results, err := matrix.Run(ctx, reuse{b, inst}, []cell.Cell{c}, matrix.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := results[0]
	gradedAsExpected(t, r)
	if m := r.Snapshot.Meta; m.RealFirmware != string(cell.TFRMM08) || !strings.Contains(m.RMMVersion, "RMM v.0.8.0") {
		t.Errorf("meta %+v: want real firmware tf-rmm-0.8 and the RMM's v.0.8.0 line", m)
	}
	if _, ok := r.Snapshot.Lookup(snapshot.KindDevice, "devices/platform/arm-rmi-dev"); ok {
		t.Error("arm-rmi-dev is registered")
	}
	agreesWithModel(t, ctx, c, r.Snapshot)
}

// TestRFCRealmDA boots the same realm with the firmware profile realm-da,
// whose RSI feature register 0 reports Device Assignment (bit 0, where the
// RFC's 24/38 reads it): arm-cca-guest's probe then registers the realm's
// tsm0 below arm-rsi-dev. The default expectations say no tsm0, so the
// facts are asserted here instead of grading, and the model of the same
// profile must agree fact for fact.
func TestRFCRealmDA(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const profile = "realm-da"
	c := mustCell(t, "rfc/realm")
	b := newBackend(t, Options{FirmwareProfile: profile})
	if err := b.Prepare(ctx, []cell.Cell{c}); err != nil {
		t.Fatal(err)
	}
	results, err := matrix.Run(ctx, b, []cell.Cell{c}, matrix.Options{})
	if err != nil {
		t.Fatal(err)
	}
	real := results[0].Snapshot
	if real == nil {
		t.Fatalf("no snapshot: %+v", results[0])
	}
	const tsm0 = "devices/platform/arm-rsi-dev/tsm/tsm0"
	for _, f := range [][3]string{
		{snapshot.KindDevice, tsm0, ""},
		{snapshot.KindSubsystem, tsm0, "tsm"},
		{snapshot.KindDriver, "devices/platform/arm-rsi-dev", "arm-cca-guest"},
	} {
		if v, ok := real.Lookup(f[0], f[1]); !ok || v != f[2] {
			t.Errorf("snapshot %s %s = %q (%v), want %q", f[0], f[1], v, ok, f[2])
		}
	}
	if real.Meta.Conduit != "realmfw:"+profile {
		t.Errorf("conduit %q, want realmfw:%s", real.Meta.Conduit, profile)
	}
	inst, err := emulated.Backend{Profile: profile}.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	model, err := matrix.Snapshot(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range snapshot.Diff(real, model) {
		t.Errorf("%s@%s: real vs model: %s", c, profile, ch)
	}
}
