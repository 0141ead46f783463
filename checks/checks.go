// Package checks turns a snapshot into results: pure functions that read the
// facts (sysfs layout, loaded modules, CVM verdicts, configfs-tsm) and compare
// what they measure with the expectation recorded for the cell. What each
// cell should show is data (expectations.txt), not code; a cell may be
// expected to be broken ("xfail"), and the report says so with the reason.
//
// Tests: go test ./checks (includes a fuzz test for the expectations parser).
package checks

import (
	"path"
	"slices"
	"strings"

	"cca-testbed/snapshot"
)

// Status is the class of a result. They are never folded into each other.
type Status string

const (
	Pass  Status = "pass"
	Fail  Status = "fail"  // measured differs from the expectation
	XFail Status = "xfail" // measured equals an expectation marked broken
	Skip  Status = "skip"  // nothing measured (the probe could not run)
	Infra Status = "error" // the harness could not bring the cell up
	// Boot: the kernel under test failed to come up (panic, oops, stall).
	// Nothing was measured, but unlike Infra it is a finding about the cell.
	Boot Status = "boot"
	// Measured: a value read with nothing recorded to grade it against,
	// as in the cells of a series a user brings (Expectations.ForSeries).
	// It is shown, and neither passes nor fails.
	Measured Status = "measured"
)

// Measured values with a fixed meaning. A measurement is a string, not a
// Status: the value a check read, which the expectations compare.
const (
	// Unknown is the measured value of a probe that did not run.
	Unknown = "unknown"
	// none is measured when there is nothing to list (no tsm0, no
	// device, no module) or nothing detected, as systemd-detect-virt
	// prints it.
	none = "none"
)

// Result is one check of one cell.
type Result struct {
	Cell     string   `json:"cell"`
	Check    string   `json:"check"`
	Status   Status   `json:"status"`
	Measured string   `json:"measured"`
	Expected string   `json:"expected"`
	Reason   string   `json:"reason,omitempty"`   // why a cell is xfail, or why it failed
	Evidence []string `json:"evidence,omitempty"` // the facts the value was read from
}

// Check measures one property of a snapshot.
type Check struct {
	Name     string
	Question string // what the report asks, in a reader's words
	Measure  func(s *snapshot.Snapshot) (value string, evidence []string)
}

// All lists the checks in report order.
var All = []Check{
	{"tsm0", "does /sys/class/tsm/tsm0 exist, and under which parent device?", measureTSM0},
	{"devices", "which CCA devices exist?", measureDevices},
	{"modalias", "which MODALIAS do they announce to udev?", measureModalias},
	{"autoload", "which modules did udev/kmod load?", measureModules},
	{"bound", "which driver bound each device?", measureBound},
	{"tsm-report", "does /sys/kernel/config/tsm/report appear?", measureReport},
	{"cvm-systemd", "what does the guest's systemd-detect-virt --cvm print?", measureFact(snapshot.KindCVM, snapshot.DetectVirt)},
	{"cvm-unit", "does a unit with ConditionSecurity=cvm run?", measureFact(snapshot.KindUnit, snapshot.GatedUnit)},
	{"cvm-proposed", "would a systemd reading /sys/firmware/cca/realm_guest detect the CVM?", measureProposed},
}

// Names lists the check names.
func Names() []string {
	n := make([]string, len(All))
	for i, c := range All {
		n[i] = c.Name
	}
	return n
}

func fact(f snapshot.Fact) string { return f.String() }

func measureTSM0(s *snapshot.Snapshot) (string, []string) {
	for _, f := range s.Of(snapshot.KindLink) {
		if f.Path == "class/tsm/tsm0" {
			// .../<parent>/tsm/tsm0: the parent is two levels up.
			return path.Dir(path.Dir(path.Join("class/tsm", f.Value))), []string{fact(f)}
		}
	}
	return none, nil
}

// cca reports whether a device fact is one of the CCA devices (not the tsm
// class device, which the tsm0 check covers).
func cca(s *snapshot.Snapshot, devpath string) bool {
	sub, _ := s.Lookup(snapshot.KindSubsystem, devpath)
	return sub != "tsm"
}

func measureDevices(s *snapshot.Snapshot) (string, []string) {
	var names, ev []string
	for _, f := range s.Of(snapshot.KindDevice) {
		if cca(s, f.Path) {
			names = append(names, path.Base(f.Path))
			ev = append(ev, fact(f))
		}
	}
	return list(names), ev
}

func measureModalias(s *snapshot.Snapshot) (string, []string) {
	var vals, ev []string
	for _, f := range s.Of(snapshot.KindUevent) {
		if v, ok := strings.CutPrefix(f.Value, "MODALIAS="); ok && cca(s, f.Path) {
			vals = append(vals, v)
			ev = append(ev, fact(f))
		}
	}
	return list(vals), ev
}

func measureModules(s *snapshot.Snapshot) (string, []string) {
	var mods, ev []string
	for _, f := range s.Of(snapshot.KindModule) {
		mods = append(mods, path.Base(f.Path))
		ev = append(ev, fact(f))
	}
	return list(mods), ev
}

func measureBound(s *snapshot.Snapshot) (string, []string) {
	var pairs, ev []string
	for _, f := range s.Of(snapshot.KindDriver) {
		if cca(s, f.Path) {
			pairs = append(pairs, path.Base(f.Path)+"="+f.Value)
			ev = append(ev, fact(f))
		}
	}
	return list(pairs), ev
}

func measureReport(s *snapshot.Snapshot) (string, []string) {
	if s.Has(snapshot.KindDir, "kernel/config/tsm/report") {
		return "present", []string{"dir kernel/config/tsm/report"}
	}
	return "absent", nil
}

// realmGuestPath is the smccc-bus series' proposed realm indicator,
// relative to /sys.
const realmGuestPath = "firmware/cca/realm_guest"

// measureProposed is "systemd as proposed": the probe the smccc-bus
// series' ABI document describes, applied as a systemd following it would.
// The guest is a realm ("cca") when /sys/firmware/cca/realm_guest reads 1;
// anything else, or no file, is "none". This is the probe's only home: it
// reads the snapshot, so it answers alike for real and emulated guests.
func measureProposed(s *snapshot.Snapshot) (string, []string) {
	const p = realmGuestPath
	v, ok := s.Lookup(snapshot.KindFile, p)
	if !ok {
		return none, nil
	}
	ev := []string{snapshot.Fact{Kind: snapshot.KindFile, Path: p, Value: v}.String()}
	if v == "1" {
		return "cca", ev
	}
	return none, ev
}

// measureFact reads a fact the runner recorded from a command in the guest;
// "unknown" when the command could not run, which turns into Skip.
func measureFact(kind, p string) func(*snapshot.Snapshot) (string, []string) {
	return func(s *snapshot.Snapshot) (string, []string) {
		v, ok := s.Lookup(kind, p)
		if !ok {
			return Unknown, nil
		}
		return v, []string{snapshot.Fact{Kind: kind, Path: p, Value: v}.String()}
	}
}

func list(xs []string) string {
	if len(xs) == 0 {
		return none
	}
	slices.Sort(xs)
	return strings.Join(slices.Compact(xs), ",")
}

// notGraded is the reason of a Measured result.
const notGraded = "no expectation recorded for a variant from a patch series"

// Run measures every check on s and grades it against exp for cell.
func Run(cell string, s *snapshot.Snapshot, exp *Expectations) []Result {
	out := make([]Result, 0, len(All))
	for _, c := range All {
		v, ev := c.Measure(s)
		r := Result{Cell: cell, Check: c.Name, Measured: v, Evidence: ev}
		e, ok := exp.Lookup(cell, c.Name)
		switch {
		case v == Unknown:
			r.Status, r.Reason = Skip, "the probe did not run in this backend"
		case !ok && exp != nil && exp.measureRest:
			r.Status, r.Reason = Measured, notGraded
		case !ok:
			r.Status, r.Reason = Fail, "no expectation recorded for this cell"
		case e.Value != v:
			r.Status, r.Expected = Fail, e.Value
			r.Reason = e.Reason
		case e.XFail:
			r.Status, r.Expected, r.Reason = XFail, e.Value, e.Reason
		default:
			r.Status, r.Expected = Pass, e.Value
		}
		out = append(out, r)
	}
	return out
}

// Infrastructure returns the result list of a cell the harness could not
// bring up: one Infra result per check, so no cell silently drops out of a
// report.
func Infrastructure(cell string, err error) []Result { return unmeasured(cell, Infra, err) }

// BootFailed returns the result list of a cell whose kernel failed to come
// up: one Boot result per check, with the failure as the reason.
func BootFailed(cell string, err error) []Result { return unmeasured(cell, Boot, err) }

func unmeasured(cell string, st Status, err error) []Result {
	out := make([]Result, 0, len(All))
	for _, c := range All {
		out = append(out, Result{Cell: cell, Check: c.Name, Status: st, Measured: Unknown, Reason: err.Error()})
	}
	return out
}
