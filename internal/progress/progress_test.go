package progress

import (
	"bytes"
	"regexp"
	"testing"
)

func TestLinesWhenNotATerminal(t *testing.T) {
	var b bytes.Buffer
	p := New(&b) // a buffer is never a terminal
	p.Phase("faux/realm", "boot")
	p.Phase("faux/realm", "ssh")
	p.Done()
	re := regexp.MustCompile(`^(progress subject=faux/realm phase="(boot|ssh)" elapsed=\S+\n){2}$`)
	if !re.Match(b.Bytes()) {
		t.Fatalf("output %q is not two logfmt lines", b.String())
	}
	var nilWriter *Writer
	nilWriter.Phase("x", "y") // a nil Writer is a no-op, so callers need no checks
	nilWriter.Done()
}
