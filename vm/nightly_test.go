//go:build nightly

// The real-boot tests of the positions that make test leaves to the
// nightly (scripts/nightly runs go test -tags nightly ./vm): each costs a
// kernel of its own (tsm-null's also a tf-rmm-0.8 build, Debian's kernel
// an emulated chroot), more than a cold make test can afford in its 30
// minutes. make run's matrix grades the same cells against their
// expectations; make vet compiles these.

package vm

import (
	"context"
	"fmt"
	"strings"
	"testing"

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
	t.Parallel()
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

// TestFauxBuiltinRealm boots the same patch with the driver built in
// (variants/faux-builtin): its init ran at boot and created faux
// arm-rsi-dev, faux_driver bound it (uevent only DRIVER=faux_driver, no
// MODALIAS), the probe registered the report, which hands out the model's
// token, and with arm-cca-dev gone forky's systemd says none.
func TestFauxBuiltinRealm(t *testing.T) {
	t.Parallel()
	const rsi = "devices/faux/arm-rsi-dev"
	bootRecipeRealm(t, recipeRealm{
		cell:       "faux-builtin/realm",
		kernel:     "7.3.4-faux-builtin",
		notAliases: []string{" arm_cca_guest\n", "platform:arm-cca-dev"},
		facts: [][3]string{
			{snapshot.KindDevice, rsi, ""},
			{snapshot.KindSubsystem, rsi, "faux"},
			{snapshot.KindDriver, rsi, "faux_driver"},
			{snapshot.KindUevent, rsi, "DRIVER=faux_driver"},
			{snapshot.KindDir, "kernel/config/tsm/report", ""},
			{snapshot.KindCVM, "systemd-detect-virt", "none"},
		},
		absent: []string{"devices/platform/arm-cca-dev"},
		report: true,
	})
}

// TestSMCCCAuxV5Realm boots v5 of the auxiliary series as posted
// (variants/smccc-aux-v5) as a realm through the realm firmware: the SMCCC
// core registered arm-smccc (the firmware reports SMCCC 1.2, so there is a
// conduit) and below it arm_cca_guest.arm-rsi-dev.0 (RSI_VERSION answered
// over SMC); udev loaded arm_cca_guest by its auxiliary alias and it bound
// the device and serves the attestation report; realm_guest reads 1;
// arm-cca-dev is gone, so forky's systemd says none. The emulated model
// must agree fact for fact.
func TestSMCCCAuxV5Realm(t *testing.T) {
	t.Parallel()
	const rsi = "devices/platform/arm-smccc/arm_cca_guest.arm-rsi-dev.0"
	bootRecipeRealm(t, recipeRealm{
		cell:       "smccc-aux-v5/realm",
		kernel:     "7.3.4-smccc-aux-v5",
		aliases:    []string{"alias auxiliary:arm_cca_guest.arm-rsi-dev arm_cca_guest\n"},
		notAliases: []string{"platform:arm-cca-dev"},
		facts: [][3]string{
			{snapshot.KindDevice, "devices/platform/arm-smccc", ""},
			{snapshot.KindDevice, rsi, ""},
			{snapshot.KindSubsystem, rsi, "auxiliary"},
			{snapshot.KindDriver, rsi, "arm_cca_guest"},
			{snapshot.KindFile, "firmware/cca/realm_guest", "1"},
			{snapshot.KindModule, "module/arm_cca_guest", "live"},
			{snapshot.KindCVM, "systemd-detect-virt", "none"},
		},
		absent: []string{"devices/platform/arm-cca-dev"},
		report: true,
	})
}

// TestSMCCCAuxV4Realm boots v4 1/2 of the auxiliary series as posted,
// arm-cca-dev kept, with the host DA series' host device
// (variants/smccc-aux-v4), as a realm through the realm firmware: the
// SMCCC core registered arm-smccc and below it arm_cca_guest.arm-rsi-dev.0
// (the conduit is SMC and RSI_VERSION answered); udev loaded
// arm_cca_guest by its auxiliary alias and it bound the device and serves
// the report; RMI_VERSION(2.0) got no RMM, so there is no host device;
// upstream rsi.c's arm-cca-dev is still there, aliased by nothing, and
// forky's systemd still says cca. The emulated model must agree.
func TestSMCCCAuxV4Realm(t *testing.T) {
	t.Parallel()
	const rsi = "devices/platform/arm-smccc/arm_cca_guest.arm-rsi-dev.0"
	bootRecipeRealm(t, recipeRealm{
		cell:   "smccc-aux-v4/realm",
		kernel: "7.3.4-smccc-aux-v4",
		aliases: []string{
			"alias auxiliary:arm_cca_guest.arm-rsi-dev arm_cca_guest\n",
			"alias auxiliary:arm_cca_host.arm-rmi-dev arm_cca_host\n",
		},
		notAliases: []string{"platform:arm-cca-dev"},
		facts: [][3]string{
			{snapshot.KindDevice, "devices/platform/arm-smccc", ""},
			{snapshot.KindDevice, "devices/platform/arm-cca-dev", ""},
			{snapshot.KindDevice, rsi, ""},
			{snapshot.KindDriver, rsi, "arm_cca_guest"},
			{snapshot.KindModule, "module/arm_cca_guest", "live"},
			{snapshot.KindCVM, "systemd-detect-virt", "cca"},
		},
		absent: []string{"devices/platform/arm-smccc/arm_cca_host.arm-rmi-dev.0"},
		report: true,
	})
}

// TestSMCCCAuxV4Host boots the same kernel as a host on real TF-A +
// TF-RMM v0.9 (RMM 2.0): RMI_VERSION(2.0), which the host DA series asks
// for, succeeds over SMC, so arm_cca_host.arm-rmi-dev.0 sits below
// arm-smccc and udev loads arm_cca_host by its alias; its probe reads RMI
// feature register 2, whose DA bit this RMM clears on QEMU (no SMMU), so
// the device stays unbound and there is no tsm0. The emulated model must
// agree.
func TestSMCCCAuxV4Host(t *testing.T) {
	t.Parallel()
	const rmi = "devices/platform/arm-smccc/arm_cca_host.arm-rmi-dev.0"
	b, c := preparedCell(t, "smccc-aux-v4/host@tf-rmm-0.9", Options{})
	_, r := bootGraded(t, b, c)
	ctx := context.Background()
	for _, f := range [][3]string{
		{snapshot.KindDevice, rmi, ""},
		{snapshot.KindSubsystem, rmi, "auxiliary"},
		{snapshot.KindModule, "module/arm_cca_host", "live"},
	} {
		if v, ok := r.Snapshot.Lookup(f[0], f[1]); !ok || v != f[2] {
			t.Errorf("snapshot %s %s = %q (%v), want %q", f[0], f[1], v, ok, f[2])
		}
	}
	if v, ok := r.Snapshot.Lookup(snapshot.KindDriver, rmi); ok {
		t.Errorf("%s bound to %s; want unbound (no DA in register 2)", rmi, v)
	}
	if m := r.Snapshot.Meta; m.RealFirmware != "tf-rmm-0.9" || m.Kernel != "7.3.4-smccc-aux-v4" {
		t.Errorf("meta %+v: want real firmware tf-rmm-0.9, kernel 7.3.4-smccc-aux-v4", m)
	}
	agreesWithModel(t, ctx, c, r.Snapshot)
}

// TestDebianKernelRealm is the same for Debian's own prebuilt kernel
// package (trixie-backports linux-image-7.3*-arm64, with its modules and
// the initramfs its installation generated, built by
// kernel.BuildDebian): the initramfs mounts the root, and the same
// upstream code finds the realm, with the same results.
func TestDebianKernelRealm(t *testing.T) {
	t.Parallel()
	upstreamRealm(t, "debian-kernel/realm", "7.3.4+deb13-arm64")
}

// v7 as posted: its fragment builds the TRNG driver the series converts
// too.
func init() {
	smcccBusCases = append(smcccBusCases, smcccBusCase{"v7", "smccc-bus/realm", "devices/arm-rsi-dev-1", "arm_smccc:arm-rsi-dev", []string{"alias arm_smccc:arm-smccc-trng arm_smccc_trng\n"}})
}
