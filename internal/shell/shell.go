// Package shell quotes words for a POSIX shell: the one quoter behind the
// guest's command lines (sshd hands them to the login shell), QEMU's
// cmdline.txt and reproduce.sh, and the rootfs recipe.
//
// Tests: go test ./internal/shell (they run the quoted lines through a
// real /bin/sh, and bash where it is installed).
package shell

import (
	"strings"
)

// Join renders args as one command line in which every argument reaches
// the program unchanged: plain words stay as they are, everything else is
// single-quoted, an embedded single quote closing the quotes, adding an
// escaped quote and reopening them:
//
//	Join("cat", "--", "it's")  →  cat -- 'it'\''s'
//
// The first word is also quoted when the shell would read it as something
// other than a command name: a reserved word (if, !, {, [[ ...), a job spec
// (%1) or an assignment (A=b). (bash reads a leading % as a job spec even
// quoted; without job control, as under bash -c, that fails and runs
// nothing.) An empty argument becomes a pair of single quotes. NUL cannot
// be carried by any shell; callers must refuse it first.
func Join(args ...string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
			b.WriteString(Word(a))
			continue
		}
		b.WriteString(first(a))
	}
	return b.String()
}

// Word quotes one argument that does not stand first on a command line
// (there '=' is plain: only a leading NAME=value word is an assignment).
func Word(s string) string {
	if s != "" && strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	return quote(s)
}

// first quotes the command word: a reserved word, job spec or assignment
// is never left bare.
func first(s string) string {
	if reserved[s] || strings.HasPrefix(s, "%") || strings.Contains(s, "=") {
		return quote(s)
	}
	return Word(s)
}

func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// reserved are the words POSIX sh and bash read as syntax in command
// position; a quoted one is a plain command name. The punctuation ones
// are quoted by Word anyway; they are listed so the set is whole.
var reserved = map[string]bool{
	"!": true, "{": true, "}": true, "[[": true, "]]": true,
	"case": true, "do": true, "done": true, "elif": true, "else": true, "esac": true,
	"fi": true, "for": true, "if": true, "in": true, "then": true, "until": true, "while": true,
	"function": true, "select": true, "time": true, "coproc": true,
}

// unsafeRune reports whether r needs quoting. The safe set is deliberately
// small: no '~' (tilde expansion), no glob or shell metacharacters, nothing
// outside ASCII.
func unsafeRune(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("_-./:,+@%=", r)
}
