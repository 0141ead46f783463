package qemu

import (
	"errors"
	"strings"

	"cca-testbed/internal/proc"
)

// Sentinel errors; check them with errors.Is.
var (
	// ErrConfig: the Config is inconsistent (no file was looked at).
	ErrConfig = errors.New("invalid qemu config")
	// ErrKernel: Config.Kernel is missing or not an arm64 Image.
	ErrKernel = errors.New("bad kernel image")
	// ErrFirmware: the rme profile's flash image is missing or not TF-A.
	ErrFirmware = errors.New("bad RME firmware")
	// ErrDisk: a disk is missing, unreadable or not in its stated format.
	ErrDisk = errors.New("bad disk")
	// ErrQEMUMissing: the QEMU binary is not installed.
	ErrQEMUMissing = errors.New("qemu-system-aarch64 not found: run scripts/setup-host")
	// ErrExited: QEMU exited when nobody asked it to.
	ErrExited = errors.New("QEMU exited unexpectedly")
	// ErrBoot is wrapped by every BootError: the kernel under test failed.
	ErrBoot = errors.New("guest kernel failed")
)

// BootError says the kernel under test failed (panic, oops, BUG, stall),
// as opposed to the harness. Its message is one line; the console lines
// around the failure are in Excerpt.
type BootError struct {
	// Reason is what was recognised, e.g. "kernel panic".
	Reason string
	// Line is the console line that matched.
	Line string
	// Excerpt is up to 30 console lines around Line, newline-separated.
	Excerpt string
}

func (e *BootError) Error() string {
	msg := "boot failed: " + e.Reason
	if l := strings.TrimSpace(e.Line); l != "" {
		msg += ": " + l
	}
	return msg
}

// Unwrap makes every BootError match ErrBoot.
func (e *BootError) Unwrap() error { return ErrBoot }

// BootFailure marks the kernel as the side that failed, so a runner that
// knows nothing of this package (matrix.BootFailure) reports the cell as a
// finding rather than a harness error.
func (*BootError) BootFailure() {}

// InfraError says the harness failed: QEMU missing, QEMU exiting with an
// error, QMP unreachable. Op names the step ("lookup", "start", "qmp",
// "run", "stop").
type InfraError struct {
	Op  string
	Err error
	// Stderr is the tail of QEMU's standard error (may be empty).
	Stderr string
}

// Error is one line: the step, the cause and QEMU's last word on stderr.
func (e *InfraError) Error() string {
	msg := "qemu " + e.Op + ": " + e.Err.Error()
	if last := proc.LastLines(e.Stderr, 1); last != "" {
		msg += ": " + last
	}
	return msg
}

func (e *InfraError) Unwrap() error { return e.Err }

var (
	_ error = (*BootError)(nil)
	_ error = (*InfraError)(nil)
)
