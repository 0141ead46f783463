// Package term makes text from outside (snapshot values, report fields,
// file names, guest output quoted in errors) safe to print on a terminal:
// control characters, invisible format characters (bidi overrides,
// zero-width) and invalid UTF-8 are written as escapes, so a value can
// neither move the cursor, retitle the window, hide text nor break a line.
//
// Tests: go test ./internal/term
package term

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with every rune that is not safe on a terminal written
// as \n, \t, \r, \xNN or \uNNNN; printable text (spaces and backslashes
// included) is unchanged, so Escape(Escape(s)) == Escape(s).
func Escape(s string) string {
	if safe(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case unsafe(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafe(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func safe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			return !strings.ContainsFunc(s, unsafe) && utf8.ValidString(s)
		}
	}
	return true
}

// unsafe: C0 and C1 controls, DEL, format characters (Cf: bidi controls,
// zero-width joiners), line and paragraph separators.
func unsafe(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}
