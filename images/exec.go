package images

import (
	"context"
	"fmt"
	"io"
	"time"

	"cca-testbed/internal/proc"
	"cca-testbed/internal/shell"
	"cca-testbed/internal/timeout"
)

// run runs a host tool through proc (its own process group, dies with the
// testbed, stopped as a group on cancel), its output appended to log when
// given. The error ends with the tool's last lines. mmdebstrap unmounts on
// SIGTERM, so a cancelled tool gets 30 s before SIGKILL.
func run(ctx context.Context, log io.Writer, name string, args ...string) error {
	argv := append([]string{name}, args...)
	if log != nil {
		fmt.Fprintf(log, "\n$ %s\n", shell.Join(argv...))
	}
	return proc.Run(ctx, proc.Cmd{Argv: argv, Stdout: log, Stderr: log, Grace: timeout.Scaled(30 * time.Second)})
}
