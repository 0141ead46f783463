package firmware

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"cca-testbed/internal/proc"
)

// SourcesEnv names the environment variable that overrides the default
// sources directory.
const SourcesEnv = "CCA_TESTBED_FIRMWARE_SRC"

// DefaultSources is $CCA_TESTBED_FIRMWARE_SRC, else ../shared/firmware-src
// beside the repository the current directory is in (for a git worktree,
// beside its main checkout too: the first that exists).
func DefaultSources() (string, error) {
	if d := os.Getenv(SourcesEnv); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%w: find the sources directory: %v; set %s", ErrSource, err, SourcesEnv)
	}
	cands := sourceCandidates(wd)
	for _, c := range cands {
		if info, err := os.Stat(c); err == nil && info.IsDir() {
			return c, nil
		}
	}
	if len(cands) == 0 {
		return "", fmt.Errorf("%w: %s is not inside the cca-testbed repository, so ../shared/firmware-src cannot be found; set %s (or --firmware-src) to the directory holding the TF-A and TF-RMM tarballs", ErrSource, wd, SourcesEnv)
	}
	return "", fmt.Errorf("%w: no sources directory at %s; set %s (or --firmware-src) to the directory holding the TF-A and TF-RMM tarballs or checkouts", ErrSource, strings.Join(cands, " or "), SourcesEnv)
}

// sourceCandidates are the default sources directories for a process
// working in wd: ../shared/firmware-src relative to the repository root,
// and, when the root is a linked worktree, relative to the main checkout.
func sourceCandidates(wd string) []string {
	root := repoRoot(wd)
	if root == "" {
		return nil
	}
	out := []string{filepath.Join(filepath.Dir(root), "shared", "firmware-src")}
	// A linked worktree's .git is a file: "gitdir: <main>/.git/worktrees/<name>".
	if b, err := os.ReadFile(filepath.Join(root, ".git")); err == nil {
		if gd, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir: "); ok {
			wt := filepath.Dir(gd) // <main>/.git/worktrees
			if filepath.Base(wt) == "worktrees" && filepath.Base(filepath.Dir(wt)) == ".git" {
				main := filepath.Dir(filepath.Dir(wt))
				out = append(out, filepath.Join(filepath.Dir(main), "shared", "firmware-src"))
			}
		}
	}
	return out
}

// repoRoot walks up from dir to the directory whose go.mod declares
// module cca-testbed ("" if none).
func repoRoot(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(first) == "module cca-testbed" {
				return d
			}
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// resolved is a source found in the sources directory.
type resolved struct {
	Source
	path     string // the tarball, or the checkout directory
	checkout bool
	id       string // "sha256:<hex>" or "git:<commit>[+<submodules digest>]"
}

// describe is what info.json records of the source.
func (r resolved) describe() string {
	return filepath.Base(r.path) + " " + r.id
}

// resolveSources finds each source in dir: the tarball, verified against
// its pinned digest, else a git checkout at the pinned tag.
func resolveSources(ctx context.Context, dir string, srcs ...Source) ([]resolved, error) {
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("%w: sources directory %s is missing: set %s (or --firmware-src) to the directory holding %s", ErrSource, dir, SourcesEnv, tarballs(srcs))
	}
	var out []resolved
	for _, s := range srcs {
		r, err := resolveSource(ctx, dir, s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func tarballs(srcs []Source) string {
	var n []string
	for _, s := range srcs {
		n = append(n, s.Tarball)
	}
	return strings.Join(n, " and ")
}

func resolveSource(ctx context.Context, dir string, s Source) (resolved, error) {
	tb := filepath.Join(dir, s.Tarball)
	sum, err := fileSHA256(tb)
	switch {
	case err == nil:
		if sum != s.SHA256 {
			return resolved{}, fmt.Errorf("%w: %s has sha256 %s, but %s %s is pinned as %s: it is not the release tarball; replace it (see SHA256SUMS) or remove it", ErrSource, tb, sum, s.Project, s.Tag, s.SHA256)
		}
		return resolved{Source: s, path: tb, id: "sha256:" + sum}, nil
	case !errors.Is(err, fs.ErrNotExist):
		return resolved{}, fmt.Errorf("%w: %s: %v", ErrSource, tb, err)
	}
	co := filepath.Join(dir, s.CheckoutName())
	if info, err := os.Stat(co); err == nil && info.IsDir() {
		return resolveCheckout(ctx, co, s)
	}
	return resolved{}, fmt.Errorf("%w: %s missing: neither %s nor a git checkout %s/ at tag %s is in %s; put one there or point %s (or --firmware-src) at a directory that has it", ErrSource, s.Tarball, s.Tarball, s.CheckoutName(), s.Tag, dir, SourcesEnv)
}

// resolveCheckout accepts a git checkout whose HEAD is the pinned tag and
// whose tracked files and submodules are unmodified; its id is the commit
// and the submodules' commits.
func resolveCheckout(ctx context.Context, dir string, s Source) (resolved, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return resolved{}, fmt.Errorf("%w: %s is a checkout, but git is not installed to check it; run scripts/setup-host", ErrSource, dir)
	}
	git := func(args ...string) (string, error) {
		out, err := proc.Output(ctx, proc.Cmd{Argv: append([]string{"git", "-C", dir, "-c", "safe.directory=*"}, args...)})
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(out)), nil
	}
	tags, err := git("tag", "--points-at", "HEAD")
	if err != nil {
		return resolved{}, fmt.Errorf("%w: checkout %s: %v", ErrSource, dir, err)
	}
	if !hasLine(tags, s.Tag) {
		return resolved{}, fmt.Errorf("%w: checkout %s is not at tag %s (HEAD has tags %q); run git -C %s checkout %s", ErrSource, dir, s.Tag, tags, dir, s.Tag)
	}
	dirty, err := git("status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return resolved{}, fmt.Errorf("%w: checkout %s: %v", ErrSource, dir, err)
	}
	if dirty != "" {
		first, _, _ := strings.Cut(dirty, "\n")
		return resolved{}, fmt.Errorf("%w: checkout %s has local changes (%s); build from a clean checkout of %s", ErrSource, dir, strings.TrimSpace(first), s.Tag)
	}
	head, err := git("rev-parse", "HEAD")
	if err != nil {
		return resolved{}, fmt.Errorf("%w: checkout %s: %v", ErrSource, dir, err)
	}
	id := "git:" + head
	subs, err := git("submodule", "status", "--recursive")
	if err != nil {
		return resolved{}, fmt.Errorf("%w: checkout %s: %v", ErrSource, dir, err)
	}
	if subs != "" {
		h := sha256.Sum256([]byte(subs))
		id += "+submodules:" + hex.EncodeToString(h[:6])
	}
	return resolved{Source: s, path: dir, checkout: true, id: id}, nil
}

func hasLine(s, want string) bool {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == want {
			return true
		}
	}
	return false
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil {
		return "", err
	} else if !info.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", p)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
