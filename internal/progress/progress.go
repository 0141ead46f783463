// Package progress tells a person what long work is doing: on a terminal
// one line that rewrites itself with the phase and elapsed time; elsewhere
// (CI, pipes) one quiet logfmt line per phase change, easy to grep.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Writer reports phases. The zero value is not usable; call New.
type Writer struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	start time.Time
	width int
}

// New writes to w; it draws a live line only when w is a terminal and CI is
// not set.
func New(w io.Writer) *Writer {
	tty := false
	if f, ok := w.(*os.File); ok && os.Getenv("CI") == "" {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &Writer{w: w, tty: tty, start: time.Now()}
}

// Phase records that subject entered phase.
func (p *Writer) Phase(subject, phase string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.start).Round(100 * time.Millisecond)
	if !p.tty {
		fmt.Fprintf(p.w, "progress subject=%s phase=%q elapsed=%s\n", subject, phase, el)
		return
	}
	line := fmt.Sprintf("[%7s] %s: %s", el, subject, phase)
	pad := max(p.width-len(line), 0)
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
}

// Done ends the live line so the next output starts on a fresh one.
func (p *Writer) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.width > 0 {
		fmt.Fprintln(p.w)
		p.width = 0
	}
}
