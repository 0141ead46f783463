// Command sysfs-snapshot runs inside a guest and prints the snapshot of its
// /sys (snapshot.Take over os.DirFS("/sys")), so real and emulated
// snapshots come from the same code. It is built static for linux/arm64
// and uploaded by the host, which fills in what only it knows (backend,
// cell, userspace) from the flags or afterwards.
//
//	sysfs-snapshot [--format json|text] [--backend qemu] [--cell faux/realm] [--userspace forky]
//
// Errors are one line on stderr, exit status 2.
//
// Tests: go test ./cmd/sysfs-snapshot
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"cca-testbed/snapshot"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "sysfs-snapshot: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		}
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("sysfs-snapshot", flag.ContinueOnError)
	fl.SetOutput(stderr)
	format := fl.String("format", "json", "output format: json or text")
	sys := fl.String("sys", "/sys", "sysfs mount point (tests point it elsewhere)")
	proc := fl.String("proc", "/proc", "procfs mount point (tests point it elsewhere)")
	var meta snapshot.Meta
	fl.StringVar(&meta.Backend, "backend", "", "backend to record in the snapshot's meta (the host's to say)")
	fl.StringVar(&meta.Cell, "cell", "", "cell to record, e.g. faux/realm")
	fl.StringVar(&meta.Userspace, "userspace", "", "guest userspace to record, e.g. forky")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: all options are flags (see -h)", fl.Arg(0))
	}
	if *format != "json" && *format != "text" {
		return fmt.Errorf("--format %q: use json or text", *format)
	}

	kernel, err := os.ReadFile(filepath.Join(*proc, "sys/kernel/osrelease"))
	if err != nil {
		return fmt.Errorf("kernel release: %w (is /proc mounted?)", err)
	}
	meta.Kernel = strings.TrimSpace(string(kernel))
	if meta.Conduit, err = conduit(*sys); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(*sys, "class")); err != nil {
		return fmt.Errorf("%s does not look like sysfs: %w", *sys, err)
	}

	snap, err := snapshot.Take(os.DirFS(*sys), meta)
	if err != nil {
		return err
	}
	if *format == "text" {
		return snap.WriteText(stdout)
	}
	return snap.WriteJSON(stdout)
}

// conduit reports who answers the kernel glue's firmware calls, as the
// glue itself exposes it; "none" when the glue is not built in.
func conduit(sys string) (string, error) {
	b, err := os.ReadFile(filepath.Join(sys, "module/cca_testbed/parameters/conduit"))
	if errors.Is(err, fs.ErrNotExist) {
		return "none", nil
	}
	if err != nil {
		return "", fmt.Errorf("conduit: %w", err)
	}
	if c := strings.TrimSpace(string(b)); c != "" {
		return c, nil
	}
	return "none", nil
}
