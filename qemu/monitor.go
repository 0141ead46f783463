package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"cca-testbed/internal/timeout"
)

// monitor is a QMP client where nothing can block past a deadline and no
// command can take another's reply.
//
// Every command carries an "id" unique for the monitor's life and only the
// reply echoing it is taken; events and replies with another id are passed
// by. That matters because QEMU can send a reply on a later connection than
// the command came on: a command abandoned at its deadline (the connection
// closed) that QEMU was already executing is answered on whatever
// connection is open when it finishes, and without ids that stale reply was
// read as the next command's (savevm got a query-status reply, the
// capabilities handshake got a stale one and every later reply was one
// off). go-qemu's SocketMonitor, used before, has no ids, no deadlines and
// hands out a reply slice that its reader goroutine goes on overwriting.
//
// The connection's read and write deadlines follow the call's context, so
// a call returns by its deadline without helper goroutines. A connection
// that saw a timeout or a transport error is closed and the next call dials
// afresh (under a millisecond on a unix socket); a QEMU error reply leaves
// it in use. Commands run one at a time.
type monitor struct {
	path string
	// sem holds one token: one command at a time, acquired with a context
	// so a caller stuck behind a slow command still keeps its deadline.
	sem  chan struct{}
	conn *qmpConn // nil when not connected; guarded by sem
	seq  uint64   // last id used; guarded by sem
}

func newMonitor(path string) *monitor {
	return &monitor{path: path, sem: make(chan struct{}, 1)}
}

// defaultCallTimeout bounds a call whose context has no deadline
// (times timeout.Scale).
const defaultCallTimeout = 10 * time.Second

// QMPError is an error reply from QEMU: the command was received and
// refused, and the connection is still in step.
type QMPError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *QMPError) Error() string { return e.Class + ": " + e.Desc }

// qmpConn is one connection after the capabilities handshake.
type qmpConn struct {
	c   net.Conn
	dec *json.Decoder // QMP is a stream of JSON values, not lines
}

// message is any value QEMU sends: the banner, an event, or a reply.
type message struct {
	QMP    json.RawMessage `json:"QMP"`
	Event  string          `json:"event"`
	ID     json.RawMessage `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *QMPError       `json:"error"`
}

// bound makes c's reads and writes fail at ctx's deadline or as soon as ctx
// is cancelled; the returned func undoes the cancellation hook.
func bound(ctx context.Context, c net.Conn) func() bool {
	dl, _ := ctx.Deadline() // zero (none) when ctx has no deadline
	c.SetDeadline(dl)
	return context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
}

// dialQMP connects to the socket at path and does the capabilities
// handshake within ctx, with id as the handshake's id.
func dialQMP(ctx context.Context, path, id string) (*qmpConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	stop := bound(ctx, c)
	q := &qmpConn{c: c, dec: json.NewDecoder(c)}
	fail := func(err error) (*qmpConn, error) {
		c.Close()
		return nil, fmt.Errorf("no QMP banner and handshake on %s: %w", path, ctxErr(ctx, err))
	}
	var ban message
	if err := q.dec.Decode(&ban); err != nil {
		return fail(err)
	}
	if ban.QMP == nil {
		return fail(errors.New("the first message is not a QMP banner"))
	}
	if _, err := q.call(id, "qmp_capabilities", nil); err != nil {
		return fail(err)
	}
	if !stop() {
		// ctx ended just now and its hook may still be setting a past
		// deadline on c: never hand such a connection on.
		return fail(context.Cause(ctx))
	}
	return q, nil
}

// call sends one command with id and reads until the reply with that id.
func (q *qmpConn) call(id, cmd string, args any) (json.RawMessage, error) {
	req, err := json.Marshal(struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{cmd, args, id})
	if err != nil {
		return nil, fmt.Errorf("encoding arguments: %w", err)
	}
	if _, err := q.c.Write(append(req, '\n')); err != nil {
		return nil, err
	}
	for {
		var m message
		if err := q.dec.Decode(&m); err != nil {
			return nil, err
		}
		var got string
		if m.Event != "" || json.Unmarshal(m.ID, &got) != nil || got != id {
			continue // an event, or a reply to a command given up on
		}
		if m.Error != nil {
			return nil, m.Error
		}
		if m.Return == nil {
			return nil, fmt.Errorf("reply to %s has neither return nor error", cmd)
		}
		return m.Return, nil
	}
}

// nextID is a fresh command id. Caller holds sem.
func (m *monitor) nextID() string {
	m.seq++
	return "cca-" + strconv.FormatUint(m.seq, 10)
}

// run executes one QMP command and returns its "return" value.
func (m *monitor) run(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	ctx, cancel := withDefaultTimeout(ctx, timeout.Scaled(defaultCallTimeout))
	defer cancel()
	if ctx.Err() != nil {
		// Not "waiting for the previous command" when none is running.
		return nil, fmt.Errorf("no time left for %s: %w", cmd, context.Cause(ctx))
	}
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the previous QMP command: %w", context.Cause(ctx))
	}
	defer func() { <-m.sem }()

	if m.conn == nil {
		q, err := dialQMP(ctx, m.path, m.nextID())
		if err != nil {
			return nil, err
		}
		m.conn = q
	}
	stop := bound(ctx, m.conn.c)
	out, err := m.conn.call(m.nextID(), cmd, args)
	// A false stop means ctx's hook ran or is running: the connection may
	// get a past deadline at any moment, so it is not reused.
	reusable := stop()
	var qe *QMPError
	if err == nil || errors.As(err, &qe) {
		// An error reply is a refusal; the connection is still in step.
		if !reusable {
			m.drop()
		}
		return out, err
	}
	m.drop()
	if err = ctxErr(ctx, err); ctx.Err() != nil {
		return nil, fmt.Errorf("no reply: %w", err)
	}
	return nil, err
}

// ctxErr is ctx's cause when err came from ctx ending (the socket's
// deadline is ctx's, and may fire a moment before ctx's own timer), else
// err.
func ctxErr(ctx context.Context, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		<-ctx.Done()
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// drop closes the connection; the next run dials again. Caller holds sem.
func (m *monitor) drop() {
	if m.conn != nil {
		m.conn.c.Close()
		m.conn = nil
	}
}

// close drops the connection unless a command holds it (that command's own
// deadline, or QEMU's exit closing the socket, then ends it).
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
