// Package kmod models what udev's kmod builtin does with a uevent's
// MODALIAS: look the alias up in modules.alias (shell patterns matched with
// fnmatch(3) semantics, flags 0, as libkmod does) and load every matching
// module together with its dependencies from modules.dep. The emulated
// backend uses it so autoloading there follows the same rules as a real
// guest's udev.
//
// The model builds its Index in Go; parseAliases and parseDeps read the
// files depmod writes, so the tests can feed the index the real formats.
//
// Tests: go test ./emulated/kmod (includes fuzz tests for both parsers).
package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// ErrFormat is wrapped by every parse error.
var ErrFormat = errors.New("malformed modules file")

// Alias is one "alias PATTERN MODULE" line.
type Alias struct {
	Pattern, Module string
}

// Index holds a kernel's modules.alias and modules.dep.
type Index struct {
	Aliases []Alias
	Deps    map[string][]string // module name → direct dependencies (names)
}

// Name turns a module path or file name into kmod's canonical module name:
// base name without ".ko*", dashes as underscores.
func Name(s string) string {
	s = path.Base(s)
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// parseAliases reads modules.alias.
func parseAliases(r io.Reader) ([]Alias, error) {
	var out []Alias
	err := lines(r, "modules.alias", func(n int, l string) error {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "alias" {
			return fmt.Errorf("modules.alias line %d: want \"alias PATTERN MODULE\", got %q: %w", n, l, ErrFormat)
		}
		out = append(out, Alias{Pattern: f[1], Module: Name(f[2])})
		return nil
	})
	return out, err
}

// parseDeps reads modules.dep ("kernel/a.ko: kernel/b.ko kernel/c.ko").
func parseDeps(r io.Reader) (map[string][]string, error) {
	out := map[string][]string{}
	err := lines(r, "modules.dep", func(n int, l string) error {
		mod, deps, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(mod) == "" {
			return fmt.Errorf("modules.dep line %d: want \"MODULE: DEPS...\", got %q: %w", n, l, ErrFormat)
		}
		name := Name(strings.TrimSpace(mod))
		out[name] = nil
		for _, d := range strings.Fields(deps) {
			out[name] = append(out[name], Name(d))
		}
		return nil
	})
	return out, err
}

func lines(r io.Reader, what string, fn func(n int, l string) error) error {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if err := fn(n, l); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	return nil
}

// Lookup returns the modules whose alias pattern matches modalias, in
// modules.alias order, without duplicates.
func (x *Index) Lookup(modalias string) []string {
	var out []string
	for _, a := range x.Aliases {
		if Match(a.Pattern, modalias) && !slices.Contains(out, a.Module) {
			out = append(out, a.Module)
		}
	}
	return out
}

// Load returns what `modprobe` would insert for module, dependencies first.
func (x *Index) Load(module string) []string {
	var out []string
	var visit func(m string, depth int)
	visit = func(m string, depth int) {
		if slices.Contains(out, m) || depth > 64 {
			return
		}
		for _, d := range x.Deps[m] {
			visit(d, depth+1)
		}
		out = append(out, m)
	}
	visit(Name(module), 0)
	return out
}

// Match reports whether s matches the shell pattern p with fnmatch(3)
// semantics and no flags: '*' and '?' match any character including '/',
// "[...]" classes with ranges and '!' or '^' negation, and '\' escaping.
// A malformed class ("[abc") matches a literal '['.
//
// Every other token matches exactly one byte, so only the last '*' seen
// ever needs retrying: when the rest fails, that star takes one more byte
// and matching resumes after it. Earlier stars never need to take more,
// since the last star can absorb anything they would have. This bounds
// the work by len(p)*len(s) instead of the exponential cost of retrying
// every star at every split (modules.alias comes from the kernel under
// test, so a hostile alias must not stall a run).
func Match(p, s string) bool {
	pi, si := 0, 0
	star, starS := -1, 0 // pattern index after the last '*', and where in s it resumed
	for si < len(s) {
		if pi < len(p) {
			if p[pi] == '*' {
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				star, starS = pi, si
				continue
			}
			if next, ok := one(p, pi, s[si]); ok {
				pi, si = next, si+1
				continue
			}
		}
		if star < 0 {
			return false
		}
		starS++
		pi, si = star, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// one matches the single-byte token at p[i] (not '*') against c and
// returns the index after the token.
func one(p string, i int, c byte) (next int, ok bool) {
	switch p[i] {
	case '?':
		return i + 1, true
	case '[':
		matched, rest, valid := class(p[i:], c)
		if !valid { // no closing bracket: a literal '['
			return i + 1, c == '['
		}
		return len(p) - len(rest), matched
	case '\\':
		if i+1 < len(p) {
			i++
		}
	}
	return i + 1, p[i] == c
}

// class matches c against the bracket expression at the start of p and
// returns the pattern after it; valid is false when p has no closing ']'.
func class(p string, c byte) (matched bool, rest string, valid bool) {
	i := 1
	negate := i < len(p) && (p[i] == '!' || p[i] == '^')
	if negate {
		i++
	}
	for first := true; i < len(p); first = false {
		if p[i] == ']' && !first {
			return matched != negate, p[i+1:], true
		}
		lo := p[i]
		if lo == '\\' && i+1 < len(p) {
			i++
			lo = p[i]
		}
		i++
		hi := lo
		if i+1 < len(p) && p[i] == '-' && p[i+1] != ']' {
			hi = p[i+1]
			if hi == '\\' && i+2 < len(p) {
				i++
				hi = p[i+1]
			}
			i += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
	}
	return false, "", false
}
