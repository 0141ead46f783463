package snapshot

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"cca-testbed/internal/timeout"
)

// The names the guest-reading steps share with the guest image and the
// checks: each is written here only.
const (
	// HelperName is the in-guest snapshot helper (cmd/sysfs-snapshot).
	HelperName = "sysfs-snapshot"
	// HelperDir is where the helper is installed: on root's PATH in the
	// rootfs, so the step runs it by name.
	HelperDir = "/usr/local/bin"
	// DetectVirt is the probe path of systemd-detect-virt's verdict.
	DetectVirt = "systemd-detect-virt"
	// GatedUnit is the unit with ConditionSecurity=cvm the image carries.
	GatedUnit = "cca-cvm-gated.service"
)

// Names of the steps, in the order Steps returns them.
const (
	StepBoot       = "boot"
	StepSettle     = "settle"
	StepHelper     = "helper"
	StepDetectVirt = "detect-virt"
	StepGatedUnit  = "gated-unit"
)

// SettleTimeout bounds `udevadm settle` in the guest, before the one
// timeout scale (internal/timeout) multiplies it.
const SettleTimeout = 60 * time.Second

// Step is one command the runner sends a booted guest to read it. The
// runner (matrix.Snapshot) sends these and the emulated backend answers
// these, so a flag edited here changes both.
type Step struct {
	// Name identifies the step (the Step* constants).
	Name string
	// Argv is the command, run as root with the guest's PATH.
	Argv []string
	// What says what the step is for, in errors ("waiting for boot to finish").
	What string
	// Must makes a non-zero exit an error; otherwise the exit code is
	// part of what is read.
	Must bool
	// Document: the output is the snapshot document itself.
	Document bool
	// Kind and Path name the fact the output yields (none when Kind is
	// empty); Value reads the fact's value from stdout and the exit code.
	Kind, Path string
	Value      func(stdout []byte, exitCode int) string
}

// Fact is the fact the step's output yields.
func (st Step) Fact(stdout []byte, exitCode int) Fact {
	return Fact{Kind: st.Kind, Path: st.Path, Value: st.Value(stdout, exitCode)}
}

// Steps lists the guest-reading steps in the order they run.
func Steps() []Step {
	return []Step{
		// sshd starts with sysinit, so SSH can answer before systemd has
		// triggered udev or reached multi-user.target: wait for the boot to
		// finish ("degraded" exits 1 and is fine: a failed unit not under test).
		{Name: StepBoot, Argv: []string{"systemctl", "is-system-running", "--wait"}, What: "waiting for boot to finish"},
		// Autoload results race with udev otherwise.
		{Name: StepSettle, Argv: []string{"udevadm", "settle", "--timeout=" + strconv.Itoa(timeout.Seconds(SettleTimeout))}, What: "udevadm", Must: true},
		{Name: StepHelper, Argv: []string{HelperName}, What: HelperName, Must: true, Document: true},
		// systemd-detect-virt --cvm prints the verdict and exits 1 for "none".
		{Name: StepDetectVirt, Argv: []string{"systemd-detect-virt", "--cvm"}, What: "systemd-detect-virt",
			Kind: KindCVM, Path: DetectVirt, Value: verdict},
		{Name: StepGatedUnit, Argv: []string{"systemctl", "is-active", GatedUnit}, What: "systemctl",
			Kind: KindUnit, Path: GatedUnit, Value: func(out []byte, _ int) string { return firstWord(out) }},
	}
}

// StepNamed is the step called name (a Step* constant); it panics on any
// other name, which is a programming error.
func StepNamed(name string) Step {
	for _, st := range Steps() {
		if st.Name == name {
			return st
		}
	}
	panic("snapshot: no step named " + strconv.Quote(name))
}

// StepFor is the step whose command is argv.
func StepFor(argv []string) (Step, bool) {
	for _, st := range Steps() {
		if slices.Equal(st.Argv, argv) {
			return st, true
		}
	}
	return Step{}, false
}

// verdict is systemd-detect-virt's verdict. The exit code is kept in the
// fact when it contradicts the output, so a "none" that exits 0 (or "cca"
// exiting 1) shows up as a difference.
func verdict(out []byte, exitCode int) string {
	v := firstWord(out)
	if (v == "none") != (exitCode != 0) {
		return fmt.Sprintf("%s(exit=%d)", v, exitCode)
	}
	return v
}

func firstWord(b []byte) string {
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "empty"
	}
	return f[0]
}
