package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
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

// sample is a two-cell run graded against a small expectations file, so
// every status appears: pass, xfail, fail, skip and an infrastructure error.
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
	cells := []matrix.CellResult{
		{Cell: faux, Name: faux.String(), Snapshot: s, Results: checks.Run(faux.String(), s, exp), Duration: 1500 * time.Millisecond},
		{Cell: plat, Name: plat.String(), Results: checks.Infrastructure(plat.String(), os.ErrDeadlineExceeded), Err: "boot: i/o timeout"},
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
	want := "2 cells, 18 checks: 6 pass, 1 xfail, 1 fail, 1 skip, 9 error"
	if got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if r.OK() {
		t.Errorf("OK() with failures = true")
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
	if len(back.Cells) != 2 || back.Cells[0].Results[0].Check != "tsm0" {
		t.Errorf("json lost cells: %+v", back.Cells)
	}
	b.Reset()
	if err := r.Write(&b, "junit"); err != nil {
		t.Fatal(err)
	}
	var suites junitSuites
	if err := xml.Unmarshal(b.Bytes(), &suites); err != nil {
		t.Fatalf("junit output does not parse: %v", err)
	}
	if suites.Fails != 1 || suites.Errors != 9 || suites.Skipped != 1 {
		t.Errorf("junit counts fail=%d error=%d skipped=%d, want 1, 9, 1", suites.Fails, suites.Errors, suites.Skipped)
	}
	if err := r.Write(&b, "pdf"); err == nil {
		t.Errorf("unknown format accepted")
	}
}
