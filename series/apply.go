package series

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"cca-testbed/internal/proc"
)

// ApplyError names the patch and the hunk that did not apply.
type ApplyError struct {
	Patch   int // 1-based
	Total   int
	Subject string
	Name    string // file or message the patch came from
	File    string // the file in the tree; "" when unknown
	Hunk    string // the hunk's @@ header; "" when the file itself failed
	Reverse bool   // failed while reverting
	Detail  string // patch(1)'s lines about the failure
}

func (e *ApplyError) Error() string {
	verb := "does not apply"
	if e.Reverse {
		verb = "does not revert"
	}
	s := fmt.Sprintf("patch %d/%d %q (%s) %s", e.Patch, e.Total, e.Subject, e.Name, verb)
	switch {
	case e.File != "" && e.Hunk != "":
		s += fmt.Sprintf(": %s: hunk %s failed", e.File, e.Hunk)
	case e.File != "":
		s += ": " + e.File
	}
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

func (e *ApplyError) Unwrap() error { return ErrApply }

// Apply applies p (or reverts it) to the tree at dir with patch -p1. It
// writes the files in place: a caller sharing files by hard links must
// break the links of p's files first. On failure the tree may hold part
// of p; the error is an *ApplyError.
func Apply(ctx context.Context, dir string, p *Patch, total int, reverse bool) error {
	args := []string{"-p1", "--batch", "--no-backup-if-mismatch", "--reject-file=-", "--fuzz=0"}
	if reverse {
		args = append(args, "--reverse")
	} else {
		args = append(args, "--forward")
	}
	var out bytes.Buffer
	err := proc.Run(ctx, proc.Cmd{Argv: append([]string{"patch"}, args...), Dir: dir,
		Stdin: bytes.NewReader(p.Diff), Stdout: &out, Stderr: &out})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("%w (is patch installed? scripts/setup-host)", err)
	}
	ae := explain(p, out.Bytes())
	ae.Total, ae.Reverse = total, reverse
	return ae
}

var (
	patchingRE = regexp.MustCompile(`^(?:patching|checking) file '?(.+?)'?$`)
	hunkRE     = regexp.MustCompile(`^Hunk #(\d+) FAILED`)
	missingRE  = regexp.MustCompile(`^can't find file to patch`)
)

// explain reads patch(1)'s output for the first failed hunk and maps its
// number back to the hunk header in p.
func explain(p *Patch, out []byte) *ApplyError {
	e := &ApplyError{Patch: p.Index, Subject: p.Subject, Name: p.Name}
	var file string
	var detail []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if m := patchingRE.FindStringSubmatch(l); m != nil {
			file = m[1]
			continue
		}
		if m := hunkRE.FindStringSubmatch(l); m != nil && e.File == "" {
			n, _ := strconv.Atoi(m[1])
			e.File = file
			for _, f := range p.Files {
				if f.Path() == file && n >= 1 && n <= len(f.Hunks) {
					e.Hunk = "#" + m[1] + " " + f.Hunks[n-1].Header
				}
			}
			if e.Hunk == "" {
				e.Hunk = "#" + m[1]
			}
			detail = append(detail, l)
			continue
		}
		if missingRE.MatchString(l) || strings.Contains(l, "Reversed (or previously applied)") ||
			strings.Contains(l, "malformed patch") || strings.Contains(l, "No such file") || strings.HasPrefix(l, "patch: ****") {
			detail = append(detail, l)
			if e.File == "" && file != "" {
				e.File = file
			}
		}
	}
	if e.File == "" && missingRE.Match(out) {
		for _, f := range p.Files {
			if f.Old != "" {
				e.File = f.Old + " (not in the tree)"
				break
			}
		}
	}
	if len(detail) > 3 {
		detail = detail[:3]
	}
	e.Detail = strings.Join(detail, "; ")
	if e.Detail == "" {
		e.Detail = clip(proc.LastLines(string(out), 1))
	}
	return e
}

// Check applies patches in order to a scratch copy of the files they
// touch, taken from the tree at base, and returns the first *ApplyError.
// It costs milliseconds and writes nothing in base.
func Check(ctx context.Context, base string, patches []Patch) error {
	scratch, err := os.MkdirTemp("", "cca-testbed-series-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	copied := map[string]bool{}
	for _, p := range patches {
		for _, f := range p.Files {
			for _, name := range []string{f.Old, f.New} {
				if name == "" || copied[name] {
					continue
				}
				copied[name] = true
				if err := copyIn(filepath.Join(base, name), filepath.Join(scratch, name)); err != nil {
					return err
				}
			}
		}
	}
	for i := range patches {
		if err := Apply(ctx, scratch, &patches[i], len(patches), false); err != nil {
			return err
		}
	}
	return nil
}

// copyIn copies src to dst when src exists (a file a patch creates does not).
func copyIn(src, dst string) error {
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: a patch touches it, but it is not a regular file", src)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm()|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
