package snapshot

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"cca-testbed/internal/term"
)

// Change is one difference between two snapshots: facts about one
// kind+path that only A has (Removed), only B has (Added), or both have
// with other values.
type Change struct {
	Kind, Path string
	A, B       []string // values on each side; empty means the fact is absent there
}

// String is one line for a terminal: control characters from the
// snapshots are escaped (term.Escape).
func (c Change) String() string { return term.Escape(c.raw()) }

func (c Change) raw() string {
	one := func(sign string, vals []string) string {
		s := sign + " " + c.Kind + " " + c.Path
		if v := strings.Join(vals, " | "); v != "" {
			s += " " + v
		}
		return s
	}
	switch {
	case len(c.A) == 0:
		return one("+", c.B)
	case len(c.B) == 0:
		return one("-", c.A)
	default:
		return fmt.Sprintf("~ %s %s: %s => %s", c.Kind, c.Path, strings.Join(c.A, " | "), strings.Join(c.B, " | "))
	}
}

type key struct{ kind, path string }

func group(s *Snapshot) (map[key][]string, []key) {
	m := map[key][]string{}
	var order []key
	for _, f := range s.Facts {
		k := key{f.Kind, f.Path}
		if _, ok := m[k]; !ok {
			order = append(order, k)
		}
		m[k] = append(m[k], f.Value)
	}
	return m, order
}

// Diff compares the facts of a and b (Meta is ignored) in path order.
func Diff(a, b *Snapshot) []Change {
	ma, oa := group(a)
	mb, ob := group(b)
	keys := append(oa, ob...)
	slices.SortFunc(keys, func(x, y key) int {
		return compareFacts(Fact{Kind: x.kind, Path: x.path}, Fact{Kind: y.kind, Path: y.path})
	})
	keys = slices.Compact(keys)
	var out []Change
	for _, k := range keys {
		va, vb := ma[k], mb[k]
		if !slices.Equal(va, vb) {
			out = append(out, Change{Kind: k.kind, Path: k.path, A: va, B: vb})
		}
	}
	return out
}

// WriteDiff prints changes one per line under a header naming both sides.
func WriteDiff(w io.Writer, nameA, nameB string, changes []Change) error {
	if _, err := fmt.Fprintf(w, "--- %s\n+++ %s\n", term.Escape(nameA), term.Escape(nameB)); err != nil {
		return err
	}
	if len(changes) == 0 {
		_, err := fmt.Fprintln(w, "(no differences)")
		return err
	}
	for _, c := range changes {
		if _, err := fmt.Fprintln(w, c); err != nil {
			return err
		}
	}
	return nil
}
