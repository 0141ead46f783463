package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"cca-testbed/internal/timeout"
)

// run runs a host tool, its output appended to log (or captured into the
// error when log is nil). Cancelling ctx sends SIGTERM to the tool's whole
// process group (mmdebstrap cleans up its mounts on it), then after a grace
// period SIGKILL.
func run(ctx context.Context, log *os.File, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	if log != nil {
		fmt.Fprintf(log, "\n$ %s %s\n", name, strings.Join(args, " "))
		cmd.Stdout, cmd.Stderr = log, log
	} else {
		cmd.Stdout, cmd.Stderr = &out, &out
	}
	// Its own process group, so cancelling reaches apt and dpkg too; and
	// SIGTERM if this process dies without cancelling (the tool would
	// otherwise go on writing into a directory that is no longer locked).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = timeout.Scaled(30 * time.Second)
	err := cmd.Run()
	if err != nil && cmd.Process != nil {
		// Nothing of a failed tool may outlive it (apt under qemu-user).
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", name, ctx.Err())
		}
		if log == nil && out.Len() > 0 {
			// One line: the last lines of the tool's output, joined.
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) > 3 {
				lines = lines[len(lines)-3:]
			}
			return fmt.Errorf("%s: %w: %s", name, err, strings.Join(lines, " | "))
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
