package term

import (
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text, with spaces and a \\ backslash", "plain text, with spaces and a \\ backslash"},
		{"café ✅", "café ✅"},
		{"clear\x1b[2J", `clear\x1b[2J`},
		{"title\x1b]0;pwned\x07", `title\x1b]0;pwned\x07`},
		{"two\nlines\r\tx", `two\nlines\r\tx`},
		{"del\x7f c1\u009b", `del\x7f c1\x9b`},
		{"bidi\u202eevil", `bidi\u202eevil`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"sep\u2028x", `sep\u2028x`},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzEscape(f *testing.F) {
	f.Add("clear\x1b[2J\n\u202e\xff")
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if !utf8.ValidString(e) {
			t.Fatalf("Escape(%q) = %q: invalid UTF-8", s, e)
		}
		for _, r := range e {
			if unsafe(r) {
				t.Fatalf("Escape(%q) = %q keeps %U", s, e, r)
			}
		}
		if Escape(e) != e {
			t.Fatalf("Escape not idempotent on %q", s)
		}
	})
}
