//go:build testbedhang

package main

import (
	"context"
	"fmt"
	"io"
)

// A command that stands for a run whose clean-up hangs after Ctrl-C (a
// stuck read, an unresponsive QEMU): only the second Ctrl-C can end it.
// Built only by TestSecondInterruptExits (go build -tags testbedhang).
func init() {
	testCommands = append(testCommands, command{"hang-after-cancel", "test only: wait for ctx, then hang", func(ctx context.Context, _ []string, stdout, _ io.Writer) error {
		fmt.Fprintln(stdout, "waiting")
		<-ctx.Done()
		fmt.Fprintln(stdout, "cancelled, now hanging")
		select {}
	}})
}
