package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// ErrConfig is wrapped when a fragment cannot be read or the configured
// kernel does not have what the fragments asked for.
var ErrConfig = errors.New("kernel config")

// Fragment is a set of Kconfig assignments: symbol (with its CONFIG_
// prefix) to value as written in .config ("y", "m", "n" for "is not set",
// a number or a quoted string).
type Fragment map[string]string

var (
	setLine   = regexp.MustCompile(`^(CONFIG_[A-Za-z0-9_]+)=(.*)$`)
	unsetLine = regexp.MustCompile(`^# (CONFIG_[A-Za-z0-9_]+) is not set$`)
)

// ParseFragment reads a .config-style fragment. Blank lines and comments
// are skipped, except "# CONFIG_X is not set", which means X=n. A symbol
// set twice takes its last value, as in Kconfig. name is for errors.
func ParseFragment(name string, data []byte) (Fragment, error) {
	f := Fragment{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if m := unsetLine.FindStringSubmatch(line); m != nil {
			f[m[1]] = "n"
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := setLine.FindStringSubmatch(line)
		if m == nil || m[2] == "" {
			return nil, fmt.Errorf("%w: %s:%d: %q is not CONFIG_X=value or \"# CONFIG_X is not set\"", ErrConfig, name, n, line)
		}
		f[m[1]] = m[2]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, name, err)
	}
	return f, nil
}

// Merge returns the fragments applied in order: a later value wins, like
// scripts/kconfig/merge_config.sh.
func Merge(frags ...Fragment) Fragment {
	out := Fragment{}
	for _, f := range frags {
		for k, v := range f {
			out[k] = v
		}
	}
	return out
}

// Bytes renders the fragment sorted by symbol, in .config syntax, for
// KCONFIG_ALLCONFIG.
func (f Fragment) Bytes() []byte {
	var b bytes.Buffer
	for _, k := range f.symbols() {
		if f[k] == "n" {
			fmt.Fprintf(&b, "# %s is not set\n", k)
		} else {
			fmt.Fprintf(&b, "%s=%s\n", k, f[k])
		}
	}
	return b.Bytes()
}

func (f Fragment) symbols() []string {
	ks := make([]string, 0, len(f))
	for k := range f {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Check compares a complete .config (as written by make) with what want
// asked for and lists every symbol that did not get its value, e.g. one
// whose dependencies are off or that no longer exists in this kernel. An
// absent symbol counts as "n".
func Check(want Fragment, dotConfig []byte) error {
	got, err := ParseFragment(".config", dotConfig)
	if err != nil {
		return err
	}
	var bad []string
	for _, k := range want.symbols() {
		g, ok := got[k]
		if !ok {
			g = "n"
		}
		if g != want[k] {
			bad = append(bad, fmt.Sprintf("%s asked %s, got %s", k, want[k], g))
		}
	}
	if bad != nil {
		return fmt.Errorf("%w: %d option(s) did not take (fix the fragment or the option's dependencies): %s",
			ErrConfig, len(bad), strings.Join(bad, "; "))
	}
	return nil
}
