package snapshot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Text format: a header line, "meta" lines, then one fact per line:
//
//	cca-testbed snapshot 1
//	meta cell faux/realm
//	link class/tsm/tsm0 ../../devices/faux/arm-rmi-dev/tsm/tsm0
//
// Values may contain spaces; kinds and paths may not.
const header = "cca-testbed snapshot"

// WriteText writes the human-readable, diffable form.
func (s *Snapshot) WriteText(w io.Writer) error {
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
	return bw.Flush()
}

// Text returns WriteText's output as a string.
func (s *Snapshot) Text() string {
	var b bytes.Buffer
	_ = s.WriteText(&b) // a bytes.Buffer does not fail
	return b.String()
}

func (m *Meta) pairs() [][2]string {
	return [][2]string{{"cell", m.Cell}, {"backend", m.Backend}, {"conduit", m.Conduit},
		{"userspace", m.Userspace}, {"kernel", m.Kernel}, {"firmware", m.Firmware}}
}

func (m *Meta) set(key, value string) bool {
	switch key {
	case "cell":
		m.Cell = value
	case "backend":
		m.Backend = value
	case "conduit":
		m.Conduit = value
	case "userspace":
		m.Userspace = value
	case "kernel":
		m.Kernel = value
	case "firmware":
		m.Firmware = value
	default:
		return false
	}
	return true
}

// WriteJSON writes the machine-readable form.
func (s *Snapshot) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// Parse reads a snapshot in either form (JSON if it starts with '{').
// Errors name the line (text) or byte offset (JSON) that is wrong.
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

func parseJSON(data []byte) (*Snapshot, error) {
	var s Snapshot
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: json at byte %d: %v", ErrFormat, dec.InputOffset(), err)
	}
	for i, f := range s.Facts {
		if err := checkFact(f); err != nil {
			return nil, fmt.Errorf("%w: json fact %d: %v", ErrFormat, i, err)
		}
	}
	s.normalize()
	return &s, nil
}

func parseText(data []byte) (*Snapshot, error) {
	var s Snapshot
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			v, ok := strings.CutPrefix(line, header+" ")
			if !ok || v != strconv.Itoa(Version) {
				return nil, fmt.Errorf("%w: line 1: want %q, got %q", ErrFormat, fmt.Sprintf("%s %d", header, Version), line)
			}
			continue
		}
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kind, rest, _ := strings.Cut(line, " ")
		p, value, _ := strings.Cut(rest, " ")
		if kind == "meta" {
			if !s.Meta.set(p, value) {
				return nil, fmt.Errorf("%w: line %d: unknown meta key %q", ErrFormat, n, p)
			}
			continue
		}
		f := Fact{Kind: kind, Path: p, Value: value}
		if err := checkFact(f); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrFormat, n, err)
		}
		s.Facts = append(s.Facts, f)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrFormat, n+1, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrFormat)
	}
	s.normalize()
	return &s, nil
}
