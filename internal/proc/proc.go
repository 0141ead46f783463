// Package proc runs host processes one way. A process leads its own
// process group, so a terminal's Ctrl-C reaches the testbed and not the
// tool, and a signal can reach everything the tool started; it dies with
// the testbed (parent-death signal), children included; cancelling the
// context stops the whole group, SIGTERM first (make deletes half-written
// targets, mmdebstrap unmounts) and SIGKILL after a grace period; and a
// failure is one line ending with the tool's last lines of output.
//
// Run is for tools that start processes of their own (make, mmdebstrap,
// patch, git, go): a parent-death signal reaches only one process, so the
// group is led by a small /bin/sh guard that passes the testbed's death on
// to the whole group. Start is for one long-lived process that starts none
// (QEMU): it leads its group itself, so its pid is the caller's to record.
//
// Tests: go test ./internal/proc (they start sh, sleep and a copy of the
// test binary as the parent that dies).
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"cca-testbed/internal/timeout"
)

// Cmd is one host process to run.
type Cmd struct {
	// Argv is the program and its arguments; the program is looked up in
	// this process's PATH.
	Argv []string
	// Dir is the working directory ("" is this process's).
	Dir string
	// Env is the environment (nil is this process's).
	Env []string
	// Stdin feeds the program (nil is /dev/null).
	Stdin io.Reader
	// Stdout and Stderr receive the output as it comes, besides the tail
	// kept for the error; nil discards it.
	Stdout, Stderr io.Writer
	// Grace is how long a stopped group has between SIGTERM and SIGKILL
	// (default 10 s × timeout.Scale).
	Grace time.Duration
	// Lines is how many last lines of output an error quotes (default 3).
	Lines int
}

func (c Cmd) grace() time.Duration {
	if c.Grace > 0 {
		return c.Grace
	}
	return timeout.Scaled(10 * time.Second)
}

// Error is a process that failed: it could not start, exited non-zero,
// was killed, or was stopped because its context ended (then Err is the
// context's error, so errors.Is(err, context.Canceled) holds).
type Error struct {
	Argv []string
	Err  error
	// Tail is the end of the process's output (stdout and stderr).
	Tail string
	// lines is how many last lines Error quotes.
	lines int
}

// Error is one line: the program, the cause, its last lines of output.
func (e *Error) Error() string {
	msg := e.Argv[0] + ": " + e.Err.Error()
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		if c := ee.ExitCode(); c > 128 && c < 128+65 {
			// The guard reports a killed tool as 128+signal, as sh does.
			msg += " (" + syscall.Signal(c-128).String() + ")"
		}
	}
	if last := LastLines(e.Tail, e.lines); last != "" {
		msg += ": " + last
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// guard leads the group of a Run. $1 is the grace period in seconds, the
// rest the command. On SIGTERM (the testbed died: parent-death signal; or
// it cancelled and signalled the group) it stops the group: SIGTERM now,
// SIGKILL once the command ended or the grace period ran out. A
// background command's stdin would be /dev/null, so fd 3 carries ours.
const guard = `g=$1; shift
trap 'trap "" TERM; kill -TERM 0; (sleep "$g"; kill -KILL 0) & wait "$c"; kill -KILL 0' TERM
exec 3<&0
"$@" <&3 3<&- &
c=$!
wait "$c"`

// Run runs c to the end; see the package comment for the policy. The
// error is an *Error.
func Run(ctx context.Context, c Cmd) error {
	return run(ctx, c, nil)
}

// Output runs c and returns its standard output (which then goes nowhere
// else); standard error goes to c.Stderr and the error's tail.
func Output(ctx context.Context, c Cmd) ([]byte, error) {
	var out bytes.Buffer
	err := run(ctx, c, &out)
	return out.Bytes(), err
}

func run(ctx context.Context, c Cmd, stdout io.Writer) error {
	if len(c.Argv) == 0 {
		return errors.New("proc: empty command")
	}
	fail := func(tail *Tail, err error) error {
		return &Error{Argv: c.Argv, Err: err, Tail: tail.String(), lines: c.lines()}
	}
	tail := NewTail(0)
	prog, err := exec.LookPath(c.Argv[0])
	if err != nil {
		return fail(tail, err)
	}
	grace := c.grace()
	args := append([]string{"-c", guard, "sh", strconv.FormatFloat(grace.Seconds(), 'f', 3, 64), prog}, c.Argv[1:]...)
	cmd := exec.CommandContext(ctx, "/bin/sh", args...)
	cmd.Dir, cmd.Env, cmd.Stdin = c.Dir, c.Env, c.Stdin
	cmd.Stdout = writers(tail, c.Stdout)
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Stderr = writers(tail, c.Stderr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = grace
	err = cmd.Run()
	if cmd.Process != nil {
		// Nothing the tool started may outlive it (apt under qemu-user, a
		// compiler behind a killed make).
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fail(tail, err)
	}
	return nil
}

func (c Cmd) lines() int {
	if c.Lines > 0 {
		return c.Lines
	}
	return 3
}

// writers is w beside the tail, or the tail alone.
func writers(tail *Tail, w io.Writer) io.Writer {
	if w == nil {
		return tail
	}
	return io.MultiWriter(w, tail)
}

// Process is one long-lived process from Start. Its methods are safe for
// concurrent use.
type Process struct {
	cmd  *exec.Cmd
	tail *Tail
	done chan struct{}
	err  error // Wait's result; read after done
}

// Start starts c as a process that leads its own group and gets SIGKILL
// when the testbed dies. It must start no processes of its own (their
// parent-death signal would be theirs to set); the caller ends it (Kill,
// or its own protocol) and learns of its exit from Done. c.Stdin, Grace
// and Lines are not used.
func Start(c Cmd) (*Process, error) {
	if len(c.Argv) == 0 {
		return nil, errors.New("proc: empty command")
	}
	p := &Process{tail: NewTail(0), done: make(chan struct{})}
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Dir, cmd.Env = c.Dir, c.Env
	cmd.Stdout = writers(p.tail, c.Stdout)
	cmd.Stderr = writers(p.tail, c.Stderr)
	// Pdeathsig follows the thread that forked; Go does not retire threads
	// that start processes, so in practice it is the testbed's death.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A stray child holding the pipes must not hold Wait.
	cmd.WaitDelay = timeout.Scaled(time.Second)
	if err := cmd.Start(); err != nil {
		return nil, &Error{Argv: c.Argv, Err: err, lines: 1}
	}
	p.cmd = cmd
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process ended (exec's Wait result), once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Output is the tail of the process's output so far.
func (p *Process) Output() string { return p.tail.String() }

// Kill sends SIGKILL to the process's group and to the process. Once it
// has been reaped nothing is sent: the group id may belong to someone
// else by then, while the direct signal goes through the pidfd.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
}

// Tail keeps the last bytes written to it (64 KiB by default); it is safe
// for concurrent use.
type Tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

// NewTail keeps the last max bytes (64 KiB when max <= 0).
func NewTail(max int) *Tail {
	if max <= 0 {
		max = 64 << 10
	}
	return &Tail{max: max}
}

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// String is what the tail holds.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// LastLines is the last n non-blank lines of s, trimmed and joined with
// " | ": a tool's last words, short enough for a one-line error.
func LastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

var _ io.Writer = (*Tail)(nil)

// StartTime reads a live process's start time from /proc/PID/stat (field
// 22, in clock ticks since boot), which with the pid names one process
// even after the pid is reused; a zombie counts as ended.
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, the state
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
