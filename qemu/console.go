package qemu

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Pattern is a console line that ends a boot.
type Pattern struct {
	Reason string
	Re     *regexp.Regexp
}

// DefaultPatterns are the kernel's own words for "this boot is dead". The
// anchors keep userspace chatter on the console (systemd status lines)
// from matching by accident.
var DefaultPatterns = []Pattern{
	{"kernel panic", regexp.MustCompile(`Kernel panic - not syncing`)},
	{"kernel oops", regexp.MustCompile(`Internal error: Oops`)},
	{"kernel oops", regexp.MustCompile(`Unable to handle kernel `)},
	{"soft lockup", regexp.MustCompile(`watchdog: BUG: soft lockup`)},
	{"kernel BUG", regexp.MustCompile(`(^|\s)BUG: `)},
	{"RCU stall", regexp.MustCompile(`rcu: INFO: rcu_\S+ (self-)?detected stalls?`)},
	{"hung task", regexp.MustCompile(`INFO: task \S+ blocked for more than \d+ seconds`)},
	// The realm firmware's last word before it powers the VM off.
	{"realm firmware fault", regexp.MustCompile(`^realmfw: fatal: `)},
}

// Stage is a step of the boot that announces itself on the console: the
// firmware's (TF-A's BL1, BL2, BL31, then TF-RMM) and the kernel's.
type Stage struct {
	Name string
	Re   *regexp.Regexp
}

// Stages are the announcements the Watcher follows, in boot order. TF-A
// prefixes its log lines with the level ("NOTICE:  BL1: v2.15.0(release)..."),
// TF-RMM says "Booting RMM v.0.9.0(release)..." and Linux "Booting Linux on
// physical CPU".
var Stages = []Stage{
	{"BL1", regexp.MustCompile(`^(NOTICE|INFO|WARNING|ERROR|VERBOSE):\s+BL1: `)},
	{"BL2", regexp.MustCompile(`^(NOTICE|INFO|WARNING|ERROR|VERBOSE):\s+BL2: `)},
	{"BL31", regexp.MustCompile(`^(NOTICE|INFO|WARNING|ERROR|VERBOSE):\s+BL31: `)},
	{"RMM", regexp.MustCompile(`Booting RMM v`)},
	{"kernel", regexp.MustCompile(`Booting Linux on physical CPU`)},
}

// Excerpt shape: this many lines before the matching one, and the most
// lines a BootError's Excerpt holds in all (the match and what followed).
const (
	excerptBefore = 10
	excerptLines  = 30
	// tailLines is how much console the Watcher keeps for ConsoleTail.
	tailLines = 1000
)

// Watcher reads console lines and recognises a failed boot. It keeps the
// last lines for ConsoleTail and, after the first match, the excerpt
// around it. Safe for concurrent use.
type Watcher struct {
	patterns []Pattern

	mu      sync.Mutex
	ring    []string // last tailLines lines, oldest first once full
	next    int      // ring write position once full
	partial string   // text after the last newline (a prompt, say)
	failed  *BootError
	excerpt []string
	// stage is the last Stages entry seen; stageLines the first line
	// that announced each stage.
	stage      string
	stageLines map[string]string
	stageAt    map[string]time.Time
}

// NewWatcher watches for patterns; nil means DefaultPatterns.
func NewWatcher(patterns []Pattern) *Watcher {
	if patterns == nil {
		patterns = DefaultPatterns
	}
	return &Watcher{patterns: patterns}
}

// Line feeds one console line (without its newline). It returns true for
// the line that first matched a pattern; later lines still go into the
// excerpt (the call trace follows the "Unable to handle" line) until it
// is full.
func (w *Watcher) Line(line string) (first bool) {
	line = strings.TrimRight(line, "\r")
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = ""
	w.track(line)
	if w.failed != nil {
		if len(w.excerpt) < excerptLines {
			w.excerpt = append(w.excerpt, line)
		}
		w.push(line)
		return false
	}
	for _, p := range w.patterns {
		if p.Re.MatchString(line) {
			w.failed = &BootError{Reason: p.Reason, Line: line}
			w.excerpt = append(w.last(excerptBefore), line)
			w.push(line)
			return true
		}
	}
	w.push(line)
	return false
}

func (w *Watcher) track(line string) {
	for _, st := range Stages {
		if st.Re.MatchString(line) {
			w.stage = st.Name
			if w.stageLines == nil {
				w.stageLines, w.stageAt = map[string]string{}, map[string]time.Time{}
			}
			if _, seen := w.stageLines[st.Name]; !seen {
				w.stageLines[st.Name] = strings.TrimSpace(line)
				w.stageAt[st.Name] = time.Now()
			}
			return
		}
	}
}

// Stage is the last boot stage the console announced ("BL31", "RMM",
// "kernel"), "" before the first.
func (w *Watcher) Stage() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stage
}

// StageLine is the first console line that announced stage name, "" if
// none did (for the RMM: its own version line).
func (w *Watcher) StageLine(name string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stageLines[name]
}

// StageAt is when the Watcher first read stage name's announcement (zero
// if never): within consolePoll of when the guest printed it.
func (w *Watcher) StageAt(name string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stageAt[name]
}

// Partial records text after the last newline (shown by Tail, never
// matched: a line is judged once it is complete).
func (w *Watcher) Partial(s string) {
	w.mu.Lock()
	w.partial = strings.TrimRight(s, "\r")
	w.mu.Unlock()
}

// Err is the BootError for the first match, with the excerpt as it stands
// now, or nil.
func (w *Watcher) Err() *BootError {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed == nil {
		return nil
	}
	e := *w.failed
	e.Excerpt = strings.Join(w.excerpt, "\n")
	return &e
}

// Tail returns the last n lines (and a trailing partial line), joined.
func (w *Watcher) Tail(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := w.last(n)
	if w.partial != "" {
		lines = append(lines, w.partial)
	}
	return strings.Join(lines, "\n")
}

func (w *Watcher) push(line string) {
	if len(w.ring) < tailLines {
		w.ring = append(w.ring, line)
		return
	}
	w.ring[w.next] = line
	w.next = (w.next + 1) % tailLines
}

// last copies the newest n lines, oldest first. Caller holds mu.
func (w *Watcher) last(n int) []string {
	if n <= 0 {
		return nil
	}
	ordered := w.ring
	if len(w.ring) == tailLines && w.next != 0 {
		ordered = append(append([]string{}, w.ring[w.next:]...), w.ring[:w.next]...)
	}
	if n > len(ordered) {
		n = len(ordered)
	}
	return append([]string(nil), ordered[len(ordered)-n:]...)
}

// Feed reads r to the end, splitting lines into w; it returns true if a
// pattern matched. For tests and for replaying a saved console.log.
func (w *Watcher) Feed(r io.Reader) (matched bool, err error) {
	var s splitter
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		for _, l := range s.add(buf[:n]) {
			if w.Line(l) {
				matched = true
			}
		}
		if errors.Is(err, io.EOF) {
			if rest := s.flush(); rest != "" && w.Line(rest) {
				matched = true
			}
			return matched, nil
		}
		if err != nil {
			return matched, err
		}
	}
}

// splitter cuts a byte stream into lines; a line that never ends is cut
// at maxLine so a flood without newlines cannot grow memory.
type splitter struct{ pending []byte }

const maxLine = 64 << 10

func (s *splitter) add(b []byte) []string {
	s.pending = append(s.pending, b...)
	var out []string
	for {
		i := bytes.IndexByte(s.pending, '\n')
		if i < 0 {
			break
		}
		out = append(out, string(s.pending[:i]))
		s.pending = s.pending[i+1:]
	}
	if len(s.pending) > maxLine {
		out = append(out, string(s.pending))
		s.pending = nil
	}
	return out
}

func (s *splitter) flush() string {
	rest := string(s.pending)
	s.pending = nil
	return rest
}

// consolePoll is how often the growing console.log is read. QEMU's file
// chardev writes as the guest prints, so this is the detection latency.
const consolePoll = 50 * time.Millisecond

// tailFile follows path as QEMU writes it, feeding w, until exited is
// closed; then it reads what is left and returns. onMatch runs once, on
// the first matching line; onLine for every line.
func tailFile(ctx context.Context, path string, w *Watcher, exited <-chan struct{}, onLine func(string), onMatch func()) {
	var f *os.File
	var s splitter
	buf := make([]byte, 32<<10)
	matched := false
	read := func() {
		if f == nil {
			var err error
			if f, err = os.Open(path); err != nil {
				f = nil
				return
			}
		}
		for {
			n, err := f.Read(buf)
			for _, l := range s.add(buf[:n]) {
				if onLine != nil {
					onLine(l)
				}
				if w.Line(l) && !matched {
					matched = true
					onMatch()
				}
			}
			if n == 0 || err != nil {
				w.Partial(string(s.pending))
				return
			}
		}
	}
	t := time.NewTicker(consolePoll)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			read()
		case <-exited:
			read()
			if rest := s.flush(); rest != "" {
				if onLine != nil {
					onLine(rest)
				}
				if w.Line(rest) && !matched {
					onMatch()
				}
			}
			if f != nil {
				f.Close()
			}
			return
		case <-ctx.Done():
			if f != nil {
				f.Close()
			}
			return
		}
	}
}
