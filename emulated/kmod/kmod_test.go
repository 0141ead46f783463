package kmod

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// Cases follow fnmatch(3) with flags 0 (glibc), which libkmod calls.
func TestMatch(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"platform:arm-cca-dev", "platform:arm-cca-dev", true},
		{"platform:arm-cca-dev", "platform:arm-cca-devx", false},
		{"auxiliary:arm_cca_host.arm-rmi-dev", "auxiliary:arm_cca_host.arm-rmi-dev", true},
		{"arm_smccc:arm-rmi*", "arm_smccc:arm-rmi", true},
		{"cpu:type:*:feature:*0001*", "cpu:type:aarch64:feature:,0000,0001,0002", true},
		{"cpu:type:*:feature:*0001*", "cpu:type:aarch64:feature:,0000,0002", false},
		{"a*b", "a/x/b", true}, // no FNM_PATHNAME: '*' crosses '/'
		{"a?c", "a/c", true},
		{"[a-c]x", "bx", true},
		{"[!a-c]x", "bx", false},
		{"[^a-c]x", "dx", true},
		{"[]]", "]", true},
		{"[a-]", "-", true},
		{"[abc", "[abc", true}, // unterminated class is literal
		{`\*`, "*", true},
		{`\*`, "x", false},
		{"", "", true},
		{"*", "", true},
		{"?", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.p+"~"+tt.s, func(t *testing.T) {
			if got := Match(tt.p, tt.s); got != tt.want {
				t.Fatalf("Match(%q, %q) = %v, want %v", tt.p, tt.s, got, tt.want)
			}
		})
	}
}

// TestMatchLinear: a pattern of many stars against a long near-miss used
// to take exponential time (each '*' retried every split); modules.alias
// comes from the kernel under test, so a bad alias must not hang a run.
func TestMatchLinear(t *testing.T) {
	p := strings.Repeat("*a", 40) + "*b"
	s := strings.Repeat("a", 200)
	done := make(chan bool, 1)
	start := time.Now()
	go func() { done <- Match(p, s) }()
	select {
	case got := <-done:
		if got {
			t.Fatalf("Match(%q, %q) = true, want false", p, s)
		}
		t.Logf("%d-byte pattern against %d bytes: %v", len(p), len(s), time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatalf("Match of a %d-byte pattern still running after 5 s", len(p))
	}
	if !Match(p, s+"b") {
		t.Errorf("Match(%q, ...b) = false, want true", p)
	}
}

// matchBacktrack is the recursive definition of fnmatch(3) with flags 0
// (the implementation before the linear one), kept as the reference the
// fuzz test compares Match with on short patterns.
func matchBacktrack(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			if p == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if matchBacktrack(p, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			p, s = p[1:], s[1:]
		case '[':
			if s == "" {
				return false
			}
			ok, rest, valid := class(p, s[0])
			if !valid {
				if s[0] != '[' {
					return false
				}
				p, s = p[1:], s[1:]
				continue
			}
			if !ok {
				return false
			}
			p, s = rest, s[1:]
		case '\\':
			if len(p) > 1 {
				p = p[1:]
			}
			fallthrough
		default:
			if s == "" || p[0] != s[0] {
				return false
			}
			p, s = p[1:], s[1:]
		}
	}
	return s == ""
}

func FuzzMatch(f *testing.F) {
	for _, seed := range [][2]string{{"cpu:type:*:feature:*0001*", "cpu:type:aarch64:feature:,0001"}, {"[!a-c]*x\\", "dxx\\"}, {"*[abc*?", "x[abc*?"}, {"a*b*c", "aXbYc"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		if len(p) > 16 || len(s) > 32 || strings.Count(p, "*") > 4 {
			return // the reference is exponential
		}
		if got, want := Match(p, s), matchBacktrack(p, s); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", p, s, got, want)
		}
	})
}

const aliases = `# Aliases extracted from modules themselves.
alias platform:arm-cca-dev cca_guest_tsm
alias auxiliary:arm_cca_guest.arm-rsi-dev cca-guest-tsm
alias cpu:type:*:feature:*0001* cca_faux
`

const deps = `kernel/drivers/virt/coco/cca_testbed/cca_guest_tsm.ko: kernel/drivers/virt/coco/guest/tsm_report.ko
kernel/drivers/virt/coco/guest/tsm_report.ko:
kernel/drivers/virt/coco/cca_testbed/cca_faux.ko: kernel/drivers/virt/coco/guest/tsm_report.ko
`

func TestLookupAndLoad(t *testing.T) {
	al, err := parseAliases(strings.NewReader(aliases))
	if err != nil {
		t.Fatal(err)
	}
	dp, err := parseDeps(strings.NewReader(deps))
	if err != nil {
		t.Fatal(err)
	}
	x := &Index{Aliases: al, Deps: dp}
	tests := []struct {
		modalias string
		want     []string
	}{
		{"platform:arm-cca-dev", []string{"cca_guest_tsm"}},
		{"auxiliary:arm_cca_guest.arm-rsi-dev", []string{"cca_guest_tsm"}},
		{"platform:arm-rmi-dev", nil},
		{"cpu:type:aarch64:feature:,0000,0001", []string{"cca_faux"}},
	}
	for _, tt := range tests {
		if got := x.Lookup(tt.modalias); !slices.Equal(got, tt.want) {
			t.Errorf("Lookup(%q) = %v, want %v", tt.modalias, got, tt.want)
		}
	}
	if got, want := x.Load("cca-guest-tsm"), []string{"tsm_report", "cca_guest_tsm"}; !slices.Equal(got, want) {
		t.Errorf("Load = %v, want %v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	_, err := parseAliases(strings.NewReader("alias a b\n\nalias only-two\n"))
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("err = %v, want ErrFormat at line 3", err)
	}
	_, err = parseDeps(strings.NewReader("a.ko: b.ko\nno colon here\n"))
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want ErrFormat at line 2", err)
	}
}

func FuzzParseAliases(f *testing.F) {
	f.Add(aliases)
	f.Add("alias [ x\nalias a\n")
	f.Fuzz(func(t *testing.T, s string) {
		al, err := parseAliases(strings.NewReader(s))
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("unwrapped error %v", err)
		}
		for _, a := range al {
			Match(a.Pattern, s) // must not panic or hang
		}
	})
}

func FuzzParseDeps(f *testing.F) {
	f.Add(deps)
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDeps(strings.NewReader(s))
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("unwrapped error %v", err)
		}
		x := &Index{Deps: d}
		for m := range d {
			x.Load(m)
		}
	})
}
