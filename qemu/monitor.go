package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"cca-testbed/internal/timeout"

	"github.com/digitalocean/go-qemu/qmp"
)

// monitor is a QMP connection where nothing can block past a deadline.
//
// go-qemu's SocketMonitor has no deadline of its own: Connect waits for
// the banner forever and Run waits for the reply forever, and a reply that
// arrives after its caller gave up would be handed to the next command.
// So every call runs in a goroutine raced against the context, and a call
// that loses (or fails in any way) closes the connection: Disconnect
// unblocks the waiting Run by closing the socket, and the next call dials
// afresh (cheap: under a millisecond on a unix socket). Events are never
// subscribed, so go-qemu's reader never blocks on an event channel.
type monitor struct {
	path string
	// sem holds one token: one command at a time, acquired with a context
	// so a caller stuck behind a slow command still keeps its deadline.
	sem chan struct{}
	mon *qmp.SocketMonitor // nil when not connected; guarded by sem
}

func newMonitor(path string) *monitor {
	return &monitor{path: path, sem: make(chan struct{}, 1)}
}

// defaultCallTimeout bounds a call whose context has no deadline
// (times timeout.Scale).
const defaultCallTimeout = 10 * time.Second

// dialQMP connects to the socket at path and does the capabilities
// handshake within ctx.
func dialQMP(ctx context.Context, path string) (*qmp.SocketMonitor, error) {
	wait := timeout.Scaled(defaultCallTimeout)
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if wait <= 0 {
		return nil, context.DeadlineExceeded
	}
	mon, err := qmp.NewSocketMonitor("unix", path, wait)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- mon.Connect() }()
	select {
	case err := <-done:
		if err != nil {
			mon.Disconnect()
			return nil, fmt.Errorf("handshake: %w", err)
		}
		return mon, nil
	case <-ctx.Done():
		// Connect cannot be interrupted without racing on go-qemu's
		// internals, so let it finish in the background: it ends when the
		// peer answers or goes away (Stop kills QEMU, so it does), and the
		// connection is closed then. The caller is not held up.
		go func() {
			<-done
			mon.Disconnect()
		}()
		return nil, fmt.Errorf("no QMP banner and handshake on %s: %w", path, context.Cause(ctx))
	}
}

// run executes one raw QMP command and returns its "return" value.
func (m *monitor) run(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	ctx, cancel := withDefaultTimeout(ctx, timeout.Scaled(defaultCallTimeout))
	defer cancel()
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the previous QMP command: %w", context.Cause(ctx))
	}
	defer func() { <-m.sem }()

	if m.mon == nil {
		mon, err := dialQMP(ctx, m.path)
		if err != nil {
			return nil, err
		}
		m.mon = mon
	}
	req, err := json.Marshal(qmp.Command{Execute: cmd, Args: args})
	if err != nil {
		return nil, fmt.Errorf("encoding arguments: %w", err)
	}
	type result struct {
		out []byte
		err error
	}
	mon := m.mon
	ch := make(chan result, 1)
	go func() {
		out, err := mon.Run(req)
		ch <- result{out, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			// A QEMU error reply leaves the connection usable, but a
			// transport error does not and go-qemu does not say which it
			// was: start over either way.
			m.drop()
			return nil, r.err
		}
		var resp struct {
			Return json.RawMessage `json:"return"`
		}
		if err := json.Unmarshal(r.out, &resp); err != nil {
			m.drop()
			return nil, fmt.Errorf("decoding reply: %w", err)
		}
		return resp.Return, nil
	case <-ctx.Done():
		// Closing the socket makes the pending Run return; wait for it so
		// no goroutine outlives the call.
		m.drop()
		<-ch
		return nil, fmt.Errorf("no reply: %w", context.Cause(ctx))
	}
}

// drop closes the connection; the next run dials again. Caller holds sem.
func (m *monitor) drop() {
	if m.mon != nil {
		m.mon.Disconnect()
		m.mon = nil
	}
}

// close drops the connection unless a command holds it (that command's own
// deadline then closes it).
func (m *monitor) close() {
	select {
	case m.sem <- struct{}{}:
		m.drop()
		<-m.sem
	default:
	}
}

// withDefaultTimeout adds d to ctx unless it already has a deadline.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// isDeadline reports whether err is a context deadline (as opposed to a
// refused connection or a QEMU error reply).
func isDeadline(err error) bool { return errors.Is(err, context.DeadlineExceeded) }
