package shell

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

var hostile = []string{
	"", " ", "plain", "two words", "'", "''", `"`, `\`, `\'`, "$(touch /tmp/pwned)", "`id`",
	"$HOME", "${x:-y}", "a\nb", "\n", "\t", "-n", "--", "-e", "*", "?", "[a]", "~", "~root",
	"a=b", "FOO=bar", "#comment", ";", "&&", "|", ">", "<", "!", "\x01\x7f", "\xff\xfe", "日本語",
	"it's", "'$(x)'", "%s", "%%", "\\n",
}

func TestJoin(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"cat", "--", "/sys/class/tsm"}, "cat -- /sys/class/tsm"},
		{[]string{""}, "''"},
		{[]string{"it's"}, `'it'\''s'`},
		{[]string{"a b", "$x"}, `'a b' '$x'`},
		{[]string{"FOO=bar"}, `'FOO=bar'`},
		{[]string{"env", "FOO=bar", "--timeout=60"}, `env FOO=bar --timeout=60`},
		{[]string{"if", "true"}, `'if' true`},
		{[]string{"%1"}, `'%1'`},
		{[]string{"{", "}"}, `'{' '}'`},
		{[]string{"[[", "-e", "x", "]]"}, `'[[' -e x ']]'`},
		{[]string{"iffy", "fi"}, `iffy fi`},
		{[]string{"qemu", "-m", "1024"}, "qemu -m 1024"},
		{[]string{"-append", "console=ttyAMA0 panic=-1"}, "-append 'console=ttyAMA0 panic=-1'"},
		{[]string{"it's", ""}, `'it'\''s' ''`},
		{[]string{"$HOME", "a;b"}, `'$HOME' 'a;b'`},
		{nil, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, ","), func(t *testing.T) {
			if got := Join(tt.args...); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// shEcho runs the quoted args through a real /bin/sh and returns what
// printf received, one argument per NUL-terminated field.
func shEcho(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "printf '%s\\0' "+Join(args...))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("sh -c %q: %v: %s", Join(args...), err, errb.String())
	}
	return out.String()
}

func TestQuoteShell(t *testing.T) {
	for _, s := range hostile {
		t.Run(s, func(t *testing.T) {
			if got := shEcho(t, s); got != s+"\x00" {
				t.Fatalf("sh turned %q into %q", s, got)
			}
		})
	}
	t.Run("all at once", func(t *testing.T) {
		want := strings.Join(hostile, "\x00") + "\x00"
		if got := shEcho(t, hostile...); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

func FuzzJoin(f *testing.F) {
	for _, s := range hostile {
		f.Add(s, "x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if strings.IndexByte(a, 0) >= 0 || strings.IndexByte(b, 0) >= 0 {
			t.Skip("no shell carries NUL")
		}
		if got, want := shEcho(t, a, b), a+"\x00"+b+"\x00"; got != want {
			t.Fatalf("sh turned %q into %q", []string{a, b}, got)
		}
	})
}

// TestFirstWordIsACommand: whatever the first word is, the shell looks it
// up as a command (exit 127, not found) instead of reading it as syntax, a
// job to resume or an assignment. Under both sh and bash (a guest's login
// shell may be either).
func TestFirstWordIsACommand(t *testing.T) {
	shells := []string{"/bin/sh"}
	if p, err := exec.LookPath("bash"); err == nil {
		shells = append(shells, p)
	}
	words := []string{"%1", "%%", "%+", "A=b", "PATH=/x"}
	for w := range reserved {
		words = append(words, w)
	}
	for _, sh := range shells {
		for _, w := range words {
			t.Run(sh+" "+w, func(t *testing.T) {
				line := Join(w)
				var errb bytes.Buffer
				cmd := exec.Command(sh, "-c", line)
				cmd.Env = []string{"PATH=/nonexistent"} // every lookup fails: 127
				cmd.Stderr = &errb
				err := cmd.Run()
				var ee *exec.ExitError
				if strings.HasPrefix(w, "%") && strings.HasSuffix(sh, "bash") && strings.Contains(errb.String(), "no job control") {
					return // bash reads a leading % as a job spec even quoted; bash -c has no jobs, so it fails
				}
				if !errors.As(err, &ee) || ee.ExitCode() != 127 {
					t.Errorf("%s -c %s: %v (%s), want exit 127: %q looked up as a command", sh, line, err, strings.TrimSpace(errb.String()), w)
				}
			})
		}
	}
}

func TestWordKeepsEquals(t *testing.T) {
	for in, want := range map[string]string{"--timeout=60": "--timeout=60", "if": "if", "%1": "%1", "a b": "'a b'", "": "''", "~": "'~'"} {
		if got := Word(in); got != want {
			t.Errorf("Word(%q) = %s, want %s", in, got, want)
		}
	}
}
