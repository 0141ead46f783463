// Package firmware builds the Arm reference firmware for QEMU's RME
// machine — TF-A with the RMM dispatcher and TF-RMM, the kernel as BL33 —
// from pinned upstream sources, and caches the flash image in the shared
// images.Cache like the kernels and the rootfs.
//
// Two builds are known (Specs): tf-rmm-0.9 (TF-A v2.15.0 + TF-RMM v0.9.0,
// RMM specification 2.0) and tf-rmm-0.8 (TF-A v2.14.0 + TF-RMM v0.8.0,
// RMM 1.x). TF-RMM needs GCC >= 13.3, newer than the Debian 12 host's
// cross compiler, so every build runs in a Debian trixie amd64 build root
// made with mmdebstrap and cached by its recipe (cache kind "buildroot",
// a tar.zst, unpacked once beside it). A build runs in a private mount
// and PID namespace (unshare) chrooted into a read-only bind mount of that
// tree: nothing it mounts outlives it, and nothing it starts survives a
// cancellation.
//
// Sources (Options.Sources) are a directory holding the release tarballs
// named in SHA256SUMS, or upstream git checkouts at the pinned tags; the
// default is $CCA_TESTBED_FIRMWARE_SRC, else ../shared/firmware-src beside
// the repository. Tarball digests are pinned here, and a tarball that does
// not match is refused by name. Sources are unpacked onto the build's
// tmpfs, never into the repository.
//
// A firmware cache entry (kind "firmware", key <name>-<digest of sources,
// options and build root>) holds:
//
//	flash.bin   bl1.bin at 0, fip.bin at 256 KiB (boot with -bios; load
//	            the kernel Image at KernelBase)
//	info.json   name, versions, options, sources (see Info)
//	build.log   the whole build's output
//
// A failed build leaves its log at <cache>/firmware/<key>.failed.log.
// The sources are unpacked and built on a tmpfs inside the build's
// namespace, so nothing of them is left to delete, even after a kill.
//
// Tests: go test ./images/firmware (as root, after scripts/setup-host).
// The unit tests take seconds; TestBuild builds tf-rmm-0.9 for real into
// the shared cache (-builds=all for both): measured on the shared 2-core
// machine at load 13 to 24, the build root took 8.5 minutes (mmdebstrap)
// and a firmware build about 10; a cache hit takes under 0.1 s. The fault
// tests (a failing build, cancellation of a build and of mmdebstrap, an
// archive that does not answer) reuse the build root and take about
// 5 minutes together.
package firmware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"cca-testbed/images"
)

// Kind is the images.Cache kind of firmware entries.
const Kind = "firmware"

// KernelBase is where TF-A's BL31 jumps to the kernel (PRELOADED_BL33_BASE):
// the flash image does not contain the kernel, so the boot must place the
// arm64 Image there (QEMU: -device loader,file=Image,addr=0x60000000,force-raw=on).
const KernelBase = 0x60000000

// FIPOffset is where fip.bin starts in flash.bin (64 blocks of 4 KiB),
// the address TF-A's qemu platform reads it from.
const FIPOffset = 64 * 4096

// Entry file names.
const (
	FlashName = "flash.bin"
	InfoName  = "info.json"
	LogName   = "build.log"
)

// Errors, each wrapped with what was wrong and what to do.
var (
	// ErrSource: a source is missing, unreadable, or not what is pinned.
	ErrSource = errors.New("firmware source")
	// ErrBuildRoot: the trixie build root could not be made.
	ErrBuildRoot = errors.New("firmware build root")
	// ErrBuild: TF-RMM or TF-A failed to build.
	ErrBuild = errors.New("firmware build failed")
	// ErrUnknown: no build of that name.
	ErrUnknown = errors.New("unknown firmware build")
)

// Source is one pinned upstream source.
type Source struct {
	// Project is the top directory in the tarball: "tf-a" or "tf-rmm".
	Project string
	// Tag is the upstream git tag a checkout must be at.
	Tag string
	// Tarball is the release tarball's file name in the sources directory.
	Tarball string
	// SHA256 is the tarball's pinned digest (hex).
	SHA256 string
}

// CheckoutName is the directory name a git checkout of s has in the
// sources directory: the tarball's name without "-src" and ".tar.xz".
func (s Source) CheckoutName() string {
	n := strings.TrimSuffix(s.Tarball, ".tar.xz")
	return strings.TrimSuffix(n, "-src")
}

// Spec is one firmware build: which sources, with which options.
type Spec struct {
	Name string // "tf-rmm-0.9"
	TFA  Source
	RMM  Source
	// RMMVersion and TFAVersion are the versions the binaries announce;
	// Build checks that the built images carry them.
	RMMVersion, TFAVersion string
	// Implements says which RMM specification revisions the RMM speaks.
	Implements string
	// RMMOptions are TF-RMM's CMake cache settings, TFAOptions TF-A's make
	// variables (KEY=VALUE); both are part of the cache key.
	RMMOptions []string
	TFAOptions []string
}

// rmmOptions: QEMU virt, a release build, and LOG_LEVEL 40 (INFO) so the
// RMM's banner, its RMI/RSI ABI revisions and its log of the host's calls
// reach the console, which is how a run records what answered.
var rmmOptions = []string{"RMM_CONFIG=qemu_virt_defcfg", "CMAKE_BUILD_TYPE=Release", "LOG_LEVEL=40"}

// tfaOptions: the RME platform with the kernel as BL33, preloaded at
// KernelBase by QEMU (so flash.bin holds no kernel and one firmware image
// serves every variant). RMM= is added by the build.
var tfaOptions = []string{
	"PLAT=qemu", "ENABLE_RME=1", "QEMU_USE_GIC_DRIVER=QEMU_GICV3",
	"ARM_LINUX_KERNEL_AS_BL33=1", "PRELOADED_BL33_BASE=0x" + strconv.FormatUint(KernelBase, 16),
}

var specs = []Spec{
	{
		Name:       "tf-rmm-0.9",
		TFA:        Source{Project: "tf-a", Tag: "v2.15.0", Tarball: "tf-a-v2.15.0.tar.xz", SHA256: "fad777ade7163acdcaaa976ecb796bf54a22dcdf246c87b716a501527fabb130"},
		RMM:        Source{Project: "tf-rmm", Tag: "tf-rmm-v0.9.0", Tarball: "tf-rmm-v0.9.0-src.tar.xz", SHA256: "6fac445538defbf0ac071adb4364aa7ad3e3ce1ebf7abbdcdf1a6525e78e0eee"},
		TFAVersion: "v2.15.0", RMMVersion: "0.9.0",
		Implements: "RMM 2.0 (RMI 2.0, RSI 1.1)",
		RMMOptions: rmmOptions, TFAOptions: tfaOptions,
	},
	{
		Name:       "tf-rmm-0.8",
		TFA:        Source{Project: "tf-a", Tag: "v2.14.0", Tarball: "tf-a-v2.14.0.tar.xz", SHA256: "fb702cb8b331c5340156ca9faf931e78e423eb70f2121e70275e376515ebdde9"},
		RMM:        Source{Project: "tf-rmm", Tag: "tf-rmm-v0.8.0", Tarball: "tf-rmm-v0.8.0-src.tar.xz", SHA256: "0fb4454382db8177c4dbf390004b8fbf7b945c30a611bc890db1681122790dc3"},
		TFAVersion: "v2.14.0", RMMVersion: "0.8.0",
		Implements: "RMM 1.x (RMI 1.0 and 1.1)",
		RMMOptions: rmmOptions, TFAOptions: tfaOptions,
	},
}

// Specs returns the known builds, newest first.
func Specs() []Spec {
	out := make([]Spec, len(specs))
	copy(out, specs)
	for i := range out {
		out[i].RMMOptions = append([]string(nil), out[i].RMMOptions...)
		out[i].TFAOptions = append([]string(nil), out[i].TFAOptions...)
	}
	return out
}

// Names lists the known builds' names.
func Names() []string {
	var n []string
	for _, s := range specs {
		n = append(n, s.Name)
	}
	return n
}

// Lookup returns the build called name (a copy: changing it changes
// nothing here).
func Lookup(name string) (Spec, error) {
	for _, s := range Specs() {
		if s.Name == name {
			return s, nil
		}
	}
	return Spec{}, fmt.Errorf("%w %q: known builds are %s", ErrUnknown, name, strings.Join(Names(), ", "))
}

// Options configures Build. The zero value builds from the default sources
// into the default cache with one job per CPU.
type Options struct {
	// Cache receives the build root and firmware entries; nil opens the
	// default cache.
	Cache *images.Cache
	// Sources is the directory of tarballs or checkouts; "" means
	// DefaultSources().
	Sources string
	// Jobs is the build's parallelism; 0 means runtime.NumCPU().
	Jobs int
	// Log receives progress records; nil discards them.
	Log *slog.Logger
}

// Firmware is a built flash image in the cache. Its files are read-only.
type Firmware struct {
	Info
	Flash string // flash.bin
	Log   string // build.log
	Dir   string // the cache entry
}

// Info is what info.json records about a build.
type Info struct {
	Name       string   `json:"name"`
	TFA        string   `json:"tf_a"`   // "v2.15.0"
	RMM        string   `json:"tf_rmm"` // "0.9.0"
	Implements string   `json:"implements"`
	KernelBase string   `json:"kernel_base"` // "0x60000000"
	Sources    []string `json:"sources"`     // "tf-a-v2.15.0.tar.xz sha256:..." or "tf-a-v2.15.0 git:<commit>"
	RMMOptions []string `json:"rmm_options"`
	TFAOptions []string `json:"tfa_options"`
	BuildRoot  string   `json:"build_root"` // its cache key
	Toolchain  string   `json:"toolchain"`  // the cross compiler's first --version line
}

// String is one line for humans: "tf-rmm-0.9: TF-A v2.15.0 + TF-RMM v0.9.0, RMM 2.0 (...)".
func (i Info) String() string {
	return fmt.Sprintf("%s: TF-A %s + TF-RMM v%s, %s", i.Name, i.TFA, i.RMM, i.Implements)
}

// recipeVersion is part of every firmware key: bump it when the build
// steps change in a way the options and script text do not show.
const recipeVersion = 1

// Build returns the flash image for s, building it (and the build root)
// unless the cache holds an entry for the same sources, options and build
// root. Cancelling ctx stops the build and leaves nothing running or
// mounted.
func Build(ctx context.Context, opts Options, s Spec) (*Firmware, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := opts.Sources
	if dir == "" {
		var err error
		if dir, err = DefaultSources(); err != nil {
			return nil, err
		}
	}
	srcs, err := resolveSources(ctx, dir, s.TFA, s.RMM)
	if err != nil {
		return nil, fmt.Errorf("firmware %s: %w", s.Name, err)
	}
	c := opts.Cache
	if c == nil {
		if c, err = images.Open(""); err != nil {
			return nil, err
		}
	}
	// The key names the build root by its own key, so a cache hit never
	// touches the root (verifying its 16,000 files costs most of a second).
	mirror, err := images.Mirror()
	if err != nil {
		return nil, fmt.Errorf("firmware %s: %w: %w", s.Name, ErrBuildRoot, err)
	}
	rootEntry := filepath.Join(c.Dir, KindBuildRoot, rootKey(mirror), rootArchive)
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	b := &build{spec: s, srcs: srcs, root: rootEntry, jobs: jobs, log: log}
	key := b.inputs().Key(s.Name)
	failedLog := filepath.Join(c.Dir, Kind, key+".failed.log")
	entry, err := c.Get(ctx, Kind, key, func(ctx context.Context, tmp string) error {
		root, err := BuildRoot(ctx, c, log)
		if err != nil {
			return err
		}
		if root != rootEntry {
			return fmt.Errorf("%w: made at %s, expected at %s", ErrBuildRoot, root, rootEntry)
		}
		log.Info("firmware: building", "name", s.Name, "key", key)
		start := time.Now()
		err = images.KeepFailedLog(ctx, b.run(ctx, tmp), tmp, LogName, failedLog)
		if err == nil {
			log.Info("firmware: built", "name", s.Name, "took", time.Since(start).Round(time.Millisecond))
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("firmware %s: %w", s.Name, err)
	}
	fw, err := Load(entry)
	if err != nil {
		return nil, fmt.Errorf("firmware %s: %w", s.Name, err)
	}
	return fw, nil
}

// Load reads a firmware cache entry.
func Load(entry string) (*Firmware, error) {
	b, err := os.ReadFile(filepath.Join(entry, InfoName))
	if err != nil {
		return nil, fmt.Errorf("cache entry %s: %w", entry, err)
	}
	fw := &Firmware{Flash: filepath.Join(entry, FlashName), Log: filepath.Join(entry, LogName), Dir: entry}
	if err := json.Unmarshal(b, &fw.Info); err != nil {
		return nil, fmt.Errorf("cache entry %s: %s: %w", entry, InfoName, err)
	}
	return fw, nil
}
