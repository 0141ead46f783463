// Command testbed boots (or models) arm64 Linux with each way of
// registering the Arm CCA devices and reports what userspace sees.
//
//	testbed variants
//	testbed matrix   [--backend emulated|qemu] [--variant ...] [--role ...] [--format ...]
//	testbed snapshot CELL | --variant V --role R
//	testbed diff     A B          (cells or snapshot files)
//
// Exit codes: 0 every check as expected, 1 a check differs from its
// expectation, 2 usage or infrastructure error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK       = 0
	exitMismatch = 1
	exitError    = 2
)

// errMismatch marks "ran fine, but a check differs from its expectation".
var errMismatch = errors.New("checks differ from expectations")

// usageError is a mistake on the command line; it prints as one line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// remoteExit is a guest command's non-zero exit status, passed through by
// `testbed ssh` without a message of its own.
type remoteExit int

func (e remoteExit) Error() string { return fmt.Sprintf("remote command exited %d", int(e)) }

func exitCode(err error, stderr io.Writer) int {
	var re remoteExit
	switch {
	case errors.As(err, &re):
		return int(re)
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errMismatch):
		fmt.Fprintln(stderr, "testbed:", err)
		return exitMismatch
	default:
		fmt.Fprintln(stderr, "testbed:", err)
		return exitError
	}
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"variants", "list the registration variants", runVariants},
		{"matrix", "run cells and grade them against their expectations", runMatrix},
		{"snapshot", "take the snapshot of one cell", runSnapshot},
		{"boot", "boot one cell under QEMU and keep it up until Ctrl-C", runBoot},
		{"ssh", "a shell or one command in a cell started with boot", runSSH},
		{"bench", "measure the emulated matrix and, with --boots, real boot-to-SSH", runBench},
		{"diff", "compare two cells or two snapshot files", runDiff},
		{"fidelity", "compare a real run's snapshots with the emulated model, field by field", runFidelity},
		{"changes", "what changed between two matrix runs (results directories or report.json files)", runChanges},
		{"prune", "remove cached images and kernels not used for a while", runPrune},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return usagef("no command given")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	return usagef("unknown command %q (run testbed --help)", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: testbed COMMAND [flags]   (testbed COMMAND --help for its flags)")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nexit codes: 0 all as expected, 1 a check differs from its expectation, 2 usage or infrastructure error")
}

// newFlags makes a FlagSet whose errors come back as one-line usage errors
// and whose --help prints to stdout.
func newFlags(name, synopsis string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "usage: testbed %s %s\n\nflags:\n", name, synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.Usage()
			return flag.ErrHelp
		}
	}
	// Flags may follow positional arguments ("snapshot faux/realm --format
	// json"): parse, set a positional aside, go on; then hand the positionals
	// back so fs.Args() holds them.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return usagef("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...) // after "--" everything is positional
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}
