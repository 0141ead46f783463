package firmware

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"cca-testbed/images"
)

// build is one firmware build's resolved inputs.
type build struct {
	spec Spec
	srcs []resolved // TF-A, TF-RMM
	root string     // the build root archive
	jobs int
	log  *slog.Logger
}

// Paths inside the build root while building (/build is the work dir).
const (
	rmmBuildDir = "/build/rmm"
	tfaBuildDir = "/build/tfa"
	rmmImage    = rmmBuildDir + "/Release/rmm.img"
	tfaOut      = tfaBuildDir + "/qemu/release"
)

// stageMarker starts the log line that names the step running, so a
// failure can say which one failed.
const stageMarker = "== cca-testbed: "

// script is build.sh, run by /bin/sh -eu inside the build root. Its text
// (with every option) is part of the cache key; the job count is not.
func (b *build) script() string {
	var s strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&s, format+"\n", a...) }
	w("# cca-testbed firmware build v%d: %s", recipeVersion, b.spec.Name)
	w("export CROSS_COMPILE=aarch64-linux-gnu-")
	// TF-RMM's CMake insists on git work trees for itself and each
	// populated ext/ submodule (firmware-src/README.md); a tarball has
	// none, so each becomes a one-commit repository. Fixed identity and
	// dates keep the commits the same every time.
	w("export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'")
	w("export GIT_AUTHOR_NAME=cca-testbed GIT_AUTHOR_EMAIL=cca-testbed@localhost GIT_AUTHOR_DATE=2026-01-01T00:00:00Z")
	w("export GIT_COMMITTER_NAME=cca-testbed GIT_COMMITTER_EMAIL=cca-testbed@localhost GIT_COMMITTER_DATE=2026-01-01T00:00:00Z")
	w(`gitify() { if [ ! -e "$1/.git" ] && [ -n "$(ls -A "$1")" ]; then git -C "$1" init -q && git -C "$1" add -A && git -C "$1" commit -q -m import; fi; }`)
	w("echo '%sstage tf-rmm git'", stageMarker)
	w("gitify /build/src/tf-rmm")
	w("for d in /build/src/tf-rmm/ext/*; do gitify \"$d\"; done")
	w("aarch64-linux-gnu-gcc --version | head -n 1 > /build/out/toolchain")
	var defs []string
	for _, o := range b.spec.RMMOptions {
		defs = append(defs, quote("-D"+o))
	}
	w("echo '%sstage tf-rmm configure'", stageMarker)
	w("cmake %s -S /build/src/tf-rmm -B %s", strings.Join(defs, " "), rmmBuildDir)
	w("echo '%sstage tf-rmm build'", stageMarker)
	w(`cmake --build %s -j"$JOBS"`, rmmBuildDir)
	var vars []string
	for _, o := range b.spec.TFAOptions {
		vars = append(vars, quote(o))
	}
	w("echo '%sstage tf-a build'", stageMarker)
	w(`make -C /build/src/tf-a BUILD_BASE=%s %s RMM=%s -j"$JOBS" all fip`, tfaBuildDir, strings.Join(vars, " "), rmmImage)
	w("cp %s/bl1.bin %s/fip.bin /build/out/", tfaOut, tfaOut)
	w("echo '%sstage done'", stageMarker)
	return s.String()
}

// quote quotes s for sh when it needs it.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`*?[]{}|&;<>()#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// inputs is everything that decides the flash image.
func (b *build) inputs() images.Inputs {
	in := images.Inputs{
		"version":   []byte(fmt.Sprint(recipeVersion)),
		"script":    []byte(b.script()),
		"buildroot": []byte(filepath.Base(filepath.Dir(b.root))),
	}
	for _, s := range b.srcs {
		in["source:"+s.Project] = []byte(s.id)
	}
	return in
}

// run builds into tmp (the cache entry being made).
func (b *build) run(ctx context.Context, tmp string) error {
	logPath := filepath.Join(tmp, LogName)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	out := filepath.Join(tmp, "out")
	mnt := filepath.Join(tmp, "mnt")
	for _, d := range []string{out, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	tree, err := rootTree(ctx, b.root, logf)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "build.sh"), []byte(b.script()), 0o644); err != nil {
		return err
	}
	b.log.Info("firmware: unpacking the sources and compiling TF-RMM and TF-A in the build root", "name", b.spec.Name, "jobs", b.jobs)
	if err := runInRoot(ctx, logf, tree, mnt, out, b.jobs, b.srcs); err != nil {
		if ctx.Err() != nil {
			return err
		}
		_ = logf.Sync()
		stage := lastStage(logPath)
		if strings.HasPrefix(stage, "unpack ") {
			return fmt.Errorf("%w: %s failed (%v); last lines: %s", ErrSource, stage, err, tailOf(logPath, 3))
		}
		return fmt.Errorf("%w: %s failed (%v); last lines: %s", ErrBuild, stage, err, tailOf(logPath, 6))
	}
	host := func(name string) string { return filepath.Join(out, name) }
	flash := filepath.Join(tmp, FlashName)
	if err := assemble(host("bl1.bin"), host("fip.bin"), flash); err != nil {
		return fmt.Errorf("%w: %v", ErrBuild, err)
	}
	if err := b.checkVersions(flash); err != nil {
		return err
	}
	tc, _ := os.ReadFile(host("toolchain"))
	info := Info{
		Name: b.spec.Name, TFA: b.spec.TFAVersion, RMM: b.spec.RMMVersion, Implements: b.spec.Implements,
		KernelBase: fmt.Sprintf("0x%x", KernelBase),
		RMMOptions: b.spec.RMMOptions, TFAOptions: b.spec.TFAOptions,
		BuildRoot: filepath.Base(filepath.Dir(b.root)), Toolchain: strings.TrimSpace(string(tc)),
	}
	for _, s := range b.srcs {
		info.Sources = append(info.Sources, s.describe())
	}
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, InfoName), append(data, '\n'), 0o644); err != nil {
		return err
	}
	// The namespaces are gone with the build, so nothing is mounted here
	// any more; check before deleting all the same.
	if err := noMountsUnder(tmp); err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	return os.Remove(mnt)
}

// lastStage is the last step build.sh announced ("tf-rmm configure"),
// or "the build" before the first.
func lastStage(logPath string) string {
	data, _ := os.ReadFile(logPath)
	stage := "the build"
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, stageMarker+"stage "); ok {
			stage = strings.TrimSpace(rest)
		}
	}
	return stage
}

// assemble writes flash.bin: bl1 at 0, the FIP at FIPOffset.
func assemble(bl1Path, fipPath, out string) error {
	bl1, err := os.ReadFile(bl1Path)
	if err != nil {
		return fmt.Errorf("TF-A left no bl1.bin: %v", err)
	}
	fip, err := os.ReadFile(fipPath)
	if err != nil {
		return fmt.Errorf("TF-A left no fip.bin: %v", err)
	}
	if len(bl1) > FIPOffset {
		return fmt.Errorf("bl1.bin is %d bytes, more than the %d before the FIP", len(bl1), FIPOffset)
	}
	img := make([]byte, FIPOffset+len(fip))
	copy(img, bl1)
	copy(img[FIPOffset:], fip)
	return os.WriteFile(out, img, 0o644)
}

// checkVersions makes sure the flash image carries the versions the spec
// names: TF-A's "v2.15.0(release)" build message and TF-RMM's version
// string (in the FIP's RMM image), so a mislabelled source cannot pass.
func (b *build) checkVersions(flash string) error {
	img, err := os.ReadFile(flash)
	if err != nil {
		return err
	}
	if !bytes.Contains(img, []byte(b.spec.TFAVersion+"(")) {
		return fmt.Errorf("%w: flash.bin does not carry TF-A %s's version string; are the sources those of %s?", ErrBuild, b.spec.TFAVersion, b.spec.TFA.Tag)
	}
	if !bytes.Contains(img, []byte("\x00"+b.spec.RMMVersion+"\x00")) {
		return fmt.Errorf("%w: flash.bin does not carry TF-RMM %s's version string; are the sources those of %s?", ErrBuild, b.spec.RMMVersion, b.spec.RMM.Tag)
	}
	return nil
}

// noMountsUnder fails if the host's mount table has anything at or below
// dir.
func noMountsUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			return fmt.Errorf("%s is still mounted after the build; unmount it by hand", f[4])
		}
	}
	return nil
}
