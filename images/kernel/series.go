package kernel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"cca-testbed/images"
	"cca-testbed/internal/flock"
	"cca-testbed/internal/proc"
	kernelconfigs "cca-testbed/kernel-configs"
	"cca-testbed/series"
)

// seriesRecipe is part of every series kernel's cache key, like recipe.
const seriesRecipe = "series 1: base tree + patches applied in one shared tree; base.config + fragment"

// Every built kernel (the glue variants of kernel-configs, the recipes of
// variants/, a user's series) shares one tree and one build directory:
// switching between two of them (or two prefixes of one, as bisect does)
// reverts and applies only the patches that differ, so kbuild rebuilds
// only what they touch, and a cold cache compiles one kernel in full.
const (
	seriesTreeName  = "series-tree"
	seriesBuildName = "series-build"
	seriesStateName = "series-tree.json"
	seriesSavedName = "series-tree.patches"
)

// BuildSeries returns the kernel for recipe r: r's base tree (the
// unpacked linux-source by default) with r's patches, configured with the
// project's base.config and r's fragment. A series that does not apply is
// refused before anything is built, with a *series.ApplyError naming the
// patch and hunk; a build that fails carries the compiler's error lines.
// A recipe's userspace part is in the returned kernel's modules disk,
// under UserspaceDirName.
func BuildSeries(ctx context.Context, opts Options, r *series.Recipe) (*Kernel, error) {
	b, cache, err := newBuilder(ctx, opts)
	if err != nil {
		return nil, err
	}
	base, baseID := b.source, b.sourceID
	if r.Base != "" {
		if base, baseID, err = treeIdentity(ctx, r.Base); err != nil {
			return nil, fmt.Errorf("kernel %s: %w", r.Name, err)
		}
	}
	if err := series.Check(ctx, base, r.Patches); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", r.Name, err)
	}
	fsys := opts.Configs
	if fsys == nil {
		fsys = kernelconfigs.FS
	}
	baseCfg, err := fs.ReadFile(fsys, "base.config")
	if err != nil {
		return nil, fmt.Errorf("%w: kernel-configs: %v", ErrNoSource, err)
	}
	frag, want, err := seriesFragment(baseCfg, r)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", r.Name, err)
	}
	keyed := images.Inputs{
		"recipe":   []byte(seriesRecipe),
		"base":     []byte(baseID),
		"compiler": []byte(b.compiler),
		"config":   frag.Bytes(),
	}
	kconfig := images.Inputs{"base": []byte(baseID)}
	for i, p := range r.Patches {
		keyed[fmt.Sprintf("patch:%04d", i)] = p.Diff
		for _, f := range p.Files {
			if strings.HasPrefix(filepath.Base(f.Path()), "Kconfig") {
				kconfig[fmt.Sprintf("%04d:%s", i, f.Path())] = f.Raw
			}
		}
	}
	cfgKey := images.Inputs{"recipe": []byte(seriesRecipe), "fragment": frag.Bytes(), "kconfig": []byte(kconfig.Hash()), "compiler": []byte(b.compiler)}.Hash()[:12]
	dir, err := cache.Get(ctx, Kind, keyed.Key(r.Name), func(ctx context.Context, tmp string) error {
		unlock, err := b.lock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		removeLegacy(b.workDir(), b.log)
		start := time.Now()
		st := &stack{dir: b.workDir(), log: b.log}
		tree, err := st.switchTo(ctx, base, baseID, r.Patches)
		if err != nil {
			return err
		}
		b.log.Info("kbuild: series applied", "variant", r.Name, "patches", len(r.Patches), "took", time.Since(start).Round(time.Millisecond))
		return b.compile(ctx, r.Name, tree, filepath.Join(b.workDir(), seriesBuildName), frag, want, cfgKey, start, tmp)
	})
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", r.Name, err)
	}
	rel, err := os.ReadFile(filepath.Join(dir, ReleaseName))
	if err != nil {
		return nil, fmt.Errorf("kernel %s: cache entry %s: %w", r.Name, dir, err)
	}
	k := &Kernel{
		Image:       filepath.Join(dir, ImageName),
		ModulesDisk: filepath.Join(dir, ModulesName),
		Release:     strings.TrimSpace(string(rel)),
		Dir:         dir,
	}
	// The userspace part rides in a modules disk of its own entry: the
	// kernel's key leaves it out, so a changed rule reuses the build.
	return withUserspace(ctx, cache, r.Name, k, r.Userspace)
}

// removeLegacy deletes what builds before 2026-12-05 kept beside the
// series tree (a second tree and build directory for the glue variants,
// a third for stock): nothing reads them any more. The caller holds the
// build lock.
func removeLegacy(work string, log interface{ Info(string, ...any) }) {
	old, _ := filepath.Glob(filepath.Join(work, "src-*"))
	for _, p := range append(old, filepath.Join(work, "build"), filepath.Join(work, "build-stock"), filepath.Join(work, "build-stock.lock")) {
		if _, err := os.Lstat(p); err == nil {
			log.Info("kbuild: removing a build directory no longer used", "path", p)
			_ = os.RemoveAll(p)
		}
	}
}

// selectedOnly are base.config's symbols that have no prompt in a stock
// tree: the testbed's own Kconfig selects them (kernel-configs/src), as
// upstream drivers do. On a series' tree they take only when the series
// selects them, so they are asked for but not required.
var selectedOnly = []string{"CONFIG_TSM", "CONFIG_TSM_REPORTS", "CONFIG_AUXILIARY_BUS"}

// seriesFragment is base.config, then the recipe's fragment, then the
// release suffix naming the variant (frag); want is what must have taken:
// all of it but selectedOnly, unless the recipe's fragment asks for them.
func seriesFragment(baseCfg []byte, r *series.Recipe) (frag, want Fragment, err error) {
	base, err := ParseFragment("base.config", baseCfg)
	if err != nil {
		return nil, nil, err
	}
	own, err := ParseFragment(r.Name+" config fragment", r.Fragment)
	if err != nil {
		return nil, nil, err
	}
	if _, ok := own["CONFIG_LOCALVERSION"]; !ok {
		own["CONFIG_LOCALVERSION"] = strconv.Quote("-" + r.Name)
	}
	frag = Merge(base, own)
	want = Merge(base, own)
	for _, sym := range selectedOnly {
		if _, asked := own[sym]; !asked {
			delete(want, sym)
		}
	}
	return frag, want, nil
}

// treeIdentity names a user's base tree by its git commit; a tree with
// uncommitted changes has no stable identity and is refused.
func treeIdentity(ctx context.Context, dir string) (string, string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	out, err := proc.Output(ctx, proc.Cmd{Argv: []string{"git", "-C", abs, "rev-parse", "--verify", "HEAD^{commit}"}, Lines: 1})
	if err != nil {
		return "", "", fmt.Errorf("base tree %s: not a git tree (%v): a base must be a git checkout, so that its commit names what was built", abs, err)
	}
	status, err := proc.Output(ctx, proc.Cmd{Argv: []string{"git", "-C", abs, "status", "--porcelain", "--untracked-files=no"}, Lines: 1})
	if err != nil {
		return "", "", fmt.Errorf("base tree %s: git status: %w", abs, err)
	}
	if len(bytes.TrimSpace(status)) > 0 {
		return "", "", fmt.Errorf("base tree %s has uncommitted changes: commit or stash them", abs)
	}
	return abs, "git:" + strings.TrimSpace(string(out)), nil
}

// lock takes the build directories' lock: one kernel compiles at a time
// on a cache, whichever kind.
func (b *builder) lock(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(b.workDir(), 0o700); err != nil {
		return nil, err
	}
	lockPath := filepath.Join(b.workDir(), "build.lock")
	return flock.Lock(ctx, lockPath, func() { b.log.Info("kbuild: waiting for another kernel build", "lock", lockPath) })
}

// stack is the shared series tree: a hard-linked copy of a base tree with
// a stack of applied patches, recorded in a state file. Patches are only
// applied and reverted, so every file they touch gets a new mtime and
// kbuild rebuilds it; a tree made afresh gets a fresh build directory too,
// since its files would carry the base's old mtimes and kbuild would keep
// objects compiled from patched sources.
type stack struct {
	dir string // <cache>/kbuild
	log interface {
		Info(msg string, args ...any)
	}
}

type stackState struct {
	Base    string   `json:"base"`
	BaseID  string   `json:"base_id"`
	Applied []string `json:"applied"` // patch IDs, bottom first
	// Dirty is set while the tree changes; found set, the tree is made afresh.
	Dirty bool `json:"dirty"`
}

func (s *stack) tree() string  { return filepath.Join(s.dir, seriesTreeName) }
func (s *stack) saved() string { return filepath.Join(s.dir, seriesSavedName) }

func (s *stack) load() (*stackState, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, seriesStateName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st stackState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, nil // unreadable: start afresh
	}
	return &st, nil
}

func (s *stack) store(st *stackState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, seriesStateName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, seriesStateName))
}

// switchTo makes the tree hold base with exactly want applied and returns
// its path: it reverts the applied patches above the common prefix, newest
// first, and applies the rest of want.
func (s *stack) switchTo(ctx context.Context, base, baseID string, want []series.Patch) (string, error) {
	st, err := s.load()
	if err != nil {
		return "", err
	}
	if st == nil || st.Dirty || st.Base != base || st.BaseID != baseID {
		if st, err = s.fresh(ctx, base, baseID); err != nil {
			return "", err
		}
	}
	common := 0
	for common < len(st.Applied) && common < len(want) && st.Applied[common] == want[common].ID() {
		common++
	}
	st.Dirty = true
	if err := s.store(st); err != nil {
		return "", err
	}
	for i := len(st.Applied) - 1; i >= common; i-- {
		p, err := s.savedPatch(st.Applied[i], i+1)
		if err == nil {
			err = s.apply(ctx, p, len(st.Applied), true)
		}
		if err != nil {
			// The tree no longer matches its record: start over.
			s.log.Info("kbuild: series tree cannot revert; making it afresh", "err", err)
			if st, err = s.fresh(ctx, base, baseID); err != nil {
				return "", err
			}
			return s.switchTo(ctx, base, baseID, want)
		}
		st.Applied = st.Applied[:i]
	}
	if err := os.MkdirAll(s.saved(), 0o700); err != nil {
		return "", err
	}
	for i := common; i < len(want); i++ {
		p := &want[i]
		if err := os.WriteFile(filepath.Join(s.saved(), p.ID()+".patch"), p.Diff, 0o600); err != nil {
			return "", err
		}
		if err := s.apply(ctx, p, len(want), false); err != nil {
			// Check passed on the base, so this tree differs from it; the
			// record stays dirty and the next build starts afresh.
			return "", err
		}
		st.Applied = append(st.Applied, p.ID())
		if err := s.store(st); err != nil {
			return "", err
		}
	}
	st.Dirty = false
	return s.tree(), s.store(st)
}

func (s *stack) savedPatch(id string, index int) (*series.Patch, error) {
	b, err := os.ReadFile(filepath.Join(s.saved(), id+".patch"))
	if err != nil {
		return nil, err
	}
	files, err := series.ParseDiff(b)
	if err != nil {
		return nil, err
	}
	return &series.Patch{Index: index, Name: id + ".patch", Subject: "applied patch " + id, Diff: b, Files: files}, nil
}

// apply applies or reverts p in the tree after giving each file it
// touches a private copy (the tree shares the base's files by hard links).
func (s *stack) apply(ctx context.Context, p *series.Patch, total int, reverse bool) error {
	for _, f := range p.Files {
		for _, name := range []string{f.Old, f.New} {
			if name != "" {
				if err := privatize(filepath.Join(s.tree(), name)); err != nil {
					return err
				}
			}
		}
	}
	return series.Apply(ctx, s.tree(), p, total, reverse)
}

// privatize replaces a hard-linked file by a copy of its own.
func privatize(p string) error {
	info, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink <= 1 {
		return nil
	}
	return unlink(p)
}

// fresh makes the tree anew from base, with an empty build directory.
func (s *stack) fresh(ctx context.Context, base, baseID string) (*stackState, error) {
	s.log.Info("kbuild: making the series tree", "base", base)
	for _, d := range []string{s.tree(), filepath.Join(s.dir, seriesBuildName), s.saved()} {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	tmp := s.tree() + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	if err := linkCopy(ctx, base, tmp); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(tmp, ".git")); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, s.tree()); err != nil {
		return nil, err
	}
	st := &stackState{Base: base, BaseID: baseID}
	return st, s.store(st)
}
