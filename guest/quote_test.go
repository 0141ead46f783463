package guest

import (
	"bytes"
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

func TestQuote(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"cat", "--", "/sys/class/tsm"}, "cat -- /sys/class/tsm"},
		{[]string{""}, "''"},
		{[]string{"it's"}, `'it'\''s'`},
		{[]string{"a b", "$x"}, `'a b' '$x'`},
		{[]string{"FOO=bar"}, `'FOO=bar'`},
		{nil, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, ","), func(t *testing.T) {
			if got := Quote(tt.args...); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// shEcho runs the quoted args through a real /bin/sh and returns what
// printf received, one argument per NUL-terminated field.
func shEcho(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "printf '%s\\0' "+Quote(args...))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("sh -c %q: %v: %s", Quote(args...), err, errb.String())
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

func FuzzQuote(f *testing.F) {
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
