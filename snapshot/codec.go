package snapshot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Text format: a header line, "meta" lines, one fact per line, and an end
// line:
//
//	cca-testbed snapshot 2
//	meta cell faux/realm
//	link class/tsm/tsm0 ../../devices/faux/arm-rmi-dev/tsm/tsm0
//	end
//
// Values may contain spaces; kinds and paths may not. The end line is what
// tells a whole snapshot from one cut off at a line boundary, and nothing
// may follow it, so two snapshots pasted together are refused too. Version
// 1 had no end line and is not read: nothing could tell a cut-off version 1
// file from a whole one.
const (
	header  = "cca-testbed snapshot"
	endLine = "end"
)

// WriteText writes the human-readable, diffable form, or nothing and an
// error when s fails Validate (a line break in a value would make the text
// say something else).
func (s *Snapshot) WriteText(w io.Writer) error {
	if err := s.Validate(); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s %d\n", header, Version)
	for _, kv := range s.Meta.pairs() {
		if kv[1] != "" {
			fmt.Fprintf(bw, "meta %s %s\n", kv[0], kv[1])
		}
	}
	for _, f := range s.Facts {
		fmt.Fprintln(bw, f.String())
	}
	fmt.Fprintln(bw, endLine)
	return bw.Flush()
}

// Text returns WriteText's output as a string; for a snapshot that fails
// Validate, a comment line saying why, which Parse refuses.
func (s *Snapshot) Text() string {
	var b bytes.Buffer
	if err := s.WriteText(&b); err != nil { // a bytes.Buffer does not fail
		return "# " + strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(err.Error()) + "\n"
	}
	return b.String()
}

func (m *Meta) pairs() [][2]string {
	return [][2]string{{"cell", m.Cell}, {"backend", m.Backend}, {"conduit", m.Conduit},
		{"userspace", m.Userspace}, {"kernel", m.Kernel}, {"firmware", m.Firmware},
		{"real_firmware", m.RealFirmware}, {"rmm_version", m.RMMVersion}}
}

func (m *Meta) field(key string) *string {
	switch key {
	case "cell":
		return &m.Cell
	case "backend":
		return &m.Backend
	case "conduit":
		return &m.Conduit
	case "userspace":
		return &m.Userspace
	case "kernel":
		return &m.Kernel
	case "firmware":
		return &m.Firmware
	case "real_firmware":
		return &m.RealFirmware
	case "rmm_version":
		return &m.RMMVersion
	}
	return nil
}

// WriteJSON writes the machine-readable form, or nothing and an error
// when s fails Validate.
func (s *Snapshot) WriteJSON(w io.Writer) error {
	if err := s.Validate(); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// Parse reads one snapshot in either form (JSON if it starts with '{').
// Errors name the line (text) or line:column (JSON) that is wrong. Both
// forms hold their values to the same rules (Validate), so a snapshot
// read from one form always writes the same to the other.
func Parse(r io.Reader) (*Snapshot, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		return parseJSON(data)
	}
	return parseText(data)
}

// Validate checks what both forms require of a snapshot's values: known
// kinds, paths without blanks, no line breaks in values or meta, valid
// UTF-8 everywhere. Snapshots from elsewhere (report.json) go through it
// before use.
func (s *Snapshot) Validate() error {
	if err := checkMeta(s.Meta); err != nil {
		return fmt.Errorf("%w: %v", ErrFormat, err)
	}
	for i, f := range s.Facts {
		if err := checkFact(f); err != nil {
			return fmt.Errorf("%w: fact %d: %v", ErrFormat, i, err)
		}
	}
	return nil
}

// Canonical validates s and puts its facts in canonical order without
// duplicates, as Parse and Add leave them.
func (s *Snapshot) Canonical() error {
	if err := s.Validate(); err != nil {
		return err
	}
	s.normalize()
	return nil
}

func checkMeta(m Meta) error {
	for _, kv := range m.pairs() {
		if err := checkValue(kv[1]); err != nil {
			return fmt.Errorf("meta %s: %v", kv[0], err)
		}
	}
	return nil
}

func checkValue(v string) error {
	switch {
	case strings.ContainsAny(v, "\r\n"):
		return errors.New("value holds a line break")
	case !utf8.ValidString(v):
		return errors.New("value is not valid UTF-8")
	}
	return nil
}

func parseText(data []byte) (*Snapshot, error) {
	var s Snapshot
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrFormat)
	}
	seen := map[string]bool{}
	ended := false
	n := 0
	for len(data) > 0 {
		n++
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		if !utf8.Valid(line) {
			return nil, fmt.Errorf("%w: line %d: not valid UTF-8", ErrFormat, n)
		}
		text := strings.TrimSuffix(string(line), "\r")
		if strings.Contains(text, "\r") {
			return nil, fmt.Errorf("%w: line %d: holds a carriage return", ErrFormat, n)
		}
		if ended {
			return nil, fmt.Errorf("%w: line %d: text after the end line (two snapshots in one file?)", ErrFormat, n)
		}
		if n == 1 {
			v, ok := strings.CutPrefix(text, header+" ")
			if !ok || v != strconv.Itoa(Version) {
				return nil, fmt.Errorf("%w: line 1: want %q, got %q%s", ErrFormat, fmt.Sprintf("%s %d", header, Version), text, oldVersion(v))
			}
			continue
		}
		if text == endLine {
			ended = true
			continue
		}
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		kind, rest, _ := strings.Cut(text, " ")
		p, value, _ := strings.Cut(rest, " ")
		if kind == "meta" {
			field := s.Meta.field(p)
			if field == nil {
				return nil, fmt.Errorf("%w: line %d: unknown meta key %q", ErrFormat, n, p)
			}
			if seen[p] {
				return nil, fmt.Errorf("%w: line %d: meta %s given twice", ErrFormat, n, p)
			}
			seen[p] = true
			*field = value
			continue
		}
		f := Fact{Kind: kind, Path: p, Value: value}
		if err := checkFact(f); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrFormat, n, err)
		}
		s.Facts = append(s.Facts, f)
	}
	if !ended {
		return nil, fmt.Errorf("%w: line %d: no %q line: the snapshot is cut off", ErrFormat, n+1, endLine)
	}
	s.normalize()
	return &s, nil
}

func oldVersion(v string) string {
	if v == "1" {
		return " (version 1 had no end line, so a cut-off file cannot be told from a whole one: take the snapshot again, or read it from report.json)"
	}
	return ""
}
