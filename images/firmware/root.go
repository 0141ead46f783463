package firmware

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"cca-testbed/images"
	"cca-testbed/internal/flock"
)

// KindBuildRoot is the images.Cache kind of build root entries.
const KindBuildRoot = "buildroot"

// Build root entry contents: the tree as a zstd-compressed tar (a cache
// entry holds regular files only, and a fresh copy per build cannot be
// written through), mmdebstrap's log and the recipe.
const (
	rootArchive = "root.tar.zst"
	rootLog     = "build.log"
	rootRecipe  = "recipe.txt"
)

// rootSuite and rootPackages: what TF-RMM and TF-A need to build
// (firmware-src/README.md): GCC >= 13.3 with a C++ cross compiler at
// configure time, CMake, Python with pyelftools, git (TF-RMM's CMake
// wants git work trees), dtc and OpenSSL headers for TF-A's host tools.
const rootSuite = "trixie"

var rootPackages = []string{
	"gcc-aarch64-linux-gnu", "g++-aarch64-linux-gnu", "cmake", "make", "python3",
	"python3-pyelftools", "git", "ninja-build", "perl", "device-tree-compiler",
	"libssl-dev", "gcc", "libc6-dev",
}

// rootOptions are mmdebstrap's options before the suite, target and mirror.
func rootOptions() []string {
	return []string{
		"--mode=root",
		"--format=tar",
		"--arch=amd64",
		"--variant=apt",
		"--include=" + strings.Join(rootPackages, ","),
		`--aptopt=APT::Install-Recommends "false"`,
		// No fsync per file: a failed build root is thrown away whole.
		"--dpkgopt=force-unsafe-io",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/info/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		// The mount point of the build's work directory: the root is
		// mounted read-only during builds, so it must exist beforehand.
		// (The archive's format comes from its name: tar, zstd.)
		`--customize-hook=mkdir -p "$1"/build`,
	}
}

// rootRecipeText is the build root's recipe for humans and the key; the
// mirror is a separate key input (no host name belongs in files).
func rootRecipeText() string {
	var b strings.Builder
	b.WriteString("# cca-testbed firmware build root v2\nmmdebstrap")
	for _, o := range rootOptions() {
		b.WriteString(" \\\n  '" + strings.ReplaceAll(o, "'", `'\''`) + "'")
	}
	b.WriteString(" \\\n  " + rootSuite + " " + rootArchive + " MIRROR\n")
	return b.String()
}

func rootKey(mirror string) string {
	return images.Inputs{"recipe": []byte(rootRecipeText()), "mirror": []byte(mirror)}.Key(rootSuite + "-amd64")
}

// BuildRoot returns the cached Debian trixie amd64 toolchain as a
// tar.zst archive, making it with mmdebstrap (about 1 to 8 minutes,
// network and dpkg bound) when the cache has none for the current recipe
// and mirror. Builds mount its one unpacked copy (rootTree) read-only.
func BuildRoot(ctx context.Context, c *images.Cache, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mirror, err := images.Mirror()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBuildRoot, err)
	}
	key := rootKey(mirror)
	failedLog := filepath.Join(c.Dir, KindBuildRoot, key+".failed.log")
	dir, err := c.Get(ctx, KindBuildRoot, key, func(ctx context.Context, tmp string) error {
		if err := checkHost(); err != nil {
			return err
		}
		log.Info("firmware: making the trixie build root (mmdebstrap, a few minutes)", "key", key)
		start := time.Now()
		err := images.KeepFailedLog(ctx, makeRoot(ctx, tmp, mirror), tmp, rootLog, failedLog)
		if err == nil {
			log.Info("firmware: build root made", "took", time.Since(start).Round(time.Second))
		}
		return err
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, rootArchive), nil
}

func makeRoot(ctx context.Context, tmp, mirror string) error {
	if err := os.WriteFile(filepath.Join(tmp, rootRecipe), []byte(rootRecipeText()), 0o644); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(tmp, rootLog), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// mmdebstrap builds the tree in $TMPDIR before packing it: inside
	// the entry's build directory, which the cache removes on failure.
	scratch := filepath.Join(tmp, "scratch")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return err
	}
	args := append([]string{"env", "TMPDIR=" + scratch, "mmdebstrap"}, rootOptions()...)
	args = append(args, rootSuite, filepath.Join(tmp, rootArchive), mirror)
	// In a private mount namespace: the mounts mmdebstrap makes in the
	// tree (proc, sys, dev) end with it, however it ends.
	if err := runLogged(ctx, logf, "unshare", append(isolate, args...)...); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%w: mmdebstrap %s failed: %v: %s; check the network and the host's apt sources",
			ErrBuildRoot, rootSuite, err, tailOf(logf.Name(), 3))
	}
	return os.RemoveAll(scratch)
}

// checkHost fails fast, with the fix, when a build root cannot be made.
func checkHost() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: making the build root and building in it need root (mmdebstrap --mode=root, chroot); run as root", ErrBuildRoot)
	}
	for _, tool := range []string{"mmdebstrap", "unshare", "chroot", "tar", "xz", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found; run scripts/setup-host", ErrBuildRoot, tool)
		}
	}
	return nil
}

// treeUnusedFor is how long an unpacked build root may go unused before
// the next unpacking of another archive removes it.
const treeUnusedFor = 24 * time.Hour

// rootTree returns the build root archive unpacked, once per archive, at
// <cache>/buildroot/tree-<digest>: every build mounts it read-only, so it
// is never written after unpacking, and a build neither unpacks 16,000
// files first nor deletes them after (which made a cancelled build take
// half a minute to return). The digest is the archive's, from its entry's
// manifest. The tree is not a cache entry (a Debian tree holds symlinks
// and empty device directories, which entries may not); unpacking another
// archive removes trees unused for a day.
func rootTree(ctx context.Context, archive string, log io.Writer) (string, error) {
	entry := filepath.Dir(archive)
	kdir := filepath.Dir(entry)
	data, err := os.ReadFile(filepath.Join(entry, images.ManifestName))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBuildRoot, err)
	}
	var m images.Manifest
	if err := json.Unmarshal(data, &m); err != nil || len(m.Files[rootArchive].SHA256) < 12 {
		return "", fmt.Errorf("%w: %s: no digest for %s; remove %s to have it made again", ErrBuildRoot, images.ManifestName, rootArchive, entry)
	}
	tree := filepath.Join(kdir, "tree-"+m.Files[rootArchive].SHA256[:12])
	unlock, err := flock.Lock(ctx, tree+".lock", nil)
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(tree); err == nil {
		markUsed(tree)
		return tree, nil
	}
	// Unpacked beside, renamed when complete; a killed unpacking leaves
	// a .tmp- directory that the cache's sweep removes after a day.
	tmp, err := os.MkdirTemp(kdir, ".tmp-"+filepath.Base(tree)+"-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	// The device nodes stay out: the host's /dev is bound over /dev.
	if err := runLogged(ctx, log, "tar", "--zstd", "-xf", archive, "-C", tmp, "--exclude=./dev/*"); err != nil {
		_ = os.RemoveAll(tmp)
		if ctx.Err() != nil {
			return "", err
		}
		return "", fmt.Errorf("%w: unpack %s: %v; remove %s to have it made again", ErrBuildRoot, archive, err, entry)
	}
	if err := os.Rename(tmp, tree); err != nil {
		_ = os.RemoveAll(tmp)
		return "", err
	}
	olds, _ := filepath.Glob(filepath.Join(kdir, "tree-*"))
	for _, o := range olds {
		if info, err := os.Stat(o); err == nil && info.IsDir() && o != tree && time.Since(info.ModTime()) > treeUnusedFor {
			if noMountsUnder(o) == nil {
				_ = os.RemoveAll(o)
				_ = os.Remove(o + ".lock")
			}
		}
	}
	return tree, nil
}

// markUsed records a use of the tree, which keeps it from removal.
func markUsed(dir string) {
	now := time.Now()
	_ = os.Chtimes(dir, now, now)
}
