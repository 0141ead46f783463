// Command testbed boots (or models) arm64 Linux with each way of
// registering the Arm CCA devices and reports what userspace sees.
//
//	testbed variants
//	testbed matrix   [--backend emulated|qemu] [--variant ...] [--role ...] [--format ...]
//	testbed snapshot CELL | --variant V --role R
//	testbed boot     CELL         (a real cell, up until Ctrl-C)
//	testbed ssh      CELL [-- COMMAND...]
//	testbed bench    [--boots N]
//	testbed diff     A B          (cells or snapshot files)
//	testbed bisect   SERIES --role R [--field PATH | --check NAME]
//	testbed fidelity RUN          (a real run's snapshots vs the model)
//	testbed changes  OLD NEW      (two runs)
//	testbed prune    [--unused-for D]
//	testbed firmware [--build NAME|all [--path]]   (TF-A + TF-RMM flash images)
//	testbed prepare  [CELL...]    (build what cells need, boot nothing)
//
// matrix, snapshot, boot, diff and variants take --variant-from SERIES:
// a patch series run as a variant (README, "Bring your own series").
// Each command's --help gives its flags.
//
// Exit codes: 0 every check as expected (or measured, ungraded, in a
// series' cells), 1 a check differs from its expectation, 2 usage or
// infrastructure error.
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

	"cca-testbed/internal/term"
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
	ctx, stop := interruptible(context.Background(), os.Stderr)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// interruptible cancels ctx on the first Ctrl-C (or SIGTERM), so the run
// stops QEMU and writes what it has; a second one ends the process at once
// with exitError, whatever it was waiting for. QEMU and the build tools die
// with the testbed (parent-death signal), so nothing outlives it.
func interruptible(parent context.Context, stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
		case <-done:
			return
		}
		fmt.Fprintln(stderr, "testbed: interrupted: stopping (interrupt again to exit at once)")
		cancel()
		select {
		case <-sigs:
		case <-done:
			return
		}
		fmt.Fprintln(stderr, "testbed: interrupted twice: exiting without waiting")
		os.Exit(exitError)
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
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
		fmt.Fprintln(stderr, "testbed:", term.Escape(err.Error()))
		return exitMismatch
	default:
		fmt.Fprintln(stderr, "testbed:", term.Escape(err.Error())) // one line, nothing raw from input
		return exitError
	}
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// testCommands are commands compiled in only for tests (build tag
// testbedhang); empty in the real binary.
var testCommands []command

func commands() []command {
	return append([]command{
		{"variants", "list the registration variants", runVariants},
		{"matrix", "run cells and grade them against their expectations", runMatrix},
		{"snapshot", "take the snapshot of one cell", runSnapshot},
		{"boot", "boot one cell under QEMU and keep it up until Ctrl-C", runBoot},
		{"ssh", "a shell or one command in a cell started with boot", runSSH},
		{"bench", "measure the emulated matrix and, with --boots, real boot-to-SSH", runBench},
		{"diff", "compare two cells or two snapshot files", runDiff},
		{"bisect", "find the first patch of a series that changes a check or snapshot field in a cell", runBisect},
		{"fidelity", "compare a real run's snapshots with the emulated model, field by field", runFidelity},
		{"changes", "what changed between two matrix runs (results directories or report.json files)", runChanges},
		{"prune", "remove cached images and kernels not used for a while", runPrune},
		{"firmware", "list the Arm firmware builds, or build them (--build) and print their flash images", runFirmware},
		{"prepare", "build what cells need (rootfs, kernels, firmware) into the cache, booting nothing", runPrepare},
	}, testCommands...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr) // a mistake: the usage text is not output
		return usagef("no command given")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
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
// (the flag package would print the whole usage text on a bad flag; that
// text is never output, so it goes nowhere) and whose --help prints to
// stdout.
func newFlags(name, synopsis string, stdout io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.help = func() {
		fmt.Fprintf(stdout, "usage: testbed %s %s\n\nflags:\n", name, synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// flagSet is a command's flags with its --help text, which only an
// explicit -h/--help prints.
type flagSet struct {
	*flag.FlagSet
	help func()
}

func parseFlags(fs *flagSet, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.help()
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
