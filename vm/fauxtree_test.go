package vm

import (
	"bytes"
	"context"
	"os/exec"
	"testing"

	"cca-testbed/snapshot"
)

// TestFauxTreeRealm boots the faux tree proposal (variants/faux-tree, a
// recipe with a udev rule as its userspace part) as a realm through the
// realm firmware and asserts what the real kernel and userspace did:
// nothing aliases arm_cca_guest (faux devices announce no MODALIAS), the
// rule is in the modules disk, the SMCCC core made faux arm-smccc, and
// the rule, keyed on realm_guest at arm-smccc's add during coldplug,
// loaded arm_cca_guest, which made faux arm-rsi-dev below it with tsm0
// and the configfs-tsm report; no arm-cca-dev, so forky's systemd says
// none. The emulated model must agree fact for fact.
func TestFauxTreeRealm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, c := preparedCell(t, "faux-tree/realm", Options{})
	k, err := b.kernel(ctx, c.Variant)
	if err != nil {
		t.Fatal(err)
	}
	for path, check := range map[string]func([]byte){
		"/" + k.Release + "/modules.alias": func(b []byte) {
			if bytes.Contains(b, []byte(" arm_cca_guest\n")) {
				t.Error("modules.alias aliases arm_cca_guest; the faux tree has no device table")
			}
		},
		"/cca-userspace/etc/udev/rules.d/60-cca-realm-guest.rules": func(b []byte) {
			if !bytes.Contains(b, []byte(`KERNEL=="arm-smccc"`)) || !bytes.Contains(b, []byte("kmod load arm_cca_guest")) {
				t.Errorf("the modules disk's rule is %q", b)
			}
		},
	} {
		var stderr bytes.Buffer
		cmd := exec.Command("debugfs", "-R", "cat "+path, k.ModulesDisk)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("debugfs cat %s: %v (%s)", path, err, stderr.String())
		}
		check(out)
	}
	li, r := bootGraded(t, b, c)
	for kind, facts := range map[string][2]string{
		snapshot.KindDevice: {"devices/faux/arm-smccc/arm-rsi-dev", ""},
		snapshot.KindDriver: {"devices/faux/arm-smccc/arm-rsi-dev", "faux_driver"},
		snapshot.KindFile:   {"firmware/cca/realm_guest", "1"},
		snapshot.KindModule: {"module/arm_cca_guest", "live"},
		snapshot.KindCVM:    {"systemd-detect-virt", "none"},
	} {
		if v, ok := r.Snapshot.Lookup(kind, facts[0]); !ok || v != facts[1] {
			t.Errorf("snapshot %s %s = %q (%v), want %q", kind, facts[0], v, ok, facts[1])
		}
	}
	if _, ok := r.Snapshot.Lookup(snapshot.KindDevice, "devices/faux/arm-smccc/arm-rsi-dev/tsm/tsm0"); !ok {
		t.Error("no tsm0 below arm-rsi-dev")
	}
	if _, ok := r.Snapshot.Lookup(snapshot.KindDevice, "devices/platform/arm-cca-dev"); ok {
		t.Error("arm-cca-dev is registered")
	}
	if r.Snapshot.Meta.Conduit != "realmfw:realm" || r.Snapshot.Meta.Kernel != "7.3.4-faux-tree" {
		t.Errorf("meta %+v: want conduit realmfw:realm, kernel 7.3.4-faux-tree", r.Snapshot.Meta)
	}
	checkReport(t, li)
	agreesWithModel(t, ctx, c, r.Snapshot)
}
