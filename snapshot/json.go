package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"cca-testbed/internal/input"
)

var position = input.Position

// parseJSON reads exactly one JSON snapshot document. It walks the tokens
// itself rather than calling Unmarshal so that every error, including an
// unknown or repeated key and a value of the wrong type, names the line
// and column where it is, and so that invalid UTF-8 is refused (Unmarshal
// would quietly turn it into U+FFFD, and the JSON and text forms of one
// input would then disagree).
func parseJSON(data []byte) (*Snapshot, error) {
	if i := input.InvalidUTF8(data); i >= 0 {
		return nil, fmt.Errorf("%w: json %s: not valid UTF-8", ErrFormat, position(data, i))
	}
	p := &jsonParser{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	s, err := p.snapshot()
	if err != nil {
		return nil, err
	}
	// Exactly one document: only white space may follow it.
	off := p.dec.InputOffset()
	if _, err := p.dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: json %s: text after the end of the snapshot (two documents in one file?)", ErrFormat, position(data, p.start(off)))
	}
	s.normalize()
	return s, nil
}

type jsonParser struct {
	data []byte
	dec  *json.Decoder
}

// start skips the white space and separators between the previous token's
// end (off) and the next token.
func (p *jsonParser) start(off int64) int64 {
	for off < int64(len(p.data)) {
		switch p.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
			continue
		}
		break
	}
	return off
}

// token returns the next token and where it starts.
func (p *jsonParser) token() (json.Token, int64, error) {
	at := p.start(p.dec.InputOffset())
	t, err := p.dec.Token()
	if err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return nil, at, fmt.Errorf("%w: json %s: %v", ErrFormat, position(p.data, se.Offset), err)
		case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
			return nil, at, fmt.Errorf("%w: json %s: unexpected end of input: the snapshot is cut off", ErrFormat, position(p.data, int64(len(p.data))))
		}
		return nil, at, fmt.Errorf("%w: json %s: %v", ErrFormat, position(p.data, at), err)
	}
	return t, at, nil
}

func (p *jsonParser) errorf(at int64, format string, a ...any) error {
	return fmt.Errorf("%w: json %s: %s", ErrFormat, position(p.data, at), fmt.Sprintf(format, a...))
}

func (p *jsonParser) delim(want json.Delim, what string) error {
	t, at, err := p.token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return p.errorf(at, "%s: want %q, got %s", what, want, describe(t))
	}
	return nil
}

func (p *jsonParser) str(what string) (string, int64, error) {
	t, at, err := p.token()
	if err != nil {
		return "", at, err
	}
	s, ok := t.(string)
	if !ok {
		return "", at, p.errorf(at, "%s: want a string, got %s", what, describe(t))
	}
	return s, at, nil
}

// object calls field for each key of the object that comes next, refusing
// repeated keys.
func (p *jsonParser) object(what string, field func(key string, at int64) error) error {
	if err := p.delim('{', what); err != nil {
		return err
	}
	seen := map[string]bool{}
	for p.dec.More() {
		key, at, err := p.str(what + " key")
		if err != nil {
			return err
		}
		if seen[key] {
			return p.errorf(at, "%s: key %q given twice", what, key)
		}
		seen[key] = true
		if err := field(key, at); err != nil {
			return err
		}
	}
	return p.delim('}', what)
}

func (p *jsonParser) snapshot() (*Snapshot, error) {
	var s Snapshot
	err := p.object("snapshot", func(key string, at int64) error {
		switch key {
		case "meta":
			return p.object("meta", func(key string, at int64) error {
				f := s.Meta.field(key)
				if f == nil {
					return p.errorf(at, "unknown meta key %q", key)
				}
				v, at, err := p.str("meta " + key)
				if err != nil {
					return err
				}
				if err := checkValue(v); err != nil {
					return p.errorf(at, "meta %s: %v", key, err)
				}
				*f = v
				return nil
			})
		case "facts":
			t, at, err := p.token()
			if err != nil {
				return err
			}
			if t == nil { // null: no facts, as WriteJSON writes an empty snapshot
				return nil
			}
			if d, ok := t.(json.Delim); !ok || d != '[' {
				return p.errorf(at, "facts: want a list, got %s", describe(t))
			}
			for p.dec.More() {
				f, err := p.fact(len(s.Facts))
				if err != nil {
					return err
				}
				s.Facts = append(s.Facts, f)
			}
			return p.delim(']', "facts")
		}
		return p.errorf(at, "unknown key %q (want meta, facts)", key)
	})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

func (p *jsonParser) fact(i int) (Fact, error) {
	var f Fact
	what := fmt.Sprintf("fact %d", i)
	at := p.start(p.dec.InputOffset())
	err := p.object(what, func(key string, kat int64) error {
		var dst *string
		switch key {
		case "kind":
			dst = &f.Kind
		case "path":
			dst = &f.Path
		case "value":
			dst = &f.Value
		default:
			return p.errorf(kat, "%s: unknown key %q (want kind, path, value)", what, key)
		}
		v, _, err := p.str(what + " " + key)
		*dst = v
		return err
	})
	if err != nil {
		return f, err
	}
	if err := checkFact(f); err != nil {
		return f, p.errorf(at, "%s: %v", what, err)
	}
	return f, nil
}

func describe(t json.Token) string {
	switch v := t.(type) {
	case nil:
		return "null"
	case json.Delim:
		return fmt.Sprintf("%q", string(v))
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "a number"
}
