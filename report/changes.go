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
	"cca-testbed/internal/term"
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

// Decode reads one JSON report from r (at most input.MaxReport bytes);
// name is used in errors, which give the line:column of what is wrong.
// Every cell's snapshot is validated and put in canonical order, as
// snapshot.Parse leaves one, so what compares them can trust them.
func Decode(r io.Reader, name string) (*Report, error) {
	data, err := io.ReadAll(io.LimitReader(r, input.MaxReport+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > input.MaxReport {
		return nil, fmt.Errorf("%s: %w: over the limit of %s", name, input.ErrTooLarge, input.Size(input.MaxReport))
	}
	bad := func(off int64, format string, a ...any) error {
		return fmt.Errorf("%s: %w: %s: %s", name, ErrNotReport, input.Position(data, off), fmt.Sprintf(format, a...))
	}
	// encoding/json would turn invalid UTF-8 into U+FFFD unseen.
	if i := input.InvalidUTF8(data); i >= 0 {
		return nil, bad(i, "not valid UTF-8")
	}
	var rep Report
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&rep); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		// Both offsets count the bytes read up to and including the
		// culprit (the bad character; a value's last byte, or a
		// list's or object's first): point at it.
		switch {
		case errors.As(err, &se):
			return nil, bad(se.Offset-1, "%v", err)
		case errors.As(err, &te):
			return nil, bad(te.Offset-1, "%v", err)
		case errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF:
			return nil, bad(int64(len(data)), "unexpected end of input: the report is cut off")
		}
		return nil, fmt.Errorf("%s: %w: %v", name, ErrNotReport, err)
	}
	if off := dec.InputOffset(); len(bytes.TrimSpace(data[off:])) > 0 {
		return nil, bad(off+int64(len(data[off:])-len(bytes.TrimLeft(data[off:], " \t\r\n"))), "text after the end of the report (two reports in one file?)")
	}
	if rep.Backend == "" || rep.Cells == nil {
		return nil, fmt.Errorf("%s: %w: no backend or cells", name, ErrNotReport)
	}
	seen := map[string]bool{}
	for _, c := range rep.Cells {
		if seen[c.Name] {
			return nil, fmt.Errorf("%s: cell %s: appears twice", name, c.Name)
		}
		seen[c.Name] = true
		if c.Snapshot == nil {
			continue
		}
		if err := c.Snapshot.Canonical(); err != nil {
			return nil, fmt.Errorf("%s: cell %s: snapshot: %w", name, c.Name, err)
		}
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
		fmt.Fprintln(w, term.Escape(fmt.Sprintf(format, args...)))
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
