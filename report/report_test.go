package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cca-testbed/cell"
	"cca-testbed/checks"
	"cca-testbed/matrix"
	"cca-testbed/snapshot"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// sample is a five-cell run graded against a small expectations file, so
// every status appears: pass, xfail, fail, skip, an infrastructure error,
// a kernel that failed to boot, a user's series measured, not graded, and
// a recipe kernel's host on the model, where nothing answers RMI.
func sample(t *testing.T) *Report {
	t.Helper()
	exp, err := checks.ParseExpectations(strings.NewReader(`
*/*            tsm0          none
*/*            devices       none
*/*            modalias      none
*/*            autoload      none
*/*            bound         none
*/*            tsm-report    absent
*/*            cvm-systemd   cca
*/*            cvm-proposed  none
faux/realm     devices       arm-rsi-dev
faux/realm     bound         arm-rsi-dev=faux_driver
faux/realm     cvm-systemd   none   xfail: systemd looks for arm-cca-dev only
`))
	if err != nil {
		t.Fatal(err)
	}
	s := &snapshot.Snapshot{Meta: snapshot.Meta{Cell: "faux/realm", Backend: "test"}}
	s.Add(
		snapshot.Fact{Kind: snapshot.KindDevice, Path: "devices/faux/arm-rsi-dev"},
		snapshot.Fact{Kind: snapshot.KindSubsystem, Path: "devices/faux/arm-rsi-dev", Value: "faux"},
		snapshot.Fact{Kind: snapshot.KindDriver, Path: "devices/faux/arm-rsi-dev", Value: "faux_driver"},
		snapshot.Fact{Kind: snapshot.KindUevent, Path: "devices/faux/arm-rsi-dev", Value: "DRIVER=faux_driver"},
		snapshot.Fact{Kind: snapshot.KindCVM, Path: "systemd-detect-virt", Value: "none"},
		snapshot.Fact{Kind: snapshot.KindModule, Path: "module/tsm_report", Value: "live"},
	)
	faux := cell.Cell{Variant: cell.Faux, Role: cell.Realm, Userspace: cell.Forky}
	plat := cell.Cell{Variant: cell.Platform, Role: cell.Realm, Userspace: cell.Forky}
	bus := cell.Cell{Variant: cell.SMCCCBus, Role: cell.Realm, Userspace: cell.Forky}
	unregister, err := cell.Register(cell.VariantInfo{Name: "my-series", Description: "series: renames the realm device (1 patch); by A <a@example.invalid>; version v2"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unregister)
	mine := cell.Cell{Variant: "my-series", Role: cell.Realm, Userspace: cell.Forky}
	// A recipe kernel's host on the model: nothing answers its RMI calls.
	host := cell.Cell{Variant: cell.Stock, Role: cell.HostDA, Userspace: cell.Forky}
	hs := &snapshot.Snapshot{Meta: snapshot.Meta{Cell: host.String(), Backend: "test", Conduit: "none"}}
	ms := *s // the same facts, measured in the series' cell
	ms.Meta.Cell = mine.String()
	panicked := errors.New("smccc-bus/realm: boot failed: kernel panic: Kernel panic - not syncing: Attempted to kill init!")
	cells := []matrix.CellResult{
		{Cell: faux, Name: faux.String(), Snapshot: s, Results: checks.Run(faux.String(), s, exp), Duration: 1500 * time.Millisecond},
		{Cell: plat, Name: plat.String(), Results: checks.Infrastructure(plat.String(), os.ErrDeadlineExceeded), Err: "boot: i/o timeout", Class: matrix.ClassInfra},
		{Cell: bus, Name: bus.String(), Results: checks.BootFailed(bus.String(), panicked), Err: panicked.Error(), Class: matrix.ClassBoot},
		{Cell: host, Name: host.String(), Snapshot: hs, Results: checks.Run(host.String(), hs, exp), Duration: time.Second},
		{Cell: mine, Name: mine.String(), Snapshot: &ms, Results: checks.Run(mine.String(), &ms, exp.ForSeries("my-series")), Duration: 1400 * time.Millisecond},
	}
	return New("test", time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC), 2*time.Second, cells)
}

func TestGolden(t *testing.T) {
	r := sample(t)
	ext := map[string]string{"text": "txt", "json": "json", "junit": "xml", "markdown": "md", "html": "html"}
	for _, f := range Formats {
		t.Run(f, func(t *testing.T) {
			var b bytes.Buffer
			if err := r.Write(&b, f); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "sample."+ext[f])
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./report -update)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("%s output differs from %s (run go test ./report -update and review the diff)", f, golden)
			}
		})
	}
}

func TestSummaryAndOK(t *testing.T) {
	r := sample(t)
	got := r.Summary.String()
	want := "5 cells, 45 checks: 13 pass, 1 xfail, 1 fail, 9 boot, 4 skip, 9 error, 8 measured (not graded)"
	if got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if r.OK() {
		t.Errorf("OK() with failures = true")
	}
}

// TestOK: measured checks (a user's series) are no failure; every class
// that is one still makes the run not OK.
func TestOK(t *testing.T) {
	tests := []struct {
		statuses []checks.Status
		ok       bool
	}{
		{[]checks.Status{checks.Pass, checks.XFail, checks.Measured}, true},
		{[]checks.Status{checks.Measured, checks.Measured}, true},
		{[]checks.Status{checks.Measured, checks.Fail}, false},
		{[]checks.Status{checks.Measured, checks.Skip}, false},
		{[]checks.Status{checks.Measured, checks.Boot}, false},
		{[]checks.Status{checks.Measured, checks.Infra}, false},
	}
	for _, tt := range tests {
		var res []checks.Result
		for _, st := range tt.statuses {
			res = append(res, checks.Result{Status: st})
		}
		c := cell.Cell{Variant: cell.Platform, Role: cell.Plain, Userspace: cell.Forky}
		r := New("test", time.Now(), 0, []matrix.CellResult{{Cell: c, Name: c.String(), Results: res}})
		if r.OK() != tt.ok {
			t.Errorf("%v: OK() = %v, want %v", tt.statuses, r.OK(), tt.ok)
		}
	}
}

func TestMachineReadable(t *testing.T) {
	r := sample(t)
	var b bytes.Buffer
	if err := r.Write(&b, "json"); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("json output does not parse: %v", err)
	}
	if len(back.Cells) != 5 || back.Cells[0].Results[0].Check != "tsm0" {
		t.Errorf("json lost cells: %+v", back.Cells)
	}
	if c := back.Cells[2]; c.Class != matrix.ClassBoot || c.Results[0].Status != checks.Boot || back.Cells[1].Class != matrix.ClassInfra {
		t.Errorf("json lost the failure classes: %s %s, %s", c.Class, c.Results[0].Status, back.Cells[1].Class)
	}
	b.Reset()
	if err := r.Write(&b, "junit"); err != nil {
		t.Fatal(err)
	}
	var suites junitSuites
	if err := xml.Unmarshal(b.Bytes(), &suites); err != nil {
		t.Fatalf("junit output does not parse: %v", err)
	}
	// The 9 checks of the cell whose kernel panicked are failures (a
	// finding), typed "boot"; the harness's are errors, typed "infra".
	if suites.Fails != 10 || suites.Errors != 9 || suites.Skipped != 4 {
		t.Errorf("junit counts fail=%d error=%d skipped=%d, want 10, 9, 4", suites.Fails, suites.Errors, suites.Skipped)
	}
	for _, s := range suites.Suites {
		for _, tc := range s.Cases {
			if tc.Failure != nil && (tc.Failure.Type == "boot") != (s.Name == "smccc-bus/realm") ||
				tc.Error != nil && tc.Error.Type != "infra" {
				t.Errorf("%s %s: failure %+v error %+v: wrong type", s.Name, tc.Name, tc.Failure, tc.Error)
			}
		}
	}
	if err := r.Write(&b, "pdf"); err == nil {
		t.Errorf("unknown format accepted")
	}
}

// TestSeriesProvenance: a variant from a patch series is named, with its
// provenance, in the text, Markdown and JSON reports.
func TestSeriesProvenance(t *testing.T) {
	unregister, err := cell.Register(cell.VariantInfo{Name: "my-series", Description: "series: x (1 patch); by A <a@example.invalid>; version v3"})
	if err != nil {
		t.Fatal(err)
	}
	defer unregister()
	c := cell.Cell{Variant: "my-series", Role: cell.Plain, Userspace: cell.Forky}
	r := New("qemu", time.Now(), time.Second, []matrix.CellResult{{Cell: c, Name: c.String()}})
	if len(r.Series) != 1 || r.Series[0].Variant != "my-series" {
		t.Fatalf("series = %+v", r.Series)
	}
	for _, f := range []string{"text", "markdown", "json"} {
		var b strings.Builder
		if err := r.Write(&b, f); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "version v3") {
			t.Errorf("%s report lacks the provenance:\n%s", f, b.String())
		}
	}
}

// TestConduit: a model host cell of a kernel without the glue says that
// nothing answered its RMI calls, unless firmware below the kernel did.
func TestConduit(t *testing.T) {
	stockHost := cell.Cell{Variant: cell.Stock, Role: cell.HostDA, Userspace: cell.Forky}
	tests := []struct {
		c        cell.Cell
		recorded string
		want     string
	}{
		// A recipe's model host boots on the firmware in host mode, which
		// answers; booted without it (--host-conduit none), nothing did.
		{stockHost, "hostfw:rmm-1.1", "hostfw:rmm-1.1"},
		{stockHost, "none", "no RMI answerer (recipe kernel booted with --host-conduit none)"},
		{stockHost, "realmfw:rmm-1.1", "realmfw:rmm-1.1"},
		{cell.Cell{Variant: cell.DebianKernel, Role: cell.HostNoDA, Userspace: cell.Forky}, "none", "no RMI answerer (prebuilt kernel: model answers reach only the project glue)"},
		{cell.Cell{Variant: cell.Platform, Role: cell.HostDA, Userspace: cell.Forky}, "emulated-rmi:rmm-1.1", "emulated-rmi:rmm-1.1"},
		{cell.Cell{Variant: cell.Stock, Role: cell.Host, Userspace: cell.Forky, Firmware: cell.TFRMM09}, "smc", "smc"},
		{cell.Cell{Variant: cell.Stock, Role: cell.Realm, Userspace: cell.Forky}, "realmfw:realm", "realmfw:realm"},
		{stockHost, "", "-"},
	}
	for _, tt := range tests {
		r := matrix.CellResult{Cell: tt.c, Name: tt.c.String(), Snapshot: &snapshot.Snapshot{Meta: snapshot.Meta{Conduit: tt.recorded}}}
		if got := conduit(r); got != tt.want {
			t.Errorf("%s recorded %q: %q, want %q", tt.c, tt.recorded, got, tt.want)
		}
	}
}
