// Package kernel builds the testbed's arm64 kernel for each variant, from
// Debian's linux-source package (unpacked by scripts/setup-host), the
// kernel-configs directory (base.config, the variant's fragment, patches,
// and the testbed's own kernel code in src/), and caches the result in the
// shared images.Cache under kind "kernel".
//
// Every variant is built as a series in one shared tree and build
// directory (BuildSeries): the glue variants of kernel-configs (Build)
// as the hook patches plus one patch creating src/, the recipes of
// variants/ (stock among them) and a user's series as they are. kbuild's
// own dependency tracking then makes a variant switch a rebuild of what
// the two patch sets touch (about a minute) rather than a cold build, and
// a cold cache compiles one kernel in full.
// A cache entry holds:
//
//	Image          the arm64 kernel image, booted with -kernel
//	modules.ext4   an ext4 file system (label "modules") holding
//	               <release>/... as installed by modules_install, with
//	               depmod's modules.alias and modules.dep; mount it at
//	               /lib/modules
//	release        `make kernelrelease`, e.g. 7.3.4-platform
//	config         the .config the kernel was built with
//	build.log      make's output
//
// Tests: go test ./images/kernel (after scripts/setup-host). The unit tests take
// milliseconds; TestBuildVariants builds every variant for real: about
// 5 minutes cold on 2 cores, then seconds per variant, and nothing at all
// once the cache holds them.
package kernel

import (
	"bytes"
	"cca-testbed/internal/proc"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"cca-testbed/cell"
	"cca-testbed/images"
	kernelconfigs "cca-testbed/kernel-configs"
	"cca-testbed/series"
)

// SourceVersion is the Debian linux-source package the kernels are built
// from; scripts/setup-host unpacks it to <cache>/src/linux-source-<version>.
const SourceVersion = "7.3"

// Kind is the images.Cache kind of kernel entries.
const Kind = "kernel"

// ErrNoSource is wrapped when the kernel source or a host tool is missing.
var ErrNoSource = errors.New("kernel build prerequisite missing")

// ErrBuild is wrapped when a build step (make, depmod, mkfs.ext4) fails.
var ErrBuild = errors.New("kernel build failed")

// Options configures Build. The zero value builds from the embedded
// kernel-configs into the default cache with one job per CPU.
type Options struct {
	// Cache receives the entries. nil opens images.DefaultDir().
	Cache *images.Cache
	// Configs holds base.config, <variant>.config, patches/ and src/.
	// nil uses the copy compiled into the binary (kernel-configs.FS).
	Configs fs.FS
	// Source is the pristine kernel tree. "" means
	// <cache>/src/linux-source-<SourceVersion>.
	Source string
	// Jobs is make's -j. 0 means runtime.NumCPU().
	Jobs int
	// CrossCompile is the toolchain prefix. "" means "aarch64-linux-gnu-".
	CrossCompile string
	// Log receives progress records; nil discards them.
	Log *slog.Logger
}

// Kernel is a built kernel in the cache. Its files are read-only.
type Kernel struct {
	Image       string // path of the arm64 Image
	ModulesDisk string // path of modules.ext4 (mount at /lib/modules)
	Release     string // kernel release, e.g. "7.3.4-platform"
	Dir         string // the cache entry holding both
	// Initrd is the initramfs to boot with; "" for the kernels the
	// testbed builds (virtio and ext4 built in). Debian's prebuilt
	// kernel needs the one its installation generated (BuildDebian).
	Initrd string
	// Packages is the provenance of a prebuilt kernel: "package version"
	// lines of the .debs it came from; "" for built kernels.
	Packages string
}

// Entry file names.
const (
	ImageName   = "Image"
	ModulesName = "modules.ext4"
	ReleaseName = "release"
	ConfigName  = "config"
	LogName     = "build.log"
)

// inputs is what a glue variant adds to base.config (which BuildSeries
// reads itself).
type inputs struct {
	variant []byte
	patches map[string][]byte // patches/<name>
	src     map[string][]byte // src/<name>
}

func readInputs(fsys fs.FS, v cell.Variant) (*inputs, error) {
	in := &inputs{patches: map[string][]byte{}, src: map[string][]byte{}}
	var err error
	if in.variant, err = fs.ReadFile(fsys, string(v)+".config"); err != nil {
		return nil, fmt.Errorf("%w: kernel-configs has no fragment for variant %q: %v", ErrNoSource, v, err)
	}
	for dir, m := range map[string]map[string][]byte{"patches": in.patches, "src": in.src} {
		ents, err := fs.ReadDir(fsys, dir)
		if err != nil {
			return nil, fmt.Errorf("%w: kernel-configs/%s: %v", ErrNoSource, dir, err)
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || (dir == "patches" && !strings.HasSuffix(e.Name(), ".patch")) {
				continue
			}
			b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
			if err != nil {
				return nil, fmt.Errorf("%w: kernel-configs: %v", ErrNoSource, err)
			}
			m[e.Name()] = b
		}
	}
	if len(in.src) == 0 {
		return nil, fmt.Errorf("%w: kernel-configs/src is empty", ErrNoSource)
	}
	return in, nil
}

// srcDir is where kernel-configs/src lands in the tree; patch 0001 hooks
// it into drivers/virt/coco/{Kconfig,Makefile}.
const srcDir = "drivers/virt/coco/cca_testbed"

// recipe is glue variant v as a series for the shared series tree: the
// hook patches (patches/, in name order), then one patch creating src/
// under srcDir, last so that an edit to the glue's code reapplies only
// that patch. A switch between a glue variant and a recipe then rebuilds
// what their patches touch, not a second tree.
func (in *inputs) recipe(v cell.Variant) (*series.Recipe, error) {
	names := slices.Sorted(maps.Keys(in.patches))
	r := &series.Recipe{Name: string(v), Fragment: in.variant,
		Provenance: series.Provenance{Who: "cca-testbed", Source: "kernel-configs", Format: "glue"}}
	add := func(name string, diff []byte) error {
		files, err := series.ParseDiff(diff)
		if err != nil {
			return fmt.Errorf("%w: kernel-configs/%s: %v", ErrNoSource, name, err)
		}
		r.Patches = append(r.Patches, series.Patch{Index: len(r.Patches) + 1, Name: name, Subject: name, Diff: diff, Files: files})
		return nil
	}
	for _, n := range names {
		if err := add("patches/"+n, in.patches[n]); err != nil {
			return nil, err
		}
	}
	if err := add("src/", newFilesPatch(srcDir, in.src)); err != nil {
		return nil, err
	}
	return r, nil
}

// newFilesPatch is a unified diff creating each of files under dir.
func newFilesPatch(dir string, files map[string][]byte) []byte {
	var b bytes.Buffer
	for _, n := range slices.Sorted(maps.Keys(files)) {
		data := files[n]
		lines := strings.SplitAfter(string(data), "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		fmt.Fprintf(&b, "--- /dev/null\n+++ b/%s/%s\n@@ -0,0 +1,%d @@\n", dir, n, len(lines))
		for _, l := range lines {
			b.WriteString("+" + l)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteString("\n\\ No newline at end of file\n")
		}
	}
	return b.Bytes()
}

// builder carries one Build call's resolved settings.
type builder struct {
	opts     Options
	log      *slog.Logger
	cacheDir string
	source   string
	sourceID string
	compiler string
	cross    string
}

// Build returns the kernel for glue variant v (kernel-configs: base.config,
// v's fragment, patches/ and src/), building it in the series tree
// (BuildSeries) unless the cache already holds one built from the same
// inputs. Builds (in this process or another) take turns on the shared
// build directory; waiting honours ctx, and cancelling ctx stops make.
func Build(ctx context.Context, opts Options, v cell.Variant) (*Kernel, error) {
	if _, err := cell.ParseVariant(string(v)); err != nil {
		return nil, err
	}
	fsys := opts.Configs
	if fsys == nil {
		fsys = kernelconfigs.FS
	}
	in, err := readInputs(fsys, v)
	if err != nil {
		return nil, err
	}
	r, err := in.recipe(v)
	if err != nil {
		return nil, err
	}
	return BuildSeries(ctx, opts, r)
}

// newBuilder resolves opts: the cache, the pristine source and its
// identity, the cross compiler.
func newBuilder(ctx context.Context, opts Options) (*builder, *images.Cache, error) {
	b := &builder{opts: opts, log: opts.Log, cross: opts.CrossCompile}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.cross == "" {
		b.cross = "aarch64-linux-gnu-"
	}
	cache := opts.Cache
	if cache == nil {
		var err error
		if cache, err = images.Open(""); err != nil {
			return nil, nil, err
		}
	}
	b.cacheDir = cache.Dir
	b.source = opts.Source
	if b.source == "" {
		b.source = filepath.Join(cache.Dir, "src", "linux-source-"+SourceVersion)
	}
	stamp, err := os.ReadFile(filepath.Join(b.source, ".unpacked"))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: no unpacked kernel source at %s (%v); run scripts/setup-host", ErrNoSource, b.source, err)
	}
	b.sourceID = strings.TrimSpace(string(stamp))
	if b.compiler, err = b.compilerVersion(ctx); err != nil {
		return nil, nil, err
	}
	return b, cache, nil
}

func (b *builder) compilerVersion(ctx context.Context) (string, error) {
	out, err := proc.Output(ctx, proc.Cmd{Argv: []string{b.cross + "gcc", "--version"}})
	if err != nil {
		return "", fmt.Errorf("%w: %sgcc --version: %v; run scripts/setup-host (it installs gcc-aarch64-linux-gnu)", ErrNoSource, b.cross, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return first, nil
}

// workDir is <cache>/kbuild: the patched trees, the shared build directory
// and its lock. Nothing in it is an artefact; deleting it costs one cold
// build.
func (b *builder) workDir() string { return filepath.Join(b.cacheDir, "kbuild") }

// compile configures and builds name's kernel from tree in the build
// directory obj, and packages it into out (a cache entry being made):
// frag is what configures it, want what must have taken (see configure).
// The caller holds the build lock.
func (b *builder) compile(ctx context.Context, name, tree, obj string, frag, want Fragment, cfgKey string, start time.Time, out string) error {
	if err := os.MkdirAll(obj, 0o700); err != nil {
		return err
	}
	logPath := filepath.Join(obj, "cca-testbed-"+name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	mk := &maker{tree: tree, obj: obj, cross: b.cross, log: logf, logPath: logPath, ccache: ccacheDir(b.workDir())}

	b.log.Info("kbuild: configuring", "variant", name, "tree", tree, "build", obj)
	if err := b.configure(ctx, mk, name, frag, want, cfgKey); err != nil {
		return err
	}

	jobs := b.opts.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	b.log.Info("kbuild: compiling", "variant", name, "jobs", jobs)
	if err := mk.run(ctx, "-j"+strconv.Itoa(jobs), "Image", "modules"); err != nil {
		return err
	}
	compiled := time.Since(start)

	modRoot := filepath.Join(obj, ".cca-testbed-modinst")
	if err := os.RemoveAll(modRoot); err != nil {
		return err
	}
	if err := mk.run(ctx, "INSTALL_MOD_PATH="+modRoot, "modules_install"); err != nil {
		return err
	}
	var rel bytes.Buffer
	if err := mk.runTo(ctx, &rel, "-s", "kernelrelease"); err != nil {
		return err
	}
	release := strings.TrimSpace(rel.String())
	modules := filepath.Join(modRoot, "lib", "modules")
	if _, err := os.Stat(filepath.Join(modules, release, "modules.alias")); err != nil {
		return fmt.Errorf("%w: modules_install left no modules.alias for %s (is depmod installed? see %s): %v", ErrBuild, release, logPath, err)
	}
	if err := makeExt4(ctx, modules, filepath.Join(out, ModulesName), logf); err != nil {
		return err
	}
	if err := os.RemoveAll(modRoot); err != nil {
		return err
	}
	for src, dst := range map[string]string{
		filepath.Join(obj, "arch", "arm64", "boot", "Image"): ImageName,
		filepath.Join(obj, ".config"):                        ConfigName,
	} {
		if err := copyFile(src, filepath.Join(out, dst)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(out, ReleaseName), []byte(release+"\n"), 0o644); err != nil {
		return err
	}
	b.log.Info("kbuild: built", "variant", name, "release", release,
		"compile", compiled.Round(time.Millisecond), "total", time.Since(start).Round(time.Millisecond))
	if err := logf.Sync(); err != nil {
		return err
	}
	return copyFile(logPath, filepath.Join(out, LogName))
}

// configure writes the build directory's .config for the fragment. The
// first time, that is allnoconfig with the merged fragment as
// KCONFIG_ALLCONFIG (every option not named stays off, exactly as
// base.config promises), checked and saved under key (configKey: what
// Kconfig's answer depends on); later builds with the same key, such as
// after an edit to a driver's C code, copy the saved file. Every Kconfig run costs
// hundreds of compiler probes, and make's own syncconfig runs one anyway,
// so a variant switch then pays for one instead of two.
func (b *builder) configure(ctx context.Context, mk *maker, name string, frag, want Fragment, key string) error {
	dot := filepath.Join(mk.obj, ".config")
	saved := filepath.Join(b.workDir(), "configs", name+"-"+key+".config")
	if cfg, err := os.ReadFile(saved); err == nil && Check(want, cfg) == nil {
		if cur, err := os.ReadFile(dot); err == nil && bytes.Equal(cur, cfg) {
			return nil
		}
		return os.WriteFile(dot, cfg, 0o644)
	}
	allconfig := filepath.Join(mk.obj, "cca-testbed.fragment")
	if err := os.WriteFile(allconfig, frag.Bytes(), 0o600); err != nil {
		return err
	}
	if err := mk.run(ctx, "KCONFIG_ALLCONFIG="+allconfig, "allnoconfig"); err != nil {
		return err
	}
	cfg, err := os.ReadFile(dot)
	if err != nil {
		return err
	}
	if err := Check(want, cfg); err != nil {
		return fmt.Errorf("variant %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Dir(saved), 0o700); err != nil {
		return err
	}
	return os.WriteFile(saved, cfg, 0o600)
}

// unlink replaces a hard-linked file by a private copy of itself.
func unlink(p string) error {
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the patch creates it
	}
	if err != nil {
		return err
	}
	tmp := p + ".cca-testbed-tmp"
	if err := copyFile(p, tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, info.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// maker runs make in the shared build directory, logging to one file.
type maker struct {
	tree, obj, cross string
	log              io.Writer
	logPath          string
	// ccache is the compiler cache's directory, "" to compile without it.
	ccache string
}

// ccacheDir is where the compiler cache lives (beside the build
// directories), or "" when ccache is not installed. Variants and series
// prefixes share one build directory, and applying or reverting a patch
// to a header that most of the kernel includes (asm/rsi.h, through io.h)
// makes kbuild recompile nearly everything; ccache keys on content, so
// going back to a tree state built before costs cache hits, not a
// compile. The objects are the same either way, so no cache key moves.
func ccacheDir(work string) string {
	if _, err := os.Stat(filepath.Join("/usr/bin", "ccache")); err != nil {
		return ""
	}
	return filepath.Join(work, "ccache")
}

func (m *maker) run(ctx context.Context, args ...string) error {
	return m.runTo(ctx, nil, args...)
}

// runTo runs make with args; stdout goes to stdout when given, else to the
// log, stderr always to the log. make and its compilers run as one
// process group through proc: they die with the testbed (parent-death
// signal for the whole group), so a killed run never leaves make writing
// into the shared build directory beside the next; a cancelled one gets
// SIGTERM (make deletes its half-written targets), SIGKILL after 10 s. A
// failure names the first compiler errors and the log's last lines.
func (m *maker) runTo(ctx context.Context, stdout io.Writer, args ...string) error {
	full, env := m.command(args)
	fmt.Fprintf(m.log, "+ %s\n", strings.Join(full, " "))
	var errs errorLines
	c := proc.Cmd{Argv: full, Env: env, Lines: 5,
		Stdout: io.MultiWriter(m.log, &errs), Stderr: io.MultiWriter(m.log, &errs)}
	if stdout != nil {
		c.Stdout = stdout
	}
	if err := proc.Run(ctx, c); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("make %s: %w", strings.Join(args, " "), ctx.Err())
		}
		return fmt.Errorf("%w: make %s: %w%s (full log: %s)", ErrBuild, strings.Join(args, " "), err, errs.summary(), m.logPath)
	}
	return nil
}

// command is make's argument list and environment for args.
func (m *maker) command(args []string) (argv, env []string) {
	argv = []string{"make", "-C", m.tree, "O=" + m.obj, "ARCH=arm64", "CROSS_COMPILE=" + m.cross}
	env = buildEnv(os.Environ())
	if m.ccache != "" {
		argv = append(argv, "CC=ccache "+m.cross+"gcc")
		// Depend mode keys on the compiler's own dependency file (kbuild
		// passes -Wp,-MMD): a miss then costs the compile alone, not an
		// extra preprocessor run per object, which a cold build paid.
		env = append(env, "CCACHE_DIR="+m.ccache, "CCACHE_MAXSIZE=6G", "CCACHE_DEPEND=1")
	}
	return append(argv, args...), env
}

// buildEnv drops what would change the kernel build from outside: a
// parent make's jobserver and flags, and kbuild variables a caller might
// have exported. PATH is the system's (buildPath): a rustup rustc or pyenv
// shims earlier in a developer's PATH would otherwise change what Kconfig
// detects and slow every configuration run. The build stamp is fixed, so
// a rebuild does not relink for the date alone and uname -v says where
// the kernel came from.
func buildEnv(env []string) []string {
	drop := map[string]bool{"PATH": true, "MAKEFLAGS": true, "MFLAGS": true, "MAKELEVEL": true, "MAKEFILES": true,
		"GNUMAKEFLAGS": true, "ARCH": true, "CROSS_COMPILE": true, "O": true, "KBUILD_OUTPUT": true,
		"KCONFIG_CONFIG": true, "KCONFIG_ALLCONFIG": true, "LOCALVERSION": true, "INSTALL_MOD_PATH": true,
		"LC_ALL": true, "KBUILD_BUILD_TIMESTAMP": true, "KBUILD_BUILD_USER": true,
		"KBUILD_BUILD_HOST": true, "KBUILD_BUILD_VERSION": true}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	return append(out, "PATH="+buildPath, "LC_ALL=C", "KBUILD_BUILD_TIMESTAMP=Thu Jan  1 00:00:00 UTC 2026", "KBUILD_BUILD_USER=cca-testbed",
		"KBUILD_BUILD_HOST=cca-testbed", "KBUILD_BUILD_VERSION=1")
}

// buildPath is the PATH make runs with: Debian's system directories, where
// scripts/setup-host installs make, the cross compiler and kmod.
const buildPath = "/usr/sbin:/usr/bin:/sbin:/bin"

// makeExt4 packs dir (lib/modules) into a small ext4 image at out, sized
// for its content with room for the file system's own metadata.
func makeExt4(ctx context.Context, dir, out string, log io.Writer) error {
	var size int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size += (info.Size() + 4095) &^ 4095
		return nil
	})
	if err != nil {
		return err
	}
	mib := size/(1<<20)*2 + 8
	err = proc.Run(ctx, proc.Cmd{Argv: []string{"mkfs.ext4", "-q", "-F", "-L", "modules", "-d", dir,
		"-E", "root_owner=0:0", out, strconv.FormatInt(mib, 10) + "M"}, Stdout: log, Stderr: log, Lines: 5})
	if err != nil {
		return fmt.Errorf("%w: mkfs.ext4 -d %s (e2fsprogs from scripts/setup-host): %w", ErrBuild, dir, err)
	}
	return nil
}

// linkCopy makes dst a hard-linked copy of src (cp -al): cheap, and the
// files stay shared until a patch breaks their links.
func linkCopy(ctx context.Context, src, dst string) error {
	if err := proc.Run(ctx, proc.Cmd{Argv: []string{"cp", "-al", src, dst}}); err != nil {
		return fmt.Errorf("%w: link-copy %s: %w", ErrBuild, src, err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// errorLines keeps the first lines that look like a compiler, linker or
// modpost error: with parallel jobs they are often long scrolled out of
// the last lines by the time make gives up.
type errorLines struct {
	partial []byte
	lines   []string
}

const maxErrorLines = 10

func (e *errorLines) Write(p []byte) (int, error) {
	e.partial = append(e.partial, p...)
	for {
		i := bytes.IndexByte(e.partial, '\n')
		if i < 0 {
			break
		}
		line := string(e.partial[:i])
		e.partial = e.partial[i+1:]
		if len(e.lines) < maxErrorLines && isErrorLine(line) {
			e.lines = append(e.lines, strings.TrimSpace(line))
		}
	}
	if len(e.partial) > 64<<10 { // a runaway line: keep memory bounded
		e.partial = e.partial[:0]
	}
	return len(p), nil
}

func isErrorLine(l string) bool {
	for _, s := range []string{"error:", "ERROR:", "undefined reference", "Error: "} {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// summary is "; errors: <line> | <line>", or "" when none were seen.
func (e *errorLines) summary() string {
	if len(e.lines) == 0 {
		return ""
	}
	return "; errors: " + strings.Join(e.lines, " | ")
}
