package series

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"cca-testbed/internal/input"
	"cca-testbed/internal/proc"
)

// RecipeFile is the optional file in a series directory that names the
// series, its config fragment, userspace part and provenance.
const RecipeFile = "recipe"

// FragmentFile is a series directory's config fragment when there is no
// recipe file naming another.
const FragmentFile = "kernel.config"

// gitRangeRE is "PATH:A..B" (A may be empty: "PATH:..B" is not allowed,
// git needs a start).
var gitRangeRE = regexp.MustCompile(`^(.+):([^:\s]+\.\.[^:\s]+)$`)

// Read reads a recipe from spec, which is one of
//
//	DIR             a directory with a recipe file, a quilt series file,
//	                or git format-patch's NNNN-*.patch files
//	FILE            an mbox (b4 am's output) or a single patch mail
//	PATH:A..B       the commits A..B of the git tree at PATH
//
// The variant name is the recipe's name, else the last element of the
// path.
func Read(ctx context.Context, spec string) (*Recipe, error) {
	r, err := read(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("series %s: %w", spec, err)
	}
	return r, nil
}

func read(ctx context.Context, spec string) (*Recipe, error) {
	if m := gitRangeRE.FindStringSubmatch(spec); m != nil {
		if st, err := os.Stat(m[1]); err == nil && st.IsDir() {
			return readGitRange(ctx, m[1], m[2])
		}
	}
	st, err := os.Stat(spec)
	if err != nil {
		return nil, fmt.Errorf("%w (want a series directory, an mbox file, or PATH:A..B of a git tree)", err)
	}
	if !st.IsDir() {
		ps, err := readMboxFile(spec)
		if err != nil {
			return nil, err
		}
		return finish(&Recipe{Name: nameFrom(filepath.Base(spec)), Patches: ps,
			Provenance: Provenance{Source: spec, Format: "mbox"}})
	}
	if _, err := os.Stat(filepath.Join(spec, RecipeFile)); err == nil {
		return readRecipeDir(ctx, spec)
	}
	r, err := readSeriesDir(spec, false)
	if err != nil {
		return nil, err
	}
	frag, err := readOptional(filepath.Join(spec, FragmentFile))
	if err != nil {
		return nil, err
	}
	r.Fragment = frag
	return finish(r)
}

// readSeriesDir reads a quilt directory or a format-patch directory. With
// recipe set (a recipe file beside it), a quilt series may list no patches:
// the recipe then names the base as it is, a baseline such as the stock
// variant. Without a recipe an empty series is refused, since it is more
// likely a mistake (every line commented out) than a wish to build the
// base under another name.
func readSeriesDir(dir string, recipe bool) (*Recipe, error) {
	abs, _ := filepath.Abs(dir)
	r := &Recipe{Name: nameFrom(filepath.Base(abs))}
	if _, err := os.Stat(filepath.Join(dir, "series")); err == nil {
		ps, err := readQuilt(dir, recipe)
		if err != nil {
			return nil, err
		}
		r.Patches, r.Provenance = ps, Provenance{Source: dir, Format: "quilt"}
		return r, nil
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.patch"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var cover string
	total := 0
	for _, n := range names {
		if strings.HasSuffix(n, "0000-cover-letter.patch") {
			cover = n
			continue
		}
		if len(r.Patches) >= MaxPatches {
			return nil, fmt.Errorf("%w: more than %d patches", ErrFormat, MaxPatches)
		}
		data, err := readBounded(n, MaxFile)
		if err != nil {
			return nil, err
		}
		if total += len(data); total > MaxTotal {
			return nil, fmt.Errorf("%w: patches larger than %d bytes together", ErrFormat, MaxTotal)
		}
		ps, err := ParseMbox(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(n), err)
		}
		if len(ps) != 1 {
			return nil, fmt.Errorf("%w: %s holds %d patches, want one per file", ErrFormat, filepath.Base(n), len(ps))
		}
		ps[0].Name = filepath.Base(n)
		r.Patches = append(r.Patches, ps[0])
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: %s has no %s, no series file and no *.patch files", ErrFormat, dir, RecipeFile)
	}
	r.Provenance = Provenance{Source: dir, Format: "format-patch"}
	if cover != "" {
		if data, err := readBounded(cover, MaxFile); err == nil {
			if msgs, err := splitMbox(data); err == nil && len(msgs) > 0 {
				tag, subj := splitTag(decodeHeader(msgs[0].header.Get("Subject")))
				r.Provenance.Version = versionOf(tag)
				r.Description = subj
			}
		}
	}
	return r, nil
}

// ParseQuiltSeries reads a quilt series file: one patch per line, "#"
// comments, an optional -p1 (the only level supported).
func ParseQuiltSeries(data []byte) ([]string, error) {
	var names []string
	for i, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) > 2 || (len(f) == 2 && f[1] != "-p1") {
			return nil, fmt.Errorf("%w: series line %d: %q: only \"NAME\" or \"NAME -p1\" is supported", ErrFormat, i+1, clip(line))
		}
		n := f[0]
		if filepath.IsAbs(n) || n == ".." || strings.HasPrefix(n, "../") || strings.Contains(n, "/../") {
			return nil, fmt.Errorf("%w: series line %d: %q is outside the series directory", ErrFormat, i+1, n)
		}
		if len(names) >= MaxPatches {
			return nil, fmt.Errorf("%w: more than %d patches", ErrFormat, MaxPatches)
		}
		names = append(names, n)
	}
	return names, nil
}

func readQuilt(dir string, emptyOK bool) ([]Patch, error) {
	data, err := readBounded(filepath.Join(dir, "series"), 1<<20)
	if err != nil {
		return nil, err
	}
	names, err := ParseQuiltSeries(data)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 && !emptyOK {
		return nil, fmt.Errorf("%w: %s/series lists no patches (a recipe file beside it makes an empty series the base as it is)", ErrFormat, dir)
	}
	var ps []Patch
	total := 0
	for _, n := range names {
		data, err := readBounded(filepath.Join(dir, n), MaxFile)
		if err != nil {
			return nil, err
		}
		if total += len(data); total > MaxTotal {
			return nil, fmt.Errorf("%w: patches larger than %d bytes together", ErrFormat, MaxTotal)
		}
		p, err := parsePatchFile(n, data)
		if err != nil {
			return nil, err
		}
		p.Index = len(ps) + 1
		ps = append(ps, p)
	}
	return ps, nil
}

// parsePatchFile reads one patch that may or may not carry mail headers
// (quilt patches often have a free-text or DEP-3 description).
func parsePatchFile(name string, data []byte) (Patch, error) {
	if bytes.HasPrefix(data, []byte("From")) || bytes.HasPrefix(data, []byte("Subject:")) {
		if ps, err := ParseMbox(data); err == nil && len(ps) == 1 {
			ps[0].Name = name
			return ps[0], nil
		}
	}
	files, err := ParseDiff(data)
	if err != nil {
		return Patch{}, fmt.Errorf("%s: %w", name, err)
	}
	if len(files) == 0 {
		return Patch{}, fmt.Errorf("%w: %s holds no diff", ErrFormat, name)
	}
	p := Patch{Name: name, Subject: strings.TrimSuffix(filepath.Base(name), ".patch"), Diff: data, Files: files}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "diff ") || strings.HasPrefix(line, "--- ") || strings.HasPrefix(line, "Index:") || line == "---" {
			break
		}
		for _, k := range []string{"Description:", "Subject:"} {
			line = strings.TrimSpace(strings.TrimPrefix(line, k))
		}
		if k, v, ok := strings.Cut(line, ":"); ok && (k == "Author" || k == "From") {
			p.Author = strings.TrimSpace(v)
			continue
		}
		if p.Subject == strings.TrimSuffix(filepath.Base(name), ".patch") {
			p.Subject = line
		}
	}
	return p, nil
}

func readMboxFile(name string) ([]Patch, error) {
	data, err := readBounded(name, MaxTotal)
	if err != nil {
		return nil, err
	}
	ps, err := ParseMbox(data)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("%w: %s holds no patch", ErrFormat, name)
	}
	return ps, nil
}

func readGitRange(ctx context.Context, repo, rng string) (*Recipe, error) {
	if strings.HasPrefix(rng, "-") {
		return nil, fmt.Errorf("%w: range %q", ErrFormat, rng)
	}
	// Past MaxTotal the output is refused: the bound stops git at once.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &bounded{max: MaxTotal, full: cancel}
	err := proc.Run(ctx, proc.Cmd{Argv: []string{"git", "-C", repo, "format-patch", "--stdout", "--no-signature", "--no-color", "--end-of-options", rng},
		Stdout: out, Lines: 1})
	if out.over {
		return nil, fmt.Errorf("%w: %s %s is larger than %d bytes of patches", ErrFormat, repo, rng, MaxTotal)
	}
	if errors.Is(err, exec.ErrNotFound) {
		return nil, fmt.Errorf("git format-patch: %w (is git installed?)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("git -C %s format-patch %s: %w", repo, rng, err)
	}
	data := out.b.Bytes()
	ps, err := ParseMbox(data)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("%w: %s %s holds no commits with a diff", ErrFormat, repo, rng)
	}
	r := &Recipe{Name: nameFrom(filepath.Base(filepath.Clean(repo))), Patches: ps,
		Provenance: Provenance{Source: repo + ":" + rng, Format: "git-range", Commit: ps[len(ps)-1].Commit}}
	return finish(r)
}

// bounded keeps up to max bytes; past them it calls full and drops the rest.
type bounded struct {
	b    bytes.Buffer
	max  int
	over bool
	full func()
}

func (w *bounded) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > w.max {
		if !w.over {
			w.over = true
			w.full()
		}
		return len(p), nil
	}
	return w.b.Write(p)
}

// finish fills provenance from the patches where nothing set it, and
// checks what every recipe must satisfy.
func finish(r *Recipe) (*Recipe, error) {
	if len(r.Patches) > MaxPatches {
		return nil, fmt.Errorf("%w: %d patches, at most %d", ErrFormat, len(r.Patches), MaxPatches)
	}
	for i := range r.Patches {
		r.Patches[i].Index = i + 1
	}
	if len(r.Patches) > 0 {
		first := r.Patches[0]
		pv := &r.Provenance
		if pv.Who == "" {
			var who []string
			for _, p := range r.Patches {
				if p.Author != "" && !slices.Contains(who, p.Author) {
					who = append(who, p.Author)
				}
			}
			if len(who) > 3 {
				who = append(who[:3], "others")
			}
			pv.Who = strings.Join(who, ", ")
		}
		if pv.Version == "" {
			pv.Version = versionOf(first.Tag)
		}
		if pv.Date == "" {
			pv.Date = first.Date
		}
		if pv.MessageID == "" {
			pv.MessageID = first.MessageID
		}
		if pv.Commit == "" && r.Patches[len(r.Patches)-1].Commit != "" && pv.Format == "git-range" {
			pv.Commit = r.Patches[len(r.Patches)-1].Commit
		}
	}
	if !validName(r.Name) {
		return nil, fmt.Errorf("%w: variant name %q: use 1-40 of a-z 0-9 . _ - (set name: in %s)", ErrFormat, r.Name, RecipeFile)
	}
	return r, nil
}

// readBounded reads a whole regular file of at most max bytes
// (internal/input: a FIFO or device is refused, not waited on).
func readBounded(name string, max int64) ([]byte, error) {
	b, err := input.ReadFile(name, "series", max)
	if errors.Is(err, input.ErrTooLarge) || errors.Is(err, input.ErrNotRegular) {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return b, err
}

func readOptional(name string) ([]byte, error) {
	data, err := readBounded(name, 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}
