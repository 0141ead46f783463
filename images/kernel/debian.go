package kernel

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"cca-testbed/images"
	"cca-testbed/internal/proc"
)

// Debian's own kernel (cell.DebianKernel) is not built: scripts/setup-host
// fetches the trixie-backports linux-image-<SourceVersion>*-arm64 package
// and the linux-base/-binary/-modules parts it depends on into DebDir, and
// BuildDebian installs them, as a user would, into a throwaway Debian
// trixie arm64 chroot (mmdebstrap, with recommends, and initramfs-tools:
// the package's postinst runs depmod and update-initramfs there). What the
// installation left in /boot and /usr/lib/modules becomes a cache entry
// shaped like a built kernel's, plus the initramfs:
//
//	Image          the kernel (vmlinuz, decompressed when it is gzip)
//	initrd.img     the initramfs update-initramfs generated (MODULES=most)
//	modules.ext4   /usr/lib/modules/<release> as installed, depmod's files
//	               included
//	release        the package's kernel release, e.g. 7.3.4+deb13-arm64
//	config         its /boot/config-<release>
//	packages       "package version" of every .deb installed
//	build.log      mmdebstrap's output
//
// Measured 2026-12-05 on the shared 2-core machine at load 4-10: the
// chroot took 12 minutes (qemu-user runs the arm64 maintainer scripts).

// debianRecipe is part of the entry's key, like recipe for built kernels.
const debianRecipe = "debian 1: trixie arm64 chroot, initramfs-tools, recommends; Image from vmlinuz; modules.ext4 of usr/lib/modules/<release>; initrd as generated"

// debianSuite is the release the backports kernel is made for; its
// initramfs-tools generates the initramfs, and trixie-backports supplies
// the newer linux-base the package pre-depends on.
const debianSuite = "trixie"

// Entry files of a prebuilt kernel besides those of a built one.
const (
	InitrdName   = "initrd.img"
	PackagesName = "packages"
)

// FetchedName is the list scripts/setup-host writes into DebDir once the
// .debs are complete: one "package version" line each.
const FetchedName = ".fetched"

// DebDir is where scripts/setup-host leaves the .debs of Debian's prebuilt
// kernel under the cache directory.
func DebDir(cacheDir string) string {
	return filepath.Join(cacheDir, "src", "linux-image-"+SourceVersion+"-arm64")
}

// BuildDebian returns Debian's prebuilt kernel from the cache, making the
// entry (as root: mmdebstrap --mode=root) when the cache has none for these
// .debs, this recipe and the host's mirror.
func BuildDebian(ctx context.Context, opts Options) (*Kernel, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cache := opts.Cache
	if cache == nil {
		var err error
		if cache, err = images.Open(""); err != nil {
			return nil, err
		}
	}
	dir := DebDir(cache.Dir)
	fetched, err := os.ReadFile(filepath.Join(dir, FetchedName))
	if err != nil {
		return nil, fmt.Errorf("%w: no Debian kernel packages at %s (%v); run scripts/setup-host", ErrNoSource, dir, err)
	}
	debs, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if err != nil || len(debs) == 0 {
		return nil, fmt.Errorf("%w: %s lists packages but holds no .deb; remove it and run scripts/setup-host", ErrNoSource, dir)
	}
	sort.Strings(debs)
	mirror, err := images.Mirror()
	if err != nil {
		return nil, err
	}
	keyed := images.Inputs{"recipe": []byte(debianRecipe), "mirror": []byte(mirror), "fetched": fetched}
	for _, d := range debs {
		sum, err := fileSHA256(d)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoSource, err)
		}
		keyed["deb:"+filepath.Base(d)] = []byte(sum)
	}
	key := keyed.Key("debian")
	failed := filepath.Join(cache.Dir, Kind, key+".failed.log")
	entry, err := cache.Get(ctx, Kind, key, func(ctx context.Context, tmp string) error {
		if err := checkDebianHost(); err != nil {
			return err
		}
		log.Info("debian kernel: installing the packages into a trixie arm64 chroot (mmdebstrap, minutes)", "key", key)
		start := time.Now()
		err := images.KeepFailedLog(ctx, installDebian(ctx, tmp, mirror, debs, fetched), tmp, LogName, failed)
		if err == nil {
			log.Info("debian kernel: made", "took", time.Since(start).Round(time.Second))
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kernel debian: %w", err)
	}
	rel, err := os.ReadFile(filepath.Join(entry, ReleaseName))
	if err != nil {
		return nil, fmt.Errorf("kernel debian: cache entry %s: %w", entry, err)
	}
	pk, err := os.ReadFile(filepath.Join(entry, PackagesName))
	if err != nil {
		return nil, fmt.Errorf("kernel debian: cache entry %s: %w", entry, err)
	}
	return &Kernel{
		Image:       filepath.Join(entry, ImageName),
		ModulesDisk: filepath.Join(entry, ModulesName),
		Initrd:      filepath.Join(entry, InitrdName),
		Release:     strings.TrimSpace(string(rel)),
		Packages:    strings.TrimSpace(string(pk)),
		Dir:         entry,
	}, nil
}

// checkDebianHost fails fast, with the fix, when the chroot cannot be made.
func checkDebianHost() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: installing Debian's kernel package into a chroot needs root (mmdebstrap --mode=root); run as root", ErrNoSource)
	}
	for _, tool := range []string{"mmdebstrap", "unshare", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found; run scripts/setup-host", ErrNoSource, tool)
		}
	}
	if b, err := os.ReadFile("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err != nil || !bytes.HasPrefix(b, []byte("enabled")) {
		return fmt.Errorf("%w: binfmt_misc qemu-aarch64 is not enabled, so the package's arm64 maintainer scripts cannot run; run scripts/setup-host", ErrNoSource)
	}
	return nil
}

// debianOptions are mmdebstrap's options; debs are the .deb paths, out
// where the installed /boot and /usr/lib/modules are copied. Recommends
// are on, as with apt install: initramfs-tools-core recommends busybox
// and zstd, which decide what the initramfs holds and how it is packed.
func debianOptions(debs []string, out string) []string {
	o := []string{
		"--mode=root",
		"--format=null",
		"--arch=arm64",
		"--variant=apt",
		`--aptopt=APT::Install-Recommends "true"`,
		// No fsync per unpacked file: the chroot is thrown away.
		"--dpkgopt=force-unsafe-io",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		// As in images/rootfs: checkDebianHost checked binfmt instead.
		"--skip=check/qemu",
		// Makes the .debs given by path visible inside the chroot.
		"--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount",
		// The package pre-depends on a linux-base newer than trixie's.
		"--include=initramfs-tools,linux-base/" + debianSuite + "-backports",
	}
	for _, d := range debs {
		o = append(o, "--include="+d) // a path: never split on commas
	}
	return append(o, "--customize-hook=copy-out /boot /usr/lib/modules "+out)
}

// debianRecipeText is recipe.txt: the command with paths made generic.
func debianRecipeText(debs []string) string {
	names := make([]string, len(debs))
	for i, d := range debs {
		names[i] = filepath.Join("DEBS", filepath.Base(d))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# cca-testbed %s\nmmdebstrap", debianRecipe)
	for _, o := range debianOptions(names, "OUT") {
		b.WriteString(" \\\n  '" + strings.ReplaceAll(o, "'", `'\''`) + "'")
	}
	fmt.Fprintf(&b, " \\\n  %s - 'deb MIRROR %s main' 'deb MIRROR %s-backports main'\n", debianSuite, debianSuite, debianSuite)
	return b.String()
}

// installDebian makes the entry in tmp: the chroot (in private mount and
// PID namespaces, so mmdebstrap's mounts and processes end with it however
// it ends), then the artefacts from what it copied out.
func installDebian(ctx context.Context, tmp, mirror string, debs []string, fetched []byte) error {
	if err := os.WriteFile(filepath.Join(tmp, "recipe.txt"), []byte(debianRecipeText(debs)), 0o644); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(tmp, LogName), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	scratch, out := filepath.Join(tmp, "scratch"), filepath.Join(tmp, "installed")
	for _, d := range []string{scratch, out} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	argv := []string{"unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc", "--",
		"env", "TMPDIR=" + scratch, "mmdebstrap"}
	argv = append(argv, debianOptions(debs, out)...)
	argv = append(argv, debianSuite, "-",
		fmt.Sprintf("deb %s %s main", mirror, debianSuite), fmt.Sprintf("deb %s %s-backports main", mirror, debianSuite))
	fmt.Fprintf(logf, "$ %s\n", strings.Join(argv, " "))
	if err := proc.Run(ctx, proc.Cmd{Argv: argv, Stdout: logf, Stderr: logf, Lines: 3}); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%w: mmdebstrap %s arm64 with the kernel packages failed: %w; check the network and the host's apt sources", ErrBuild, debianSuite, err)
	}
	if err := packDebian(ctx, tmp, out, logf); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, PackagesName), fetched, 0o644); err != nil {
		return err
	}
	if err := logf.Sync(); err != nil {
		return err
	}
	for _, d := range []string{scratch, out} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return nil
}

// packDebian turns the installed tree (out/boot, out/modules/<release>)
// into the entry's artefacts.
func packDebian(ctx context.Context, tmp, out string, log io.Writer) error {
	mods := filepath.Join(out, "modules")
	ents, err := os.ReadDir(mods)
	if err != nil {
		return fmt.Errorf("%w: the installation left no /usr/lib/modules: %v", ErrBuild, err)
	}
	if len(ents) != 1 || !ents[0].IsDir() {
		return fmt.Errorf("%w: want exactly one kernel release in /usr/lib/modules, found %d entries", ErrBuild, len(ents))
	}
	release := ents[0].Name()
	relDir := filepath.Join(mods, release)
	if _, err := os.Stat(filepath.Join(relDir, "modules.alias")); err != nil {
		return fmt.Errorf("%w: the package's postinst left no modules.alias for %s (depmod did not run?): %v", ErrBuild, release, err)
	}
	boot := filepath.Join(out, "boot")
	vmlinuz := filepath.Join(boot, "vmlinuz-"+release)
	if _, err := os.Stat(vmlinuz); err != nil {
		vmlinuz = filepath.Join(relDir, "vmlinuz") // where the package itself puts it
	}
	if err := DecompressImage(vmlinuz, filepath.Join(tmp, ImageName)); err != nil {
		return err
	}
	initrd := filepath.Join(boot, "initrd.img-"+release)
	if _, err := os.Stat(initrd); err != nil {
		return fmt.Errorf("%w: update-initramfs left no %s: %v", ErrBuild, "/boot/initrd.img-"+release, err)
	}
	for src, dst := range map[string]string{initrd: InitrdName, filepath.Join(relDir, "config"): ConfigName} {
		if err := copyFile(src, filepath.Join(tmp, dst)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ReleaseName), []byte(release+"\n"), 0o644); err != nil {
		return err
	}
	return makeExt4(ctx, mods, filepath.Join(tmp, ModulesName), log)
}

// Offsets in the arm64 Image header (Documentation/arch/arm64/booting.rst).
const (
	imageMagicOffset = 56
	imageMagic       = "ARM\x64"
)

// DecompressImage writes the arm64 Image in vmlinuz to dst: as it is when
// it is already an Image, gunzipped when it is gzip (older Debian arm64
// packages ship vmlinuz gzip-compressed; the realm firmware and the rme
// machine place the kernel with a raw loader, so it must be an Image). An
// EFI zboot image or anything else is refused: only UEFI can boot those.
func DecompressImage(vmlinuz, dst string) error {
	f, err := os.Open(vmlinuz)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBuild, err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrBuild, vmlinuz, err)
		}
		r = zr
	}
	w, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return fmt.Errorf("%w: decompressing %s: %v", ErrBuild, vmlinuz, err)
	}
	if err := w.Close(); err != nil {
		return err
	}
	head := make([]byte, 64)
	g, err := os.Open(dst)
	if err != nil {
		return err
	}
	defer g.Close()
	if _, err := io.ReadFull(g, head); err != nil || string(head[imageMagicOffset:imageMagicOffset+4]) != imageMagic {
		what := "not an arm64 Image"
		if len(head) >= 8 && head[0] == 'M' && head[1] == 'Z' && string(head[4:8]) == "zimg" {
			what = "an EFI zboot image, which only UEFI can boot"
		}
		return fmt.Errorf("%w: %s is %s (no \"ARM\\x64\" magic at offset 56)", ErrBuild, vmlinuz, what)
	}
	return nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
