package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"cca-testbed/internal/flock"

	"github.com/hashicorp/go-multierror"
)

// ErrCorrupt is wrapped when a cache entry no longer matches its manifest.
// Get handles it itself (the entry is deleted and rebuilt).
var ErrCorrupt = errors.New("cache entry does not match its manifest")

// ManifestName is the file in every entry that lists its artefacts.
const ManifestName = "manifest.json"

// staleAfter is how old an abandoned temporary build directory must be
// before Open sweeps it. A younger one may belong to a build that is still
// running in another process.
const staleAfter = 24 * time.Hour

// tmpPrefix starts the name of every temporary build directory.
const tmpPrefix = ".tmp-"

// DefaultUnusedFor is how long an entry may go unused before Open prunes
// it. Every recipe or kernel change leaves the old entry behind (about
// 150 MiB a rootfs, 20 MiB a kernel); a nightly run uses the current ones
// daily, and a rebuild costs minutes, so two weeks keeps what is in use.
const DefaultUnusedFor = 14 * 24 * time.Hour

// Cache is a directory of built artefacts, one entry per kind and key.
// It is safe for concurrent use by goroutines and by processes sharing Dir.
type Cache struct {
	// Dir is the cache root; Open creates it.
	Dir string
	// Log receives one record per cache event; nil discards them. The
	// same events are always appended to <Dir>/cache.log.
	Log *slog.Logger
}

// DefaultDir is where the testbed caches by default: $CCA_TESTBED_CACHE,
// else $XDG_CACHE_HOME/cca-testbed, else ~/.cache/cca-testbed.
func DefaultDir() (string, error) {
	if d := os.Getenv("CCA_TESTBED_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "cca-testbed"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the cache directory: %w; set CCA_TESTBED_CACHE", err)
	}
	return filepath.Join(home, ".cache", "cca-testbed"), nil
}

// Open creates dir (0700; "" means DefaultDir) if needed, sweeps temporary build directories
// that interrupted builds left more than a day ago, and prunes entries
// unused for DefaultUnusedFor (see Prune).
func Open(dir string) (*Cache, error) {
	c, err := OpenUnpruned(dir)
	if err != nil {
		return nil, err
	}
	// Housekeeping like the sweep: a failure is in cache.log, and the
	// entry is tried again next time.
	_, _ = c.Prune(DefaultUnusedFor)
	return c, nil
}

// OpenUnpruned is Open without the prune, for a caller that prunes at an
// age of its own (testbed prune --unused-for 720h must keep what is 20
// days old).
func OpenUnpruned(dir string) (*Cache, error) {
	if dir == "" {
		d, err := DefaultDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open cache %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("open cache: %w", err)
	}
	c := &Cache{Dir: abs}
	c.sweep(time.Now().Add(-staleAfter))
	return c, nil
}

// Pruned is one entry Prune removed.
type Pruned struct {
	Kind, Key string
	Bytes     int64 // its artefacts' size, from the manifest
	LastUsed  time.Time
}

// Prune removes every entry (a directory holding a manifest) last used
// longer than unusedFor ago; an entry's last use is its directory's mtime,
// which Get sets on every hit and build. An entry another process holds
// (building or verifying it) is left alone, and so are its lock file and
// anything that is not an entry (build trees, run directories). Each
// removal is logged as op=prune, each failure as op=prune-fail; Prune goes
// on past failures and returns them together.
func (c *Cache) Prune(unusedFor time.Duration) ([]Pruned, error) {
	cutoff := time.Now().Add(-unusedFor)
	kinds, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("prune cache: %w", err)
	}
	stale := func(entry string) (time.Time, bool) {
		info, err := os.Stat(entry)
		if err != nil {
			return time.Time{}, false
		}
		return info.ModTime(), info.ModTime().Before(cutoff)
	}
	noWait, cancel := context.WithCancel(context.Background())
	cancel() // a busy lock means the entry is in use: skip it
	var out []Pruned
	var errs *multierror.Error
	for _, k := range kinds {
		kdir := filepath.Join(c.Dir, k.Name())
		ents, _ := os.ReadDir(kdir)
		for _, e := range ents {
			entry := filepath.Join(kdir, e.Name())
			if !e.IsDir() || strings.HasPrefix(e.Name(), tmpPrefix) || !isEntry(entry) {
				continue
			}
			if _, ok := stale(entry); !ok {
				continue
			}
			unlock, err := flock.Lock(noWait, entry+".lock", nil)
			if err != nil {
				continue // in use
			}
			// Again under the lock: a Get may have used it meanwhile.
			used, ok := stale(entry)
			if !ok {
				unlock()
				continue
			}
			p := Pruned{Kind: k.Name(), Key: e.Name(), Bytes: entrySize(entry), LastUsed: used}
			err = removeTree(entry)
			unlock()
			if err != nil {
				c.event("prune-fail", p.Kind, p.Key, 0, err)
				errs = multierror.Append(errs, fmt.Errorf("prune %s/%s: %w", p.Kind, p.Key, err))
				continue
			}
			c.event("prune", p.Kind, p.Key, 0, nil)
			out = append(out, p)
		}
	}
	return out, errs.ErrorOrNil()
}

func isEntry(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ManifestName))
	return err == nil
}

// entrySize adds up the sizes the manifest records (0 if unreadable).
func entrySize(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return 0
	}
	var m Manifest
	if json.Unmarshal(b, &m) != nil {
		return 0
	}
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// sweep removes temporary build directories (<Dir>/<kind>/.tmp-*) last
// modified before cutoff. Errors are ignored: a sweep is housekeeping.
func (c *Cache) sweep(cutoff time.Time) {
	kinds, _ := os.ReadDir(c.Dir)
	for _, k := range kinds {
		if !k.IsDir() {
			continue
		}
		kdir := filepath.Join(c.Dir, k.Name())
		ents, _ := os.ReadDir(kdir)
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), tmpPrefix) {
				continue
			}
			if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
				_ = removeTree(filepath.Join(kdir, e.Name()))
			}
		}
	}
}

// Get returns the directory of the entry <Dir>/<kind>/<key>, building it
// first if it is missing or fails verification.
//
// key must name every input of the build (use Inputs.Key): Get never looks
// inside the entry to decide whether it is stale, only whether it is intact.
// kind and key must be single path elements (no "/", not "." or ".."), and
// key must not start with ".tmp-".
//
// build runs in a fresh, empty, 0700 directory tmpDir next to the entry
// (same file system) and must leave there exactly the artefacts the entry
// should hold: every regular file under tmpDir is recorded in the entry's
// manifest.json (size, mtime and SHA-256) and made read-only (write bits
// cleared, the rest kept: a 0644 disk image becomes 0444, so a base image
// cannot be written through by accident; a 0600 private key becomes 0400),
// and the directory (0700) is then renamed into place atomically. build
// must not write manifest.json itself, and should remove scratch trees it
// no longer needs before returning.
//
// If build returns an error, panics, or ctx ends, tmpDir is removed (after
// detaching any mount a killed builder left inside it, so a removal never
// reaches through a bind mount into the host) and no entry appears. A
// process killed outright leaves tmpDir behind; the next Get of the same
// key removes it (it holds the lock, so the builder is dead), and Open
// removes any older than a day.
//
// Concurrency: Get holds an exclusive flock on <Dir>/<kind>/<key>.lock while
// it verifies or builds, so a second caller (goroutine or process) waits,
// then finds the entry built. Waiting honours ctx.
//
// Verification on a hit: every artefact must exist with its recorded size;
// a file whose mtime differs from the manifest's is re-hashed (hashing every
// hit would cost about 1 s per GB here). A mismatch is logged as
// verify-fail, the entry is deleted and rebuilt (logged as rebuild).
//
// Every outcome is appended as one line to <Dir>/cache.log:
//
//	time=... op=hit|build|rebuild|verify-fail|build-fail|prune kind=... key=... dur=...
//
// A hit or build also marks the entry used (its directory's mtime), which
// is what Prune goes by.
func (c *Cache) Get(ctx context.Context, kind, key string, build func(ctx context.Context, tmpDir string) error) (dir string, err error) {
	if err := checkName("kind", kind); err != nil {
		return "", err
	}
	if err := checkName("key", key); err != nil {
		return "", err
	}
	if strings.HasPrefix(key, tmpPrefix) {
		return "", fmt.Errorf("cache key %q: must not start with %q", key, tmpPrefix)
	}
	kdir := filepath.Join(c.Dir, kind)
	if err := os.MkdirAll(kdir, 0o700); err != nil {
		return "", fmt.Errorf("cache %s: %w", kind, err)
	}
	entry := filepath.Join(kdir, key)

	start := time.Now()
	unlock, err := c.lock(ctx, entry+".lock", kind, key)
	if err != nil {
		return "", err
	}
	defer unlock()

	op := "build"
	if _, statErr := os.Stat(entry); statErr == nil {
		verr := verify(entry, false)
		if verr == nil {
			markUsed(entry)
			c.event("hit", kind, key, time.Since(start), nil)
			return entry, nil
		}
		c.event("verify-fail", kind, key, time.Since(start), verr)
		if err := removeTree(entry); err != nil {
			return "", fmt.Errorf("remove corrupt cache entry %s: %w; remove it by hand", entry, err)
		}
		op = "rebuild"
	}

	// We hold the lock, so any temporary directory of this key belongs to
	// a builder that died: remove it now rather than after a day.
	olds, _ := filepath.Glob(filepath.Join(kdir, tmpPrefix+key+"-*"))
	for _, o := range olds {
		// MkdirTemp adds digits only; anything else is another key's.
		if strings.Trim(strings.TrimPrefix(filepath.Base(o), tmpPrefix+key+"-"), "0123456789") != "" {
			continue
		}
		if err := removeTree(o); err != nil {
			return "", fmt.Errorf("remove a dead build of %s/%s: %w", kind, key, err)
		}
	}

	start = time.Now()
	if err := c.build(ctx, kdir, entry, key, build); err != nil {
		c.event("build-fail", kind, key, time.Since(start), err)
		return "", err
	}
	markUsed(entry)
	c.event(op, kind, key, time.Since(start), nil)
	return entry, nil
}

// markUsed records a use of the entry for Prune. A failure only makes the
// entry look older, so it is ignored.
func markUsed(entry string) {
	now := time.Now()
	_ = os.Chtimes(entry, now, now)
}

// build runs fn in a temporary directory and renames it to entry.
func (c *Cache) build(ctx context.Context, kdir, entry, key string, fn func(context.Context, string) error) (err error) {
	tmp, err := os.MkdirTemp(kdir, tmpPrefix+key+"-")
	if err != nil {
		return fmt.Errorf("cache: make build directory: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = removeTree(tmp)
			panic(p)
		}
		if err != nil {
			if rerr := removeTree(tmp); rerr != nil {
				c.logger().Warn("cache: cannot remove failed build", "dir", tmp, "err", rerr)
			}
		}
	}()
	if err := fn(ctx, tmp); err != nil {
		return fmt.Errorf("build %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("build %s: %w", key, err)
	}
	if err := writeManifest(tmp); err != nil {
		return fmt.Errorf("build %s: %w", key, err)
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		return fmt.Errorf("build %s: %w", key, err)
	}
	if err := os.Rename(tmp, entry); err != nil {
		return fmt.Errorf("build %s: install entry: %w", key, err)
	}
	return nil
}

func checkName(what, s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, `/\`) {
		return fmt.Errorf("cache %s %q: must be one path element", what, s)
	}
	return nil
}

// lock takes the entry's exclusive flock, waiting until it is free or ctx
// ends.
func (c *Cache) lock(ctx context.Context, path, kind, key string) (unlock func(), err error) {
	unlock, err = flock.Lock(ctx, path, func() {
		c.logger().Info("cache: waiting for another build", "kind", kind, "key", key)
	})
	if err != nil {
		return nil, fmt.Errorf("cache %s/%s: %w", kind, key, err)
	}
	return unlock, nil
}

func (c *Cache) logger() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// LogName is the append-only event log in the cache root.
const LogName = "cache.log"

// event records one cache outcome in the slog logger and in cache.log. A
// line is written with one O_APPEND write, so concurrent processes do not
// interleave within a line.
func (c *Cache) event(op, kind, key string, dur time.Duration, err error) {
	attrs := []any{"op", op, "kind", kind, "key", key, "dur", dur.Round(time.Millisecond)}
	line := fmt.Sprintf("time=%s op=%s kind=%s key=%s dur=%s",
		time.Now().UTC().Format(time.RFC3339Nano), op, kind, key, dur.Round(time.Millisecond))
	if err != nil {
		attrs = append(attrs, "err", err)
		line += fmt.Sprintf(" err=%q", err.Error())
	}
	lvl := slog.LevelInfo
	if err != nil {
		lvl = slog.LevelWarn
	}
	c.logger().Log(context.Background(), lvl, "cache", attrs...)
	f, ferr := os.OpenFile(filepath.Join(c.Dir, LogName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if ferr != nil {
		c.logger().Warn("cache: cannot append to log", "err", ferr)
		return
	}
	defer f.Close()
	if _, ferr := f.WriteString(line + "\n"); ferr != nil {
		c.logger().Warn("cache: cannot append to log", "err", ferr)
	}
}

// Manifest lists an entry's artefacts by path relative to the entry.
type Manifest struct {
	Files map[string]FileSum `json:"files"`
}

// FileSum is what the manifest records of one artefact. ModTime lets a hit
// skip re-hashing a file nobody has touched.
type FileSum struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256"`
}

// writeManifest hashes every regular file under dir, makes it read-only and
// writes dir/manifest.json.
func writeManifest(dir string) error {
	m := Manifest{Files: map[string]FileSum{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if !d.Type().IsRegular() {
			// The manifest records regular files only; anything else
			// would sit in the entry unchecked.
			return fmt.Errorf("builder left %s, which is not a regular file (%s): leave only files", rel, d.Type())
		}
		if rel == ManifestName {
			return fmt.Errorf("builder wrote %s itself; leave it to the cache", ManifestName)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.Chmod(p, info.Mode().Perm()&^0o222); err != nil {
			return err
		}
		sum, err := hashFile(p)
		if err != nil {
			return err
		}
		info, err = os.Stat(p)
		if err != nil {
			return err
		}
		m.Files[filepath.ToSlash(rel)] = FileSum{Size: info.Size(), ModTime: info.ModTime().UnixNano(), SHA256: sum}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record artefacts: %w", err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ManifestName), append(b, '\n'), 0o444)
}

// verify checks the entry at dir against its manifest, re-hashing every
// artefact when full is set and otherwise only those whose mtime changed.
// A mismatch wraps ErrCorrupt.
func verify(dir string, full bool) error {
	mp := filepath.Join(dir, ManifestName)
	if st, err := os.Lstat(mp); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s missing or not a regular file", ErrCorrupt, mp)
	}
	b, err := os.ReadFile(mp)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil || m.Files == nil {
		return fmt.Errorf("%w: %s unreadable", ErrCorrupt, mp)
	}
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		// A name must stay inside the entry: relative, clean, no "..".
		if !filepath.IsLocal(n) || path.Clean(n) != n || strings.Contains(n, `\`) || n == ManifestName {
			return fmt.Errorf("%w: %s lists %q, which is not a file of the entry", ErrCorrupt, mp, n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	// Every file of the entry must be a listed artefact or the manifest.
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if _, ok := m.Files[rel]; !ok && rel != ManifestName {
			return fmt.Errorf("%w: %s is not in %s", ErrCorrupt, p, ManifestName)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	for _, n := range names {
		want := m.Files[n]
		p := filepath.Join(dir, filepath.FromSlash(n))
		info, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%w: %s is no longer a regular file (%s)", ErrCorrupt, p, info.Mode().Type())
		}
		if info.Size() != want.Size {
			return fmt.Errorf("%w: %s is %d bytes, manifest says %d", ErrCorrupt, p, info.Size(), want.Size)
		}
		if !full && info.ModTime().UnixNano() == want.ModTime {
			continue
		}
		got, err := hashFile(p)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if got != want.SHA256 {
			return fmt.Errorf("%w: %s has sha256 %s, manifest says %s", ErrCorrupt, p, short(got), short(want.SHA256))
		}
	}
	return nil
}

func short(sum string) string { return sum[:min(12, len(sum))] }

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Inputs names every input of a build, by a label of the caller's choice
// ("recipe", "packages", "file:/etc/foo", "version"). Its Hash is what a
// cache key is made of, so anything that changes the artefact must be in it.
type Inputs map[string][]byte

// Hash is the hex SHA-256 over the inputs in label order, each label and
// value length-prefixed so no two different sets collide by concatenation.
func (in Inputs) Hash() string {
	labels := make([]string, 0, len(in))
	for l := range in {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	h := sha256.New()
	for _, l := range labels {
		fmt.Fprintf(h, "%d:%s%d:", len(l), l, len(in[l]))
		h.Write(in[l])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Key is prefix + "-" + the first 12 hex digits of Hash, e.g.
// "forky-3f2a9c0d1e4b": readable in a listing, unique in practice.
func (in Inputs) Key(prefix string) string {
	return prefix + "-" + in.Hash()[:12]
}

// removeTree deletes dir like os.RemoveAll, but first detaches every mount
// below it. A builder killed mid-way (mmdebstrap mounts /proc, /sys and /dev
// inside its tree) can leave such mounts, and a plain RemoveAll would then
// delete the host's device nodes. If a mount cannot be detached, nothing is
// removed.
func removeTree(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	mounts, err := mountsUnder(abs)
	if err != nil {
		return err
	}
	// Deepest first, so a parent is never busy with a child mount.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("unmount %s before removing %s: %w; unmount it by hand", m, abs, err)
		}
	}
	if left, err := mountsUnder(abs); err != nil || len(left) > 0 {
		return fmt.Errorf("refusing to remove %s: still mounted below it: %v (%v)", abs, left, err)
	}
	return os.RemoveAll(abs)
}

// mountsUnder lists the mount points at or below dir, from
// /proc/self/mountinfo.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	return parseMountinfo(b, dir), nil
}

// parseMountinfo returns the mount points (field 5, octal escapes decoded)
// equal to or below dir.
func parseMountinfo(b []byte, dir string) []string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMountinfo decodes the kernel's \ooo escapes (space, tab,
// newline, backslash) in a mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// KeepFailedLog is for a cache entry's make func: when the build failed
// (and was not cancelled), it copies the build's log tmp/name to failed,
// outside the temporary directory the cache removes, and names it in the
// error; when it succeeded, it removes an earlier failure's copy.
func KeepFailedLog(ctx context.Context, err error, tmp, name, failed string) error {
	if err == nil {
		_ = os.Remove(failed)
		return nil
	}
	if ctx.Err() == nil {
		if data, rerr := os.ReadFile(filepath.Join(tmp, name)); rerr == nil && os.WriteFile(failed, data, 0o600) == nil {
			return fmt.Errorf("%w (full log: %s)", err, failed)
		}
	}
	return err
}
