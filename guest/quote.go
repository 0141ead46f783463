package guest

import "strings"

// Quote renders args as one POSIX shell command line in which every
// argument reaches the program unchanged: plain words stay as they are,
// everything else is single-quoted, an embedded single quote closing the
// quotes, adding an escaped quote and reopening them:
//
//	Quote("cat", "--", "it's")  →  cat -- 'it'\''s'
//
// An empty argument becomes a pair of single quotes. NUL cannot be
// carried by any shell; callers must refuse it first (Run does).
//
// sshd hands the line to the login shell, so this is what keeps a path or
// a user string from being read as shell syntax.
func Quote(args ...string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.IndexFunc(a, unsafeRune) < 0 {
			b.WriteString(a)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}

// unsafeRune reports whether r needs quoting. The safe set is deliberately
// small: no '=' (a leading NAME=value word is an assignment), no '~'
// (tilde expansion), no glob or shell metacharacters.
func unsafeRune(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("_-./:,+@%", r)
}
