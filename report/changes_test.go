package report

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"cca-testbed/checks"
	"cca-testbed/matrix"
	"cca-testbed/snapshot"
)

func runWith(cvm string, status checks.Status, extra ...string) *Report {
	s := &snapshot.Snapshot{}
	s.Add(snapshot.Fact{Kind: snapshot.KindCVM, Path: "systemd-detect-virt", Value: cvm})
	cells := []matrix.CellResult{{Name: "platform/realm", Snapshot: s,
		Results: []checks.Result{{Check: "cvm-systemd", Status: status, Measured: cvm}}}}
	for _, e := range extra {
		cells = append(cells, matrix.CellResult{Name: e})
	}
	return New("qemu", time.Unix(0, 0), time.Second, cells)
}

func TestChanges(t *testing.T) {
	a := runWith("cca", checks.Pass, "faux/realm")
	b := runWith("none", checks.Fail, "virtual/realm")
	var out bytes.Buffer
	n := WriteChanges(&out, a, b)
	for _, want := range []string{
		"~ platform/realm cvm-systemd: pass cca => fail none",
		"platform/realm ~ cvm systemd-detect-virt: cca => none",
		"+ cell virtual/realm",
		"- cell faux/realm",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
	if n != 4 {
		t.Errorf("n = %d, want 4", n)
	}
	out.Reset()
	if n := WriteChanges(&out, a, a); n != 0 || out.Len() != 0 {
		t.Errorf("same run: %d changes %q", n, out.String())
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	a := runWith("cca", checks.Pass)
	var b bytes.Buffer
	if err := a.Write(&b, "json"); err != nil {
		t.Fatal(err)
	}
	got, err := Decode(&b, "report.json")
	if err != nil || len(got.Cells) != 1 || got.Cells[0].Snapshot == nil {
		t.Fatalf("Decode = %+v, %v", got, err)
	}
	if _, err := Decode(strings.NewReader(`{"x":1}`), "bad.json"); !errors.Is(err, ErrNotReport) {
		t.Fatalf("err = %v, want ErrNotReport", err)
	}
}
