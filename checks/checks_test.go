package checks

import (
	"errors"
	"strings"
	"testing"

	"cca-testbed/cell"
	"cca-testbed/snapshot"
)

func TestParseExpectationsErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"platform/realm tsm0\n", "line 1: want CELL CHECK VALUE"},
		{"# c\n\nplatform/realm nosuch none\n", "line 3: unknown check \"nosuch\""},
		{"platform tsm0 none\n", "line 1: bad cell pattern"},
		{"[/realm tsm0 none\n", "line 1: bad cell pattern"},
		{"faux/realm cvm-systemd none xfail:\n", "line 1: xfail needs a reason"},
		{"faux/realm cvm-systemd none xfail: # the reason is only a comment\n", "line 1: xfail needs a reason"},
		{"faux/realm cvm-systemd none because\n", "line 1: unexpected \"because\" after the value"},
	}
	for _, tt := range tests {
		_, err := ParseExpectations(strings.NewReader(tt.in))
		if err == nil || !errors.Is(err, ErrExpectations) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseExpectations(%q) = %v, want error containing %q", tt.in, err, tt.want)
		}
	}
}

// TestCommentsMeanNothing: text after '#' is a comment wherever it starts,
// so nothing inside it (an "xfail:", a field) changes what the line says.
func TestCommentsMeanNothing(t *testing.T) {
	tests := []struct {
		line string
		want Expectation
	}{
		{"faux/realm tsm0 none # was xfail: fixed in v2", Expectation{Cells: "faux/realm", Check: "tsm0", Value: "none"}},
		{"faux/realm tsm0 none#xfail: glued", Expectation{Cells: "faux/realm", Check: "tsm0", Value: "none"}},
		{"faux/realm tsm0 none xfail: no MODALIAS # see DESIGN.md", Expectation{Cells: "faux/realm", Check: "tsm0", Value: "none", XFail: true, Reason: "no MODALIAS"}},
		{"faux/realm tsm0 none xfail:no space", Expectation{Cells: "faux/realm", Check: "tsm0", Value: "none", XFail: true, Reason: "no space"}},
		{"faux/realm tsm0 axfail:b xfail: two  spaces", Expectation{Cells: "faux/realm", Check: "tsm0", Value: "axfail:b", XFail: true, Reason: "two  spaces"}},
		{"  faux/realm tsm0 none   # a note", Expectation{Cells: "faux/realm", Check: "tsm0", Value: "none"}},
	}
	for _, tt := range tests {
		e, err := ParseExpectations(strings.NewReader(tt.line + "\n"))
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		tt.want.Line = 1
		if len(e.lines) != 1 || e.lines[0] != tt.want {
			t.Errorf("%q: parsed %+v, want %+v", tt.line, e.lines, tt.want)
		}
	}
}

func TestLookupLaterLinesWin(t *testing.T) {
	e, err := ParseExpectations(strings.NewReader(`
*/*            cvm-systemd none
*/realm        cvm-systemd cca
faux/realm     cvm-systemd none  xfail: systemd only looks for arm-cca-dev
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cell, want string
		xfail      bool
	}{
		{"platform/plain", "none", false},
		{"platform/realm", "cca", false},
		{"faux/realm", "none", true},
	}
	for _, tt := range tests {
		got, ok := e.Lookup(tt.cell, "cvm-systemd")
		if !ok || got.Value != tt.want || got.XFail != tt.xfail {
			t.Errorf("Lookup(%s) = %+v, %v; want %s xfail=%v", tt.cell, got, ok, tt.want, tt.xfail)
		}
	}
	if _, ok := e.Lookup("faux/realm", "tsm0"); ok {
		t.Errorf("Lookup of an unrecorded check succeeded")
	}
}

func realmSnapshot() *snapshot.Snapshot {
	s := &snapshot.Snapshot{}
	s.Add(
		snapshot.Fact{Kind: snapshot.KindDevice, Path: "devices/platform/arm-cca-dev"},
		snapshot.Fact{Kind: snapshot.KindSubsystem, Path: "devices/platform/arm-cca-dev", Value: "platform"},
		snapshot.Fact{Kind: snapshot.KindDriver, Path: "devices/platform/arm-cca-dev", Value: "cca_guest_tsm"},
		snapshot.Fact{Kind: snapshot.KindUevent, Path: "devices/platform/arm-cca-dev", Value: "MODALIAS=platform:arm-cca-dev"},
		snapshot.Fact{Kind: snapshot.KindModule, Path: "module/tsm_report", Value: "live"},
		snapshot.Fact{Kind: snapshot.KindModule, Path: "module/cca_guest_tsm", Value: "live"},
		snapshot.Fact{Kind: snapshot.KindDir, Path: "kernel/config/tsm/report"},
		snapshot.Fact{Kind: snapshot.KindCVM, Path: "systemd-detect-virt", Value: "cca"},
		snapshot.Fact{Kind: snapshot.KindLink, Path: "class/tsm/tsm0", Value: "../../devices/virtual/tsm/tsm0"},
		snapshot.Fact{Kind: snapshot.KindDevice, Path: "devices/virtual/tsm/tsm0"},
		snapshot.Fact{Kind: snapshot.KindSubsystem, Path: "devices/virtual/tsm/tsm0", Value: "tsm"},
	)
	return s
}

func TestMeasure(t *testing.T) {
	s := realmSnapshot()
	want := map[string]string{
		"tsm0":         "devices/virtual",
		"devices":      "arm-cca-dev",
		"modalias":     "platform:arm-cca-dev",
		"autoload":     "cca_guest_tsm,tsm_report",
		"bound":        "arm-cca-dev=cca_guest_tsm",
		"tsm-report":   "present",
		"cvm-systemd":  "cca",
		"cvm-unit":     Unknown,
		"cvm-proposed": "none",
	}
	for _, c := range All {
		got, _ := c.Measure(s)
		if got != want[c.Name] {
			t.Errorf("%s = %q, want %q", c.Name, got, want[c.Name])
		}
	}
}

func TestRunStatuses(t *testing.T) {
	e, err := ParseExpectations(strings.NewReader(`
x/y tsm0 devices/virtual
x/y devices arm-rsi-dev
x/y autoload cca_guest_tsm,tsm_report xfail: loaded though the design says it should not
x/y cvm-unit active
`))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Status{}
	for _, r := range Run("x/y", realmSnapshot(), e) {
		got[r.Check] = r.Status
	}
	want := map[string]Status{"tsm0": Pass, "devices": Fail, "autoload": XFail, "cvm-unit": Skip, "modalias": Fail}
	for check, st := range want {
		if got[check] != st {
			t.Errorf("%s: status %s, want %s", check, got[check], st)
		}
	}
}

// TestForSeries: a series' cells are graded only by lines that name the
// series itself; what the defaults ("*/*", "*/realm*") would say is not
// applied, and a check nothing names is Measured with its value.
func TestForSeries(t *testing.T) {
	e, err := ParseExpectations(strings.NewReader(`
*/*              tsm0      devices/platform/arm-rmi-dev
*/*              devices   none
*/realm*         autoload  none
my*/realm        bound     none
my-series/realm  devices   arm-rsi-dev
my-series/r*     autoload  cca_guest_tsm,tsm_report xfail: named by the user
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		exp  *Expectations
		want map[string]Status
	}{
		{"series", e.ForSeries("my-series"), map[string]Status{
			"tsm0": Measured, "devices": Fail, "autoload": XFail, "bound": Measured, "cvm-unit": Skip, "modalias": Measured}},
		{"other series", e.ForSeries("other"), map[string]Status{
			"tsm0": Measured, "devices": Measured, "autoload": Measured, "cvm-unit": Skip}},
		{"nil", (*Expectations)(nil).ForSeries("my-series"), map[string]Status{"tsm0": Measured, "cvm-unit": Skip}},
		{"graded as built-in", e, map[string]Status{"tsm0": Fail, "devices": Fail, "bound": Fail, "modalias": Fail}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]Result{}
			for _, r := range Run("my-series/realm", realmSnapshot(), tt.exp) {
				got[r.Check] = r
			}
			for check, st := range tt.want {
				r := got[check]
				if r.Status != st {
					t.Errorf("%s: status %s (measured %q, expected %q), want %s", check, r.Status, r.Measured, r.Expected, st)
				}
				if st == Measured && (r.Expected != "" || r.Measured == "" || r.Reason != notGraded) {
					t.Errorf("%s: measured %q, expected %q, reason %q: want the value, no expectation, the reason", check, r.Measured, r.Expected, r.Reason)
				}
			}
		})
	}
}

// TestDefaultCoversMatrix keeps the recorded expectations complete: every
// cell of the default matrix has a value for every check.
func TestDefaultCoversMatrix(t *testing.T) {
	e, err := ParseExpectations(strings.NewReader(DefaultExpectations))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cell.Matrix() {
		for _, name := range Names() {
			if _, ok := e.Lookup(c.String(), name); !ok {
				t.Errorf("%s %s: no expectation", c, name)
			}
		}
	}
}

func FuzzParseExpectations(f *testing.F) {
	f.Add(DefaultExpectations)
	f.Add("*/* tsm0 none xfail: x\n")
	f.Fuzz(func(t *testing.T, in string) {
		e, err := ParseExpectations(strings.NewReader(in))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		for _, l := range e.lines {
			if l.XFail && l.Reason == "" {
				t.Fatalf("xfail without reason accepted: %+v", l)
			}
		}
		// A comment appended to every line changes nothing (short inputs:
		// the longer lines must stay under the scanner's line limit).
		if len(in) > 16<<10 {
			return
		}
		var commented strings.Builder
		for l := range strings.Lines(in) {
			commented.WriteString(strings.TrimRight(l, "\r\n") + " # xfail: a b c #\n")
		}
		again, err := ParseExpectations(strings.NewReader(commented.String()))
		if err != nil {
			t.Fatalf("commented copy fails: %v\n%s", err, commented.String())
		}
		if len(e.lines) != len(again.lines) {
			t.Fatalf("a comment changed the number of lines: %d, then %d", len(e.lines), len(again.lines))
		}
		for i := range e.lines {
			if e.lines[i] != again.lines[i] {
				t.Fatalf("a comment changed the meaning: %+v, then %+v", e.lines[i], again.lines[i])
			}
		}
	})
}

// TestProposed: "systemd as proposed" detects a realm only when
// realm_guest reads 1.
func TestProposed(t *testing.T) {
	for _, tt := range []struct {
		name, file string
		present    bool
		want       string
	}{
		{"realm", "1", true, "cca"},
		{"not a realm", "0", true, "none"},
		{"no file", "", false, "none"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &snapshot.Snapshot{}
			if tt.present {
				s.Add(snapshot.Fact{Kind: snapshot.KindFile, Path: realmGuestPath, Value: tt.file})
			}
			if got, ev := measureProposed(s); got != tt.want || tt.present != (len(ev) == 1) {
				t.Errorf("measureProposed = %q %v, want %q with evidence %v", got, ev, tt.want, tt.present)
			}
		})
	}
}
