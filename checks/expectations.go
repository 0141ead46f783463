package checks

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"unicode"
)

// DefaultExpectations is the recorded expectation of every cell.
//
//go:embed expectations.txt
var DefaultExpectations string

// ErrExpectations is wrapped by every expectations parse error.
var ErrExpectations = errors.New("malformed expectations")

// Expectation is what one check should measure in the cells a line matches.
type Expectation struct {
	Cells  string // a cell name or a path.Match pattern ("*/plain")
	Check  string
	Value  string
	XFail  bool   // the value is a known breakage the report calls out
	Reason string // why (required with xfail)
	Line   int
}

// Expectations is the parsed file. Later lines override earlier ones, so
// broad patterns come first and specific cells after them.
type Expectations struct {
	lines []Expectation
	// measureRest: a check no line covers is Measured, not Fail (ForSeries).
	measureRest bool
}

// ForSeries returns the expectations that grade the cells of variant, a
// series a user brought: only the lines that name it, without a pattern
// in the variant part ("my-series/realm*" grades, "*/*" does not), since
// the patterns describe the built-in variants. Checks no such line covers
// are Measured.
func (e *Expectations) ForSeries(variant string) *Expectations {
	out := &Expectations{measureRest: true}
	if e == nil {
		return out
	}
	for _, l := range e.lines {
		if v, _, _ := strings.Cut(l.Cells, "/"); v == variant {
			out.lines = append(out.lines, l)
		}
	}
	return out
}

// Lookup finds the expectation of a check for a cell.
func (e *Expectations) Lookup(cell, check string) (Expectation, bool) {
	if e == nil {
		return Expectation{}, false
	}
	for i := len(e.lines) - 1; i >= 0; i-- {
		l := e.lines[i]
		if l.Check != check {
			continue
		}
		if ok, _ := path.Match(l.Cells, cell); ok {
			return l, true
		}
	}
	return Expectation{}, false
}

// ParseExpectations reads the line format:
//
//	# comment
//	CELL-OR-PATTERN  CHECK  VALUE  [xfail: REASON]  [# comment]
//
// A '#' starts a comment wherever it stands, so nothing after it (an
// "xfail:" included) changes what the line says; values and reasons
// cannot hold a '#'. Errors name the line and what is wrong with it.
func ParseExpectations(r io.Reader) (*Expectations, error) {
	var e Expectations
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 3 {
			return nil, fmt.Errorf("%w: line %d: want CELL CHECK VALUE [xfail: REASON], got %d fields", ErrExpectations, n, len(fields))
		}
		x := Expectation{Cells: fields[0], Check: fields[1], Value: fields[2], Line: n}
		if len(fields) > 3 {
			// The reason is the rest of the line as written, inner
			// spacing kept.
			reason, ok := strings.CutPrefix(afterFields(line, 3), "xfail:")
			if !ok {
				return nil, fmt.Errorf("%w: line %d: unexpected %q after the value (want xfail: REASON, or # before a comment)", ErrExpectations, n, fields[3])
			}
			x.XFail, x.Reason = true, strings.TrimSpace(reason)
		}
		if _, err := path.Match(x.Cells, ""); err != nil || !strings.Contains(x.Cells, "/") {
			return nil, fmt.Errorf("%w: line %d: bad cell pattern %q (want variant/role, globs allowed)", ErrExpectations, n, x.Cells)
		}
		if !slices.Contains(Names(), x.Check) {
			return nil, fmt.Errorf("%w: line %d: unknown check %q (known: %s)", ErrExpectations, n, x.Check, strings.Join(Names(), ", "))
		}
		if x.XFail && x.Reason == "" {
			return nil, fmt.Errorf("%w: line %d: xfail needs a reason", ErrExpectations, n)
		}
		e.lines = append(e.lines, x)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrExpectations, n+1, err)
	}
	return &e, nil
}

// afterFields returns s after its first n blank-separated fields, leading
// blanks removed.
func afterFields(s string, n int) string {
	for range n {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
		s = strings.TrimLeftFunc(s, func(r rune) bool { return !unicode.IsSpace(r) })
	}
	return strings.TrimLeftFunc(s, unicode.IsSpace)
}

// Default parses DefaultExpectations; it is checked by a test.
func Default() *Expectations {
	e, err := ParseExpectations(strings.NewReader(DefaultExpectations))
	if err != nil {
		panic(err) // the embedded file is tested; reaching this is a build bug
	}
	return e
}
