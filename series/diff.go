package series

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// FileDiff is one file's part of a unified diff.
type FileDiff struct {
	Old, New string // paths with the a/ b/ level stripped; "" for /dev/null
	Hunks    []Hunk
	Raw      []byte // this file's lines of the diff, headers included
}

// Path is the file the diff writes (New, or Old when it deletes).
func (f FileDiff) Path() string {
	if f.New != "" {
		return f.New
	}
	return f.Old
}

// Hunk is one "@@ -a,b +c,d @@" section.
type Hunk struct {
	Header             string // the whole @@ line, function context included
	OldStart, OldLines int
	NewStart, NewLines int
}

// ParseDiff finds the file diffs in a patch: text before the first file
// header (mail headers, the message) and after the last hunk (a mail
// signature) is skipped. Hunk bodies are read by their line counts, so a
// removed line that reads "--- x" is not taken for a header. Paths must
// stay inside the tree (-p1, no "..", not absolute).
func ParseDiff(b []byte) ([]FileDiff, error) {
	lines := splitLines(b)
	var files []FileDiff
	var cur *FileDiff
	start := 0 // first line of cur's Raw
	flush := func(end int) {
		if cur != nil {
			cur.Raw = bytes.Join(lines[start:end], nil)
			files = append(files, *cur)
			cur = nil
		}
	}
	for i := 0; i < len(lines); i++ {
		l := string(bytes.TrimRight(lines[i], "\r\n"))
		switch {
		case strings.HasPrefix(l, "diff --git "):
			flush(i)
			cur, start = &FileDiff{}, i
			a, bb, ok := gitPaths(strings.TrimPrefix(l, "diff --git "))
			if !ok {
				return nil, fmt.Errorf("%w: line %d: cannot read %q", ErrFormat, i+1, l)
			}
			var err error
			if cur.Old, err = stripPath(a); err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrFormat, i+1, err)
			}
			if cur.New, err = stripPath(bb); err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrFormat, i+1, err)
			}
		case strings.HasPrefix(l, "GIT binary patch"), strings.HasPrefix(l, "Binary files "):
			return nil, fmt.Errorf("%w: line %d: binary diffs are not supported", ErrFormat, i+1)
		case strings.HasPrefix(l, "--- ") && i+1 < len(lines) && bytes.HasPrefix(lines[i+1], []byte("+++ ")):
			if cur == nil || len(cur.Hunks) > 0 {
				flush(i)
				cur, start = &FileDiff{}, i
			}
			var err error
			if cur.Old, err = stripPath(headerPath(l[4:])); err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrFormat, i+1, err)
			}
			if cur.New, err = stripPath(headerPath(string(bytes.TrimRight(lines[i+1], "\r\n"))[4:])); err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrFormat, i+2, err)
			}
			i++
		case strings.HasPrefix(l, "@@ "):
			if cur == nil {
				return nil, fmt.Errorf("%w: line %d: hunk before any file header", ErrFormat, i+1)
			}
			h, err := parseHunkHeader(l)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrFormat, i+1, err)
			}
			cur.Hunks = append(cur.Hunks, h)
			old, nw := h.OldLines, h.NewLines
			for old > 0 || nw > 0 {
				i++
				if i >= len(lines) {
					return nil, fmt.Errorf("%w: hunk %q of %s ends early", ErrFormat, h.Header, cur.Path())
				}
				body := lines[i]
				switch {
				case len(body) == 0 || body[0] == '\n' || body[0] == '\r':
					old, nw = old-1, nw-1 // an empty context line whose space was stripped
				case body[0] == ' ':
					old, nw = old-1, nw-1
				case body[0] == '-':
					old--
				case body[0] == '+':
					nw--
				case body[0] == '\\':
				default:
					return nil, fmt.Errorf("%w: line %d: %q inside hunk %q of %s", ErrFormat, i+1, clip(string(body)), h.Header, cur.Path())
				}
				if old < 0 || nw < 0 {
					return nil, fmt.Errorf("%w: line %d: hunk %q of %s is longer than its header says", ErrFormat, i+1, h.Header, cur.Path())
				}
			}
			for i+1 < len(lines) && bytes.HasPrefix(lines[i+1], []byte(`\`)) {
				i++ // "\ No newline at end of file"
			}
		}
	}
	flush(len(lines))
	var out []FileDiff
	for _, f := range files {
		if len(f.Hunks) > 0 || f.Old != f.New { // a pure rename or mode change has no hunk
			out = append(out, f)
		}
	}
	return out, nil
}

func splitLines(b []byte) [][]byte {
	var lines [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			lines = append(lines, b)
			break
		}
		lines = append(lines, b[:i+1])
		b = b[i+1:]
	}
	return lines
}

func clip(s string) string {
	s = strings.TrimRight(s, "\r\n")
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// gitPaths splits "a/x b/x"; git quotes unusual names, which we refuse.
func gitPaths(s string) (string, string, bool) {
	if strings.HasPrefix(s, `"`) {
		return "", "", false
	}
	// Both halves have the same length when the path is unchanged.
	if n := len(s); n >= 7 && n%2 == 1 && s[n/2] == ' ' && s[2:n/2] == s[n/2+3:] {
		return s[:n/2], s[n/2+1:], true
	}
	i := strings.Index(s, " b/")
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// headerPath is the path of a ---/+++ line, without the timestamp.
func headerPath(s string) string {
	s, _, _ = strings.Cut(s, "\t")
	return strings.TrimSpace(s)
}

// stripPath removes the first component (patch -p1) and checks what is
// left stays inside the tree.
func stripPath(p string) (string, error) {
	if p == "/dev/null" {
		return "", nil
	}
	_, rest, ok := strings.Cut(p, "/")
	if !ok || rest == "" {
		return "", fmt.Errorf("path %q has no leading directory to strip (want a/... b/..., as patch -p1)", p)
	}
	if strings.HasPrefix(rest, "/") || rest == ".." || strings.HasPrefix(rest, "../") || strings.Contains(rest, "/../") || strings.HasSuffix(rest, "/..") {
		return "", fmt.Errorf("path %q leaves the tree", p)
	}
	return rest, nil
}

func parseHunkHeader(l string) (Hunk, error) {
	h := Hunk{Header: l}
	rest := strings.TrimPrefix(l, "@@ ")
	ranges, _, ok := strings.Cut(rest, " @@")
	if !ok {
		return h, fmt.Errorf("bad hunk header %q", clip(l))
	}
	o, n, ok := strings.Cut(ranges, " ")
	if !ok || !strings.HasPrefix(o, "-") || !strings.HasPrefix(n, "+") {
		return h, fmt.Errorf("bad hunk header %q", clip(l))
	}
	var err error
	if h.OldStart, h.OldLines, err = parseRange(o[1:]); err != nil {
		return h, fmt.Errorf("bad hunk header %q: %v", clip(l), err)
	}
	if h.NewStart, h.NewLines, err = parseRange(n[1:]); err != nil {
		return h, fmt.Errorf("bad hunk header %q: %v", clip(l), err)
	}
	return h, nil
}

// parseRange reads "start[,count]"; count defaults to 1.
func parseRange(s string) (int, int, error) {
	a, b, has := strings.Cut(s, ",")
	start, err := strconv.Atoi(a)
	if err != nil || start < 0 {
		return 0, 0, fmt.Errorf("bad line number %q", a)
	}
	count := 1
	if has {
		if count, err = strconv.Atoi(b); err != nil || count < 0 || count > 1<<24 {
			return 0, 0, fmt.Errorf("bad line count %q", b)
		}
	}
	return start, count, nil
}
