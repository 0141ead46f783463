package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"cca-testbed/cell"
	"cca-testbed/checks"
	"cca-testbed/emulated"
	"cca-testbed/images"
	"cca-testbed/internal/input"
	"cca-testbed/internal/progress"
	"cca-testbed/internal/term"
	"cca-testbed/matrix"
	"cca-testbed/report"
	"cca-testbed/snapshot"
	"cca-testbed/vm"
)

func runVariants(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("variants", "[--variant-from SERIES]", stdout)
	var bo backendOptions
	bo.registerSeries(fs.FlagSet)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := bo.loadSeries(ctx, nil, 0); err != nil {
		return err
	}
	defer bo.unloadSeries()
	if fs.NArg() != 0 {
		return usagef("variants: takes no arguments, got %q", fs.Arg(0))
	}
	// DA CHECK: how the host side decides Device Assignment (cell.DACheck);
	// a host cell's DA is real only when its firmware answers there.
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "VARIANT\tDA CHECK\tDESCRIPTION\n")
	var unanswered, hostfw []string
	for _, v := range cell.Variants {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, v.DACheck, v.Description)
		if (cell.Cell{Variant: v.Name, Role: cell.HostDA}).NoRMIAnswerer() != "" {
			unanswered = append(unanswered, string(v.Name))
		}
		if (cell.Cell{Variant: v.Name, Role: cell.HostDA}).OnHostFirmware() {
			hostfw = append(hostfw, string(v.Name))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(hostfw) > 0 {
		if _, err := fmt.Fprintf(stdout, "\nhost-da and host-noda of %s: the testbed's firmware in host mode answers their RMI calls over SMC from the model (conduit hostfw:rmm-1.1, hostfw:rmm-1.0)\n",
			strings.Join(hostfw, ", ")); err != nil {
			return err
		}
	}
	if len(unanswered) > 0 {
		_, err := fmt.Fprintf(stdout, "\nhost-da and host-noda of %s: no RMI answerer: the model's answers reach only the project glue (cca_testbed.smc= on the command line), which these kernels do not carry; their hosts meet an RMM only on real firmware (host@%s, host@%s)\n",
			strings.Join(unanswered, ", "), cell.TFRMM09, cell.TFRMM08)
		return err
	}
	return nil
}

// selection is the --variant/--role/--userspace trio shared by commands.
type selection struct{ variants, roles, userspaces string }

func (s *selection) register(fs *flag.FlagSet) {
	fs.StringVar(&s.variants, "variant", "", "comma-separated variants (default all: "+cell.VariantNames()+")")
	fs.StringVar(&s.roles, "role", "", "comma-separated roles (default all: host-da, host-noda, realm, plain; host is the role of cells on real firmware); a role means its cells on forky, ROLE@trixie (realm@trixie) the trixie ones, host@FIRMWARE one firmware build")
	fs.StringVar(&s.userspaces, "userspace", "", "comma-separated guest userspaces (default: forky for every cell, plus trixie for realm cells)")
}

// roleSel is one --role entry: ROLE[@FIRMWARE][@USERSPACE]. A role
// without a userspace means the default one (forky) unless --userspace
// names others, so --role realm is one cell per variant and realm@trixie
// is asked for by name; no firmware means every firmware build (host).
type roleSel struct {
	role cell.Role
	fw   cell.Firmware
	us   cell.Userspace
}

func parseRoleSel(f string) (roleSel, error) {
	name, quals, ok := strings.Cut(f, "@")
	r, err := cell.ParseRole(name)
	if err != nil || !ok {
		return roleSel{role: r}, err
	}
	// cell.Parse reads and checks the qualifiers as in a cell name.
	c, err := cell.Parse(string(cell.Platform) + "/" + name + "@" + quals)
	if err != nil {
		return roleSel{}, fmt.Errorf("--role %s: %w", f, err)
	}
	rs := roleSel{role: r, fw: c.Firmware}
	for _, q := range strings.Split(quals, "@") {
		if _, err := cell.ParseUserspace(q); err == nil {
			rs.us = c.Userspace
		}
	}
	return rs, nil
}

func (r roleSel) match(c cell.Cell, userspaces []cell.Userspace) bool {
	us := r.us
	if us == "" && len(userspaces) == 0 {
		us = cell.DefaultUserspace
	}
	return c.Role == r.role && (r.fw == "" || c.Firmware == r.fw) && (us == "" || c.Userspace == us)
}

// cells filters the default matrix, or builds the full product when the
// user named userspaces explicitly.
func (s *selection) cells() ([]cell.Cell, error) {
	var vs []cell.Variant
	var rs []roleSel
	var us []cell.Userspace
	for _, f := range split(s.variants) {
		v, err := cell.ParseVariant(f)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	for _, f := range split(s.roles) {
		r, err := parseRoleSel(f)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	for _, f := range split(s.userspaces) {
		u, err := cell.ParseUserspace(f)
		if err != nil {
			return nil, err
		}
		us = append(us, u)
	}
	var out []cell.Cell
	var candidates []cell.Cell
	if len(us) == 0 {
		candidates = cell.Matrix()
	} else {
		for _, v := range cell.Variants {
			for _, r := range cell.Roles {
				for _, u := range us {
					candidates = append(candidates, cell.Cell{Variant: v.Name, Role: r, Userspace: u})
				}
			}
		}
	}
	for _, c := range candidates {
		if (len(vs) == 0 || slices.Contains(vs, c.Variant)) && (len(rs) == 0 || slices.ContainsFunc(rs, func(r roleSel) bool { return r.match(c, us) })) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, usagef("no cell matches --variant %q --role %q --userspace %q", s.variants, s.roles, s.userspaces)
	}
	return out, nil
}

// split reads a comma-separated flag value; a name given twice counts
// once, so no cell is run (and no run directory made) twice.
func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" && f != "all" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func checkFormat(format string, known []string) error {
	if !slices.Contains(known, format) {
		return usagef("unknown format %q (known: %s)", format, strings.Join(known, ", "))
	}
	return nil
}

func loadExpectations(file string) (*checks.Expectations, error) {
	if file == "" {
		return checks.Default(), nil
	}
	b, err := input.ReadFile(file, "expectations", input.MaxExpectations)
	if err != nil {
		return nil, usagef("%v", err)
	}
	e, err := checks.ParseExpectations(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return e, nil
}

func runMatrix(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("matrix", "[flags]", stdout)
	var sel selection
	sel.register(fs.FlagSet)
	var bo backendOptions
	bo.register(fs.FlagSet)
	bo.registerSeries(fs.FlagSet)
	format := fs.String("format", "text", "output format: "+strings.Join(report.Formats, ", "))
	out := fs.String("out", "", "also write every format into this directory (report.txt, .json, .xml, .md, .html, snapshots/, and for qemu cells/<cell>/ with console.log, cmdline.txt, reproduce.sh)")
	expFile := fs.String("expectations", "", "expectations file (default: the built-in checks/expectations.txt)")
	parallel := fs.Int("parallel", 0, "cells in flight (default: 2 for qemu, 4 for emulated)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := bo.loadSeries(ctx, &sel, fs.NArg()); err != nil {
		return err
	}
	defer bo.unloadSeries()
	if fs.NArg() != 0 {
		return usagef("matrix: takes no arguments (cells are chosen with --variant, --role, --userspace), got %q", fs.Arg(0))
	}
	if *parallel < 0 {
		return usagef("--parallel %d: cannot be negative (0: the backend's default)", *parallel)
	}
	if err := checkFormat(*format, report.Formats); err != nil {
		return err
	}
	cells, err := sel.cells()
	if err != nil {
		return err
	}
	exp, err := loadExpectations(*expFile)
	if err != nil {
		return err
	}
	if err := bo.check(); err != nil {
		return err
	}
	// The destination is checked before any build or boot: a bad --out
	// found after an hour of boots loses the hour.
	if *out != "" {
		if err := checkOut(*out); err != nil {
			return err
		}
		bo.runDir = filepath.Join(*out, "cells")
	}
	b, err := bo.backend(ctx, stderr)
	if err != nil {
		return err
	}
	par := *parallel
	if par == 0 {
		par = b.DefaultParallel
	}
	pw := b.progress
	if pw == nil {
		pw = progress.New(stderr)
	}
	opts := matrix.Options{Parallel: par, Expectations: exp}
	if !b.Instant { // an emulated matrix ends before progress could help
		opts.Progress = func(c cell.Cell, phase string, _ time.Duration) { pw.Phase(c.String(), phase) }
	}
	start := time.Now()
	var run matrix.Backend = b
	if b.prepare != nil {
		// A failed build still ends in a report: every cell carries the
		// error, in every format, so a long run never ends silent.
		if err := b.prepare(ctx, cells); err != nil {
			run = failing{b.Name(), err}
		}
	}
	results, runErr := matrix.Run(ctx, run, cells, opts)
	pw.Done()
	rep := report.New(b.Name(), start, time.Since(start), results)
	var outErr error
	if *out != "" {
		outErr = writeAll(rep, *out)
	}
	if err := rep.Write(stdout, *format); err != nil {
		return errors.Join(outErr, err)
	}
	switch {
	case outErr != nil:
		return outErr
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted: %w", ctx.Err())
	case runErr != nil:
		return fmt.Errorf("infrastructure: %w", runErr)
	case !rep.OK():
		return fmt.Errorf("%w: %s", errMismatch, rep.Summary)
	}
	return nil
}

// failing stands in for a backend whose preparation failed: every cell
// fails to start with that error.
type failing struct {
	name string
	err  error
}

func (f failing) Name() string { return f.name }
func (f failing) Start(context.Context, cell.Cell) (matrix.Instance, error) {
	return nil, f.err
}

// reportFiles names the file of each report format in an --out directory.
var reportFiles = map[string]string{"text": "report.txt", "json": "report.json", "junit": "report.xml", "markdown": "report.md", "html": "report.html"}

// checkOut makes sure dir can take a report before any work starts,
// without making anything: it is a directory we can write (or one that
// can be made in the nearest existing parent, which we can write), and no
// report file's name is taken by anything but a regular file.
func checkOut(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		parent := filepath.Dir(filepath.Clean(dir))
		for {
			pst, err := os.Stat(parent)
			if err == nil && !pst.IsDir() {
				return usagef("--out %s: %s is not a directory", dir, parent)
			}
			if err == nil {
				break
			}
			if !errors.Is(err, os.ErrNotExist) || filepath.Dir(parent) == parent {
				return usagef("--out %s: %v", dir, err)
			}
			parent = filepath.Dir(parent)
		}
		return probeWrite(dir, parent)
	case err != nil:
		return usagef("--out %s: %v", dir, err)
	case !st.IsDir():
		return usagef("--out %s: not a directory (name a directory for the report files)", dir)
	}
	names := []string{filepath.Join(dir, "snapshots")}
	for _, f := range report.Formats {
		names = append(names, filepath.Join(dir, reportFiles[f]))
	}
	for i, name := range names {
		st, err := os.Lstat(name)
		switch {
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return usagef("--out %s: %v", dir, err)
		case i == 0 && err == nil && !st.IsDir(), i > 0 && err == nil && !st.Mode().IsRegular():
			return usagef("--out %s: %s is in the way of the report (a %s): move it or choose another --out", dir, name, kind(st.Mode()))
		case i == 0 && err == nil:
			if err := probeWrite(dir, name); err != nil {
				return err
			}
		}
	}
	return probeWrite(dir, dir)
}

// probeWrite checks that a file can be made in d (for --out dir).
func probeWrite(dir, d string) error {
	f, err := os.CreateTemp(d, ".testbed-probe-")
	if err != nil {
		return usagef("--out %s: cannot write there: %v", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	case m.IsRegular():
		return "file"
	}
	return "special file"
}

// writeAll writes every report format (and each cell's snapshot) into dir,
// first removing what an earlier run left there that the new report does
// not describe. One file that cannot be written does not stop the others;
// the error names every file that failed.
func writeAll(rep *report.Report, dir string) error {
	var errs errList
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out %s: %w", dir, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--out %s: %w", dir, err)
	}
	// Report files are for whoever may read the directory, whatever the
	// umask; snapshots/ is made like the directory.
	perm := st.Mode().Perm() &^ 0o111
	snaps := filepath.Join(dir, "snapshots")
	if err := os.Mkdir(snaps, 0o700); err == nil {
		if err := os.Chmod(snaps, st.Mode().Perm()); err != nil {
			errs = append(errs, err)
		}
	} else if !errors.Is(err, os.ErrExist) {
		errs = append(errs, err)
	}
	errs = append(errs, removeStale(rep, dir)...)
	for _, f := range report.Formats {
		if err := writeFile(filepath.Join(dir, reportFiles[f]), perm, func(w io.Writer) error { return rep.Write(w, f) }); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range rep.Cells {
		if c.Snapshot == nil {
			continue
		}
		if err := writeFile(filepath.Join(snaps, c.Cell.FileName()+".snap"), perm, c.Snapshot.WriteText); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("--out %s: %w", dir, errs)
	}
	return nil
}

// removeStale removes the per-cell files of an earlier run in dir that the
// new report does not describe: snapshots/*.snap and cells/<cell>/. Only
// names the testbed writes are touched; anything else is left alone.
func removeStale(rep *report.Report, dir string) []error {
	snaps, runs := map[string]bool{}, map[string]bool{}
	for _, c := range rep.Cells {
		if c.Snapshot != nil {
			snaps[c.Cell.FileName()+".snap"] = true
		}
		if c.Dir != "" {
			runs[filepath.Base(c.Dir)] = true
		}
	}
	var errs []error
	remove := func(path string) {
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, fmt.Errorf("removing the earlier run's %s: %w", path, err))
		}
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "snapshots")); err == nil {
		for _, e := range ents {
			name := e.Name()
			if e.Type().IsRegular() && strings.HasSuffix(name, ".snap") && isCellFile(strings.TrimSuffix(name, ".snap")) && !snaps[name] {
				remove(filepath.Join(dir, "snapshots", name))
			}
		}
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "cells")); err == nil {
		for _, e := range ents {
			// A directory another run still holds is that run's to keep.
			if p := filepath.Join(dir, "cells", e.Name()); e.IsDir() && isCellFile(e.Name()) && !runs[e.Name()] && !vm.InUse(p) {
				remove(p)
			}
		}
	}
	return errs
}

// isCellFile reports whether name is a cell's file name ("faux_realm",
// "faux_realm@trixie"), optionally with a run directory's ".N" suffix.
func isCellFile(name string) bool {
	if base, n, ok := strings.Cut(name, "."); ok {
		if _, err := strconv.Atoi(n); err != nil {
			return false
		}
		name = base
	}
	c, err := cell.Parse(strings.Replace(name, "_", "/", 1))
	return err == nil && c.FileName() == name
}

// errList is several errors on one line.
type errList []error

func (l errList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

func (l errList) Unwrap() []error { return l }

// writeFile writes through a temporary file so a crash never leaves half a
// report; the file gets perm, whatever the umask.
func writeFile(name string, perm os.FileMode, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name))
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// cellArg reads a cell from a positional argument or --variant/--role.
func cellArg(fs *flagSet, sel selection) (cell.Cell, error) {
	switch {
	case fs.NArg() == 1 && sel.variants == "" && sel.roles == "":
		c, err := cell.Parse(fs.Arg(0))
		if err != nil || sel.userspaces == "" {
			return c, err
		}
		// --userspace beside a cell name: honoured when the name leaves
		// the userspace open, refused when the two disagree.
		u, err := cell.ParseUserspace(sel.userspaces)
		if err != nil {
			return cell.Cell{}, usagef("%s: --userspace: %v (one userspace for one cell)", fs.Name(), err)
		}
		if strings.Contains(fs.Arg(0), "@") && u != c.Userspace {
			return cell.Cell{}, usagef("%s: --userspace %s contradicts the cell %s: give the userspace once", fs.Name(), u, c)
		}
		c.Userspace = u
		return c, nil
	case fs.NArg() == 0 && sel.variants != "":
		v, err := cell.ParseVariant(sel.variants)
		if err != nil {
			return cell.Cell{}, err
		}
		c := cell.Cell{Variant: v, Role: cell.Realm, Userspace: cell.DefaultUserspace}
		var rs roleSel
		if sel.roles != "" {
			if rs, err = parseRoleSel(sel.roles); err != nil {
				return cell.Cell{}, err
			}
			c.Role, c.Firmware = rs.role, rs.fw
			if rs.us != "" {
				c.Userspace = rs.us
			}
		}
		if sel.userspaces != "" {
			u, err := cell.ParseUserspace(sel.userspaces)
			if err != nil {
				return cell.Cell{}, err
			}
			if rs.us != "" && u != rs.us {
				return cell.Cell{}, usagef("%s: --userspace %s contradicts --role %s: give the userspace once", fs.Name(), u, sel.roles)
			}
			c.Userspace = u
		}
		return c, nil
	}
	return cell.Cell{}, usagef("%s: name one cell, as VARIANT/ROLE or --variant V [--role R] (e.g. faux/realm)", fs.Name())
}

func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("snapshot", "[VARIANT/ROLE[@USERSPACE] | --variant V --role R] [flags]", stdout)
	var sel selection
	sel.register(fs.FlagSet)
	var bo backendOptions
	bo.register(fs.FlagSet)
	bo.registerSeries(fs.FlagSet)
	format := fs.String("format", "text", "output format: text, json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := bo.loadSeries(ctx, &sel, fs.NArg()); err != nil {
		return err
	}
	defer bo.unloadSeries()
	if err := checkFormat(*format, []string{"text", "json"}); err != nil {
		return err
	}
	c, err := cellArg(fs, sel)
	if err != nil {
		return err
	}
	b, err := bo.backend(ctx, stderr)
	if err != nil {
		return err
	}
	s, err := takeSnapshot(ctx, b, c)
	if err != nil {
		return err
	}
	if *format == "json" {
		return s.WriteJSON(stdout)
	}
	return s.WriteText(stdout)
}

func takeSnapshot(ctx context.Context, b *backend, c cell.Cell) (*snapshot.Snapshot, error) {
	if b.prepare != nil {
		if err := b.prepare(ctx, []cell.Cell{c}); err != nil {
			return nil, cellErr(c, err)
		}
	}
	inst, err := b.Start(ctx, c)
	if err != nil {
		return nil, cellErr(c, err)
	}
	s, err := matrix.Snapshot(ctx, inst)
	err = errors.Join(err, inst.Close())
	if err != nil {
		return nil, cellErr(c, err)
	}
	s.Meta.Cell = c.String()
	return s, nil
}

// cellErr makes err name cell c, once.
func cellErr(c cell.Cell, err error) error {
	if strings.HasPrefix(err.Error(), c.String()+": ") {
		return err
	}
	return fmt.Errorf("%s: %w", c, err)
}

func runDiff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("diff", "A B   (each a cell like platform/realm or a snapshot file)", stdout)
	var bo backendOptions
	bo.register(fs.FlagSet)
	bo.registerSeries(fs.FlagSet)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := bo.loadSeries(ctx, nil, fs.NArg()); err != nil {
		return err
	}
	defer bo.unloadSeries()
	if fs.NArg() != 2 {
		return usagef("diff: want two arguments (cells or snapshot files), got %d", fs.NArg())
	}
	if err := bo.check(); err != nil {
		return err
	}
	var snaps [2]*snapshot.Snapshot
	var b *backend
	cells := 0
	for i, arg := range fs.Args() {
		if st, err := os.Stat(arg); err == nil && !st.IsDir() {
			s, err := readSnapshot(arg)
			if err != nil {
				return err
			}
			snaps[i] = s
			continue
		}
		c, err := cell.Parse(arg)
		if err != nil {
			return usagef("diff: %q is neither a snapshot file nor a cell: %v", arg, err)
		}
		cells++
		if b == nil {
			if b, err = bo.backend(ctx, stderr); err != nil {
				return err
			}
		}
		if snaps[i], err = takeSnapshot(ctx, b, c); err != nil {
			return err
		}
	}
	if cells == 0 {
		// Two files: nothing is brought up, so a backend flag would go unread.
		for _, f := range append([]string{"backend", "firmware-profile", "v"}, qemuOnly...) {
			if bo.set(f) {
				return usagef("diff: --%s: both arguments are snapshot files; backend flags apply to cells only", f)
			}
		}
	}
	return snapshot.WriteDiff(stdout, fs.Arg(0), fs.Arg(1), snapshot.Diff(snaps[0], snaps[1]))
}

func readSnapshot(name string) (*snapshot.Snapshot, error) {
	b, err := input.ReadFile(name, "snapshot", input.MaxSnapshot)
	if err != nil {
		return nil, err
	}
	s, err := snapshot.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

func runChanges(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("changes", "OLD NEW   (results directories or report.json files of two runs)", stdout)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("changes: want two runs (results directories or report.json files), got %d", fs.NArg())
	}
	var reps [2]*report.Report
	for i := range reps {
		r, err := report.Read(fs.Arg(i))
		if err != nil {
			return usagef("changes: %v", err)
		}
		reps[i] = r
	}
	if report.WriteChanges(stdout, reps[0], reps[1]) == 0 {
		fmt.Fprintf(stdout, "no changes between %s and %s\n", fs.Arg(0), fs.Arg(1))
	}
	return nil
}

// runPrune removes cache entries unused for --unused-for. Every other
// command that opens the cache prunes at images.DefaultUnusedFor; this is
// for freeing the space of superseded builds sooner, or for another age
// (the cache is opened unpruned, so a longer age keeps what it says).
func runPrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("prune", "[flags]", stdout)
	cache := fs.String("cache", "", "image and kernel cache (default $CCA_TESTBED_CACHE or $XDG_CACHE_HOME/cca-testbed)")
	unused := fs.Duration("unused-for", images.DefaultUnusedFor, "remove entries last used longer ago than this (0: every entry not in use right now)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *unused < 0 {
		return usagef("prune: takes no arguments and a --unused-for of 0 or more")
	}
	c, err := images.OpenUnpruned(*cache)
	if err != nil {
		return err
	}
	pruned, err := c.Prune(*unused)
	var total int64
	for _, p := range pruned {
		fmt.Fprintf(stdout, "pruned %s/%s (%d MiB, last used %s)\n", p.Kind, p.Key, p.Bytes>>20, p.LastUsed.UTC().Format(time.DateTime))
		total += p.Bytes
	}
	fmt.Fprintf(stdout, "%d entries pruned, %d MiB freed from %s\n", len(pruned), total>>20, c.Dir)
	return err
}

// runFidelity holds the emulated model to the real boots: every snapshot of
// a real run must equal the model's for the same cell, fact for fact.
func runFidelity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fidelity", "RUN   (a results directory or report.json of a qemu run)", stdout)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("fidelity: want one run (results directory or report.json), got %d", fs.NArg())
	}
	rep, err := report.Read(fs.Arg(0))
	if err != nil {
		return usagef("fidelity: %v", err)
	}
	n, err := fidelity(ctx, stdout, rep)
	if err != nil {
		return fmt.Errorf("fidelity %s: %w", fs.Arg(0), err)
	}
	if n > 0 {
		return fmt.Errorf("%w: %d differences between the real boots and the emulated model", errMismatch, n)
	}
	return nil
}

// fidelity writes each cell's differences (real → emulated) and returns
// how many there were. Cells without a snapshot (infrastructure errors)
// are reported, not compared.
func fidelity(ctx context.Context, w io.Writer, rep *report.Report) (int, error) {
	total, compared := 0, 0
	for _, c := range rep.Cells {
		if c.Snapshot == nil {
			fmt.Fprintln(w, term.Escape(fmt.Sprintf("%s: not compared (%s)", c.Name, cmp.Or(c.Err, "no snapshot"))))
			continue
		}
		compared++
		cl, err := cell.Parse(c.Name)
		if err != nil {
			return total, err
		}
		// The model answers with the firmware profile the run used.
		emu := &backend{Backend: emulated.Backend{Profile: c.Snapshot.Meta.Firmware}}
		model, err := takeSnapshot(ctx, emu, cl)
		if err != nil {
			return total, err
		}
		changes := snapshot.Diff(c.Snapshot, model)
		total += len(changes)
		fmt.Fprintf(w, "%s: %d differences\n", term.Escape(c.Name), len(changes))
		for _, ch := range changes {
			fmt.Fprintf(w, "  %s\n", ch)
		}
	}
	if compared == 0 {
		// Nothing measured is no evidence the model is right.
		return total, fmt.Errorf("no cell compared: none of the run's %d cells has a snapshot", len(rep.Cells))
	}
	return total, nil
}
