package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"cca-testbed/internal/input"
	"cca-testbed/snapshot"
)

// ErrNotReport is wrapped when a file is not a report written by Write(json).
var ErrNotReport = errors.New("not a testbed JSON report")

// Read loads a report written in the json format: a report.json file, or a
// results directory holding one.
func Read(name string) (*Report, error) {
	if st, err := os.Stat(name); err == nil && st.IsDir() {
		name = filepath.Join(name, "report.json")
	}
	b, err := input.ReadFile(name, "report", input.MaxReport)
	if err != nil {
		return nil, err
	}
	return Decode(bytes.NewReader(b), name)
}

// Decode reads a JSON report from r; name is used in errors.
func Decode(r io.Reader, name string) (*Report, error) {
	var rep Report
	dec := json.NewDecoder(r)
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrNotReport, err)
	}
	if rep.Backend == "" || rep.Cells == nil {
		return nil, fmt.Errorf("%s: %w: no backend or cells", name, ErrNotReport)
	}
	return &rep, nil
}

// WriteChanges writes what changed from report a to report b, cell by
// cell: check results whose status or measured value moved, cells that
// appeared or vanished, and the snapshot facts behind them. It returns how
// many changes it wrote; 0 means the two runs agree.
func WriteChanges(w io.Writer, a, b *Report) int {
	n := 0
	line := func(format string, args ...any) {
		n++
		fmt.Fprintf(w, format+"\n", args...)
	}
	old := map[string]int{}
	for i, c := range a.Cells {
		old[c.Name] = i
	}
	seen := map[string]bool{}
	for _, nc := range b.Cells {
		seen[nc.Name] = true
		i, ok := old[nc.Name]
		if !ok {
			line("+ cell %s", nc.Name)
			continue
		}
		oc := a.Cells[i]
		if oc.Err != nc.Err {
			line("~ %s error: %q => %q", nc.Name, oc.Err, nc.Err)
		}
		prev := map[string]string{}
		for _, r := range oc.Results {
			prev[r.Check] = string(r.Status) + " " + r.Measured
		}
		for _, r := range nc.Results {
			now := string(r.Status) + " " + r.Measured
			if p, ok := prev[r.Check]; ok && p != now {
				line("~ %s %s: %s => %s", nc.Name, r.Check, p, now)
			}
		}
		if oc.Snapshot != nil && nc.Snapshot != nil {
			for _, ch := range snapshot.Diff(oc.Snapshot, nc.Snapshot) {
				line("  %s %s", nc.Name, ch)
			}
		}
	}
	for _, oc := range a.Cells {
		if !seen[oc.Name] {
			line("- cell %s", oc.Name)
		}
	}
	return n
}
