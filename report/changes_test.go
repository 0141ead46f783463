package report

import (
	"bytes"
	"errors"
	"slices"
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

// TestDecodeSnapshots: a report's snapshots are held to the snapshot rules
// and put in canonical order before anything compares them.
func TestDecodeSnapshots(t *testing.T) {
	doc := func(facts string) string {
		return `{"backend":"qemu","cells":[{"cell":"faux/realm","results":[],"snapshot":{"meta":{"cell":"faux/realm"},"facts":[` + facts + `]}}]}`
	}
	got, err := Decode(strings.NewReader(doc(`{"kind":"module","path":"module/b","value":"live"},{"kind":"module","path":"module/a","value":"live"},{"kind":"module","path":"module/a","value":"live"}`)), "r.json")
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Cells[0].Snapshot; len(s.Facts) != 2 || s.Facts[0].Path != "module/a" {
		t.Errorf("facts not canonical: %+v", s.Facts)
	}
	for _, tt := range []struct{ in, want string }{
		{doc(`{"kind":"module","path":"module/a","value":"live\nlink x y"}`), "r.json: cell faux/realm: snapshot: malformed snapshot: fact 0: fact module module/a: value holds a line break"},
		{doc(`{"kind":"nope","path":"x"}`), `r.json: cell faux/realm: snapshot: malformed snapshot: fact 0: unknown fact kind "nope"`},
		{doc(``) + "\n" + doc(``), "r.json: not a testbed JSON report: line 2:1: text after the end of the report"},
		{`{"backend":"qemu","cells":[{"cell":"a/b"},{"cell":"a/b"}]}`, "r.json: cell a/b: appears twice"},
		{"{\"backend\":\"qemu\",\n\"cells\":[}", "r.json: not a testbed JSON report: line 2:10: invalid character"},
		{"{\"backend\":\"q\xffemu\",\"cells\":[]}", "r.json: not a testbed JSON report: line 1:14: not valid UTF-8"},
	} {
		if _, err := Decode(strings.NewReader(tt.in), "r.json"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Decode(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

// TestChangesEscaped: what comes from the reports reaches the terminal
// with its control characters escaped.
func TestChangesEscaped(t *testing.T) {
	a := runWith("cca", checks.Pass)
	b := runWith("none\x1b[2J", checks.Fail, "evil\x1b]0;title\x07/realm")
	var out bytes.Buffer
	WriteChanges(&out, a, b)
	if strings.ContainsAny(out.String(), "\x1b\x07") {
		t.Errorf("raw control characters in %q", out.String())
	}
	if !strings.Contains(out.String(), `none\x1b[2J`) {
		t.Errorf("escaped value missing from %q", out.String())
	}
}

func TestDecodeTypePosition(t *testing.T) {
	_, err := Decode(strings.NewReader("{\"backend\": \"qemu\",\n \"cells\": 5}"), "r.json")
	if err == nil || !strings.Contains(err.Error(), "r.json: not a testbed JSON report: line 2:11: json: cannot unmarshal number") {
		t.Errorf("err = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	var b bytes.Buffer
	if err := runWith("cca", checks.Pass, "faux/realm").Write(&b, "json"); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte(`{"backend":"qemu","cells":[{"cell":"a/b","snapshot":{"meta":{},"facts":[{"kind":"link","path":"p","value":"v"}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Decode(bytes.NewReader(data), "r.json")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "r.json") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q does not name the file on one line", err)
			}
			return
		}
		// Whatever decodes is safe to compare: valid, canonical snapshots.
		for _, c := range rep.Cells {
			if c.Snapshot == nil {
				continue
			}
			if err := c.Snapshot.Validate(); err != nil {
				t.Fatalf("cell %s: decoded snapshot fails Validate: %v", c.Name, err)
			}
			again, err := snapshot.Parse(strings.NewReader(c.Snapshot.Text()))
			if err != nil || len(snapshot.Diff(c.Snapshot, again)) != 0 || !slices.Equal(again.Facts, c.Snapshot.Facts) {
				t.Fatalf("cell %s: snapshot not canonical or not re-readable: %v", c.Name, err)
			}
		}
		var out bytes.Buffer
		WriteChanges(&out, rep, rep)
		if err := rep.Write(&out, "text"); err != nil {
			t.Fatal(err)
		}
	})
}
