package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cca-testbed/internal/proc"
	"cca-testbed/internal/shell"
	"cca-testbed/internal/timeout"
)

// Options tune Start. The zero value is ready to use; every duration's
// zero means its default multiplied by timeout.Scale.
type Options struct {
	// Logger receives lifecycle events and, at debug level, every console
	// and QEMU stderr line; nil discards.
	Logger *slog.Logger
	// Name is the "vm" attribute of every log record (a cell name, say).
	Name string
	// KeepDir keeps the temporary run directory Start made when
	// Config.Dir was empty. A Dir the caller named is never removed;
	// only the QMP socket inside it is.
	KeepDir bool
	// StartTimeout bounds QEMU start to a working QMP handshake
	// (default 20 s; it takes about 0.1 s).
	StartTimeout time.Duration
	// CommandTimeout bounds a QMP call whose context has no deadline
	// (default 10 s).
	CommandTimeout time.Duration
	// StopGrace is how long Stop waits after QMP "quit" before SIGKILL
	// (default 5 s).
	StopGrace time.Duration
	// FailLinger is how long the console is still read after a failure
	// line before QEMU is killed, so the excerpt holds the call trace
	// that follows it; with panic=-1 QEMU usually exits sooner by itself
	// (default 1 s).
	FailLinger time.Duration
	// Patterns are the console lines that fail a boot; nil means
	// DefaultPatterns, an empty non-nil slice disables the check.
	Patterns []Pattern
	// OnConsoleLine, if set, sees every console line as it arrives (for
	// "login:" or "reached target" detectors). It runs on the watcher
	// goroutine and must not block.
	OnConsoleLine func(line string)
	// PortAttempts is how many free ports are tried when the forwarding
	// port was taken between choosing and binding it (default 3).
	PortAttempts int
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = timeout.Scaled(v)
		}
	}
	def(&o.StartTimeout, 20*time.Second)
	def(&o.CommandTimeout, 10*time.Second)
	def(&o.StopGrace, 5*time.Second)
	def(&o.FailLinger, time.Second)
	if o.PortAttempts <= 0 {
		o.PortAttempts = 3
	}
	return o
}

// VM is one running QEMU. Its lifecycle mirrors os/exec: Start, then Wait
// (or Stop, which also waits). All methods are safe for concurrent use.
type VM struct {
	cfg  resolved
	opts Options
	log  *slog.Logger
	proc *proc.Process // QEMU; its output tail is QEMU's stderr and stdout
	port int
	mon  *monitor
	con  *Watcher
	// tmpDir is set when Start made the run directory itself.
	tmpDir bool

	exited  <-chan struct{} // closed once QEMU is reaped
	exitCtx context.Context
	done    chan struct{} // closed once reaped, console read, Err final

	stopping atomic.Bool // an exit from now on was asked for
	stopOnce sync.Once
	stopErr  error

	mu  sync.Mutex
	err error // first cause of the end; guarded by mu
}

// Start validates cfg, launches QEMU and returns once QMP answers; if the
// kernel fails on the console before that, the error is a *BootError. ctx
// bounds the VM's whole life, like exec.CommandContext: when it is done
// (Ctrl-C), QEMU is stopped (QMP quit, SIGKILL after StopGrace) and
// reaped, and Wait returns the context's error.
//
// Start writes cmdline.txt (the exact command, shell-quoted) and
// reproduce.sh (the same VM by hand, console on the terminal) into
// cfg.Dir, which it creates 0700 if needed (and tightens to 0700 if not).
func Start(ctx context.Context, cfg Config, opts Options) (*VM, error) {
	opts = opts.withDefaults()
	log := opts.Logger.With("vm", opts.Name)
	if cfg.Binary == "" {
		cfg.Binary = DefaultBinary
	}
	bin, err := exec.LookPath(cfg.Binary)
	if err != nil {
		return nil, &InfraError{Op: "lookup", Err: fmt.Errorf("%w: %v", ErrQEMUMissing, err)}
	}
	cfg.Binary = bin
	if cfg.Accel == "" {
		cfg.Accel = "tcg"
		if p := profiles[cfg.Profile]; !p.tcgOnly && KVMUsable() {
			cfg.Accel = "kvm"
		}
	}
	tmpDir := false
	if cfg.Dir == "" {
		if cfg.Dir, err = os.MkdirTemp("", "cca-qemu-"); err != nil {
			return nil, &InfraError{Op: "start", Err: err}
		}
		tmpDir = true
	} else if err := prepareDir(&cfg.Dir); err != nil {
		return nil, err
	}
	cleanup := func() {
		if tmpDir && !opts.KeepDir {
			os.RemoveAll(cfg.Dir)
		}
	}
	// QEMU runs in Dir, and cmdline.txt must work from anywhere: make
	// every file path absolute.
	if err := absPaths(&cfg); err != nil {
		cleanup()
		return nil, err
	}
	if cfg.Initrd != "" && cfg.InitrdSize == 0 {
		st, err := os.Stat(cfg.Initrd)
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("%w: initrd: %v", ErrKernel, err)
		}
		cfg.InitrdSize = st.Size()
	}
	if err := Validate(cfg); err != nil {
		cleanup()
		return nil, err
	}
	r, err := resolve(cfg)
	if err != nil {
		cleanup()
		return nil, err
	}

	startCtx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		v, err := launch(startCtx, r, opts, log)
		if err == nil {
			v.tmpDir = tmpDir
			v.supervise(ctx)
			log.Info("qemu started", "pid", v.Pid(), "ssh", v.SSHAddr(), "accel", r.Accel, "dir", r.Dir)
			return v, nil
		}
		var ie *InfraError
		if attempt < opts.PortAttempts && errors.As(err, &ie) &&
			strings.Contains(ie.Stderr, "Could not set up host forwarding rule") {
			log.Warn("forwarding port taken, retrying with another", "attempt", attempt)
			continue
		}
		cleanup()
		return nil, err
	}
}

// absPaths makes the kernel, firmware and disk paths absolute.
func absPaths(cfg *Config) error {
	var err error
	abs := func(p *string) {
		if err == nil && *p != "" {
			*p, err = filepath.Abs(*p)
		}
	}
	abs(&cfg.Kernel)
	abs(&cfg.Initrd)
	abs(&cfg.Firmware)
	abs(&cfg.RSITable)
	disks := append([]Disk(nil), cfg.Disks...)
	for i := range disks {
		abs(&disks[i].Path)
		abs(&disks[i].Backing)
	}
	cfg.Disks = disks
	if err != nil {
		return &InfraError{Op: "start", Err: err}
	}
	return nil
}

// prepareDir makes dir absolute, creates it 0700 if missing and tightens
// it to 0700 if it exists: the QMP socket inside controls the VM, so
// nobody else may enter. (t.TempDir and MkdirAll(0755) dirs are common.)
func prepareDir(dir *string) error {
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return &InfraError{Op: "start", Err: err}
	}
	*dir = abs
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return fmt.Errorf("%w: run directory: %v", ErrConfig, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return &InfraError{Op: "start", Err: err}
	}
	if !st.IsDir() {
		return fmt.Errorf("%w: run directory %s is not a directory", ErrConfig, abs)
	}
	if st.Mode().Perm() != 0o700 {
		if err := os.Chmod(abs, 0o700); err != nil {
			return fmt.Errorf("%w: run directory %s has mode %04o and cannot be made 0700 (it holds the QMP socket): %v", ErrConfig, abs, st.Mode().Perm(), err)
		}
	}
	return nil
}

// KVMUsable reports whether this host can run an arm64 guest under KVM:
// an arm64 host whose /dev/kvm opens read-write.
func KVMUsable() bool {
	if runtime.GOARCH != "arm64" {
		return false
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// pickPort chooses the forwarding port; tests replace it.
var pickPort = freePort

// freePort asks the kernel for a free loopback port. It may be taken
// again before QEMU binds it; Start retries when that happens.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch is one attempt: pick a port, write the run files, start QEMU and
// wait for QMP. On failure QEMU is killed and reaped before it returns.
func launch(ctx context.Context, r resolved, opts Options, log *slog.Logger) (*VM, error) {
	port, err := pickPort()
	if err != nil {
		return nil, &InfraError{Op: "start", Err: fmt.Errorf("no free loopback port: %w", err)}
	}
	argv := r.argv(consoleFile, strconv.Itoa(port))
	sock := filepath.Join(r.Dir, QMPSocket)
	for _, p := range []string{sock, filepath.Join(r.Dir, ConsoleLog)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, &InfraError{Op: "start", Err: err}
		}
	}
	if err := os.WriteFile(filepath.Join(r.Dir, CmdlineFile), []byte(shell.Join(argv...)+"\n"), 0o600); err != nil {
		return nil, &InfraError{Op: "start", Err: err}
	}
	if err := os.WriteFile(filepath.Join(r.Dir, Reproduce), []byte(reproduceScript(r, port)), 0o700); err != nil {
		return nil, &InfraError{Op: "start", Err: err}
	}

	v := &VM{
		cfg:  r,
		opts: opts,
		log:  log,
		port: port,
		mon:  newMonitor(sock),
		con:  NewWatcher(opts.Patterns),
		done: make(chan struct{}),
	}
	// Own process group, so a terminal's Ctrl-C reaches us and not QEMU
	// directly (we stop it in order); it dies with the testbed. QEMU
	// starts no processes, so proc.Start, which records its own pid.
	p, err := proc.Start(proc.Cmd{Argv: argv, Dir: r.Dir})
	if err != nil {
		return nil, &InfraError{Op: "start", Err: err}
	}
	v.proc, v.exited = p, p.Done()
	exitCtx, exitCancel := context.WithCancel(context.Background())
	v.exitCtx = exitCtx
	go func() {
		<-p.Done()
		exitCancel()
	}()
	log.Debug("qemu launched", "pid", p.Pid(), "cmdline", shell.Join(argv...))

	if err := v.waitQMP(ctx); err != nil {
		v.kill()
		<-v.exited
		v.mon.close()
		os.Remove(sock)
		// A kernel can panic (and panic=-1 end QEMU) before QMP was ever
		// asked: that is the kernel's failure, not the harness's.
		if be := scanConsole(filepath.Join(r.Dir, ConsoleLog), opts.Patterns); be != nil {
			return nil, be
		}
		return nil, err
	}
	return v, nil
}

// scanConsole replays a finished console log through a Watcher.
func scanConsole(path string, patterns []Pattern) *BootError {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	w := NewWatcher(patterns)
	w.Feed(f)
	return w.Err()
}

// waitQMP polls for the QMP socket until the handshake and query-status
// succeed, QEMU exits, or ctx ends.
func (v *VM) waitQMP(ctx context.Context) error {
	const poll = 20 * time.Millisecond
	var last error
	for {
		select {
		case <-v.exited:
			return &InfraError{Op: "start", Err: fmt.Errorf("%w before QMP answered (%s)", ErrExited, exitText(v.proc.Err())), Stderr: v.proc.Output()}
		case <-ctx.Done():
			return &InfraError{Op: "qmp", Err: fmt.Errorf("no QMP handshake on %s (last error: %v): %w", v.mon.path, last, context.Cause(ctx)), Stderr: v.proc.Output()}
		default:
		}
		// A short per-try budget: a socket that exists but never
		// answers must not eat the whole start budget in one go.
		tctx, cancel := context.WithTimeout(ctx, timeout.Scaled(2*time.Second))
		st, err := v.status(tctx)
		cancel()
		if err == nil {
			switch st {
			case "guest-panicked", "internal-error", "io-error", "shutdown":
				return &InfraError{Op: "start", Err: fmt.Errorf("QEMU came up in state %q", st), Stderr: v.proc.Output()}
			}
			return nil
		}
		last = err
		select {
		case <-v.exited:
		case <-ctx.Done():
		case <-time.After(poll):
		}
	}
}

// supervise runs the VM's life after a successful start: the console
// watcher, the context, and the bookkeeping once QEMU is gone.
func (v *VM) supervise(ctx context.Context) {
	conDone := make(chan struct{})
	go func() {
		defer close(conDone)
		onLine := func(l string) {
			v.log.Debug("console", "line", l)
			if v.opts.OnConsoleLine != nil {
				v.opts.OnConsoleLine(l)
			}
		}
		tailFile(context.Background(), v.Console(), v.con, v.exited, onLine, func() {
			be := v.con.Err()
			v.log.Warn("boot failure on the console", "reason", be.Reason, "line", be.Line)
			v.fail(be)
			go func() {
				// Let the trace after the line reach the excerpt; with
				// panic=-1 QEMU often exits by itself first.
				select {
				case <-v.exited:
				case <-time.After(v.opts.FailLinger):
				}
				sctx, cancel := context.WithTimeout(context.Background(), v.opts.StopGrace)
				defer cancel()
				v.Stop(sctx)
			}()
		})
	}()
	go func() {
		select {
		case <-ctx.Done():
			v.fail(fmt.Errorf("qemu: stopped because the context ended: %w", context.Cause(ctx)))
			go v.Stop(context.Background())
		case <-v.exited:
		}
		<-v.exited
		<-conDone
		v.mon.close()
		v.mu.Lock()
		if be := v.con.Err(); be != nil {
			if _, ok := v.err.(*BootError); ok || v.err == nil {
				v.err = be // now with the full excerpt
			}
		}
		if v.err == nil && !v.stopping.Load() {
			v.err = &InfraError{Op: "run", Err: fmt.Errorf("%w (%s)", ErrExited, exitText(v.proc.Err())), Stderr: v.proc.Output()}
		}
		v.mu.Unlock()
		v.log.Info("qemu exited", "status", exitText(v.proc.Err()), "err", v.Err())
		os.Remove(filepath.Join(v.cfg.Dir, QMPSocket))
		if v.tmpDir && !v.opts.KeepDir {
			os.RemoveAll(v.cfg.Dir)
		}
		close(v.done)
	}()
}

// exitText says how the process ended, for messages.
func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// fail records the first cause of the VM's end.
func (v *VM) fail(err error) {
	v.mu.Lock()
	if v.err == nil {
		v.err = err
	}
	v.mu.Unlock()
}

// kill sends SIGKILL to QEMU's process group and to QEMU itself (nothing
// once it is reaped).
func (v *VM) kill() { v.proc.Kill() }

// Stop ends QEMU: QMP "quit", then SIGKILL to its process group when the
// grace period (Options.StopGrace, or ctx's end if sooner) runs out. It
// always waits until QEMU is reaped and may be called any number of
// times, concurrently. It returns an error only if the VM could not be
// stopped cleanly (killed instead); how the VM ended is Wait's answer.
func (v *VM) Stop(ctx context.Context) error {
	v.stopOnce.Do(func() { v.stopErr = v.halt(ctx) })
	<-v.done
	return v.stopErr
}

func (v *VM) halt(ctx context.Context) error {
	v.stopping.Store(true)
	select {
	case <-v.exited:
		return nil
	default:
	}
	grace, cancel := context.WithTimeout(ctx, v.opts.StopGrace)
	defer cancel()
	qctx, qcancel := context.WithTimeout(grace, min(v.opts.StopGrace, timeout.Scaled(2*time.Second)))
	// QEMU may close the socket before replying to quit: only the exit
	// counts.
	_, qerr := v.mon.run(qctx, "quit", nil)
	qcancel()
	select {
	case <-v.exited:
		v.log.Debug("qemu quit")
		return nil
	case <-grace.Done():
	}
	v.log.Warn("qemu did not quit in time, killing it", "quit_error", qerr)
	v.kill()
	<-v.exited
	return &InfraError{Op: "stop", Err: fmt.Errorf("QEMU ignored quit and was killed (quit: %v)", qerr), Stderr: v.proc.Output()}
}

// Wait blocks until QEMU has exited and been reaped, and returns why it
// ended: nil after Stop, a *BootError when the console showed a failure,
// an *InfraError wrapping ErrExited when QEMU quit on its own, or the
// context's error when Start's context ended.
func (v *VM) Wait() error {
	<-v.done
	return v.Err()
}

// Exited is closed once QEMU is gone and Err is final; select on it to
// abandon SSH dialing when the VM dies.
func (v *VM) Exited() <-chan struct{} { return v.done }

// Err is why the VM ended (see Wait), or nil while it runs; a boot
// failure seen on the console shows here at once, before QEMU is gone.
func (v *VM) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

// Pid is QEMU's process id (also its process group id).
func (v *VM) Pid() int { return v.proc.Pid() }

// SSHAddr is the loopback address forwarded to the guest's HostFwd port.
func (v *VM) SSHAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(v.port)) }

// Dir is the run directory.
func (v *VM) Dir() string { return v.cfg.Dir }

// Console is the path of the serial console log. With a temporary Dir
// (Config.Dir empty, no KeepDir) it is removed when the VM ends;
// ConsoleTail still answers from memory.
func (v *VM) Console() string { return filepath.Join(v.cfg.Dir, ConsoleLog) }

// ConsoleTail returns the last n console lines seen so far (the watcher
// keeps the last 1000), including an unfinished last line such as a
// login prompt.
func (v *VM) ConsoleTail(n int) string { return v.con.Tail(n) }

// Stage is the last boot stage the console announced so far (Stages:
// "BL1", "BL2", "BL31", "RMM", "kernel"), "" if none.
func (v *VM) Stage() string { return v.con.Stage() }

// StageLine is the first console line that announced stage name.
func (v *VM) StageLine(name string) string { return v.con.StageLine(name) }

// StageAt is when the console first announced stage name (zero if not yet).
func (v *VM) StageAt(name string) time.Time { return v.con.StageAt(name) }

// Stderr is the tail of QEMU's own output.
func (v *VM) Stderr() string { return v.proc.Output() }

// QMP runs a raw QMP command and returns its "return" value. Without a
// deadline in ctx it gets Options.CommandTimeout; it also gives up as
// soon as QEMU exits. Failures are *InfraError with Op "qmp <cmd>".
func (v *VM) QMP(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	select {
	case <-v.exited:
		return nil, &InfraError{Op: "qmp " + cmd, Err: fmt.Errorf("%w (%s)", ErrExited, exitText(v.proc.Err())), Stderr: v.proc.Output()}
	default:
	}
	ctx, cancel := withDefaultTimeout(ctx, v.opts.CommandTimeout)
	defer cancel()
	stop := context.AfterFunc(v.exitCtx, cancel)
	defer stop()
	out, err := v.mon.run(ctx, cmd, args)
	if err != nil {
		select {
		case <-v.exited:
			err = fmt.Errorf("%w (%s): %v", ErrExited, exitText(v.proc.Err()), err)
		default:
		}
		return nil, &InfraError{Op: "qmp " + cmd, Err: err, Stderr: v.proc.Output()}
	}
	return out, nil
}

// status is query-status without the exit shortcut (used during start).
func (v *VM) status(ctx context.Context) (string, error) {
	out, err := v.mon.run(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return "", fmt.Errorf("query-status reply %s: %w", out, err)
	}
	return st.Status, nil
}

// Status is QEMU's run state ("running", "prelaunch" when started
// Paused, "paused", ...).
func (v *VM) Status(ctx context.Context) (string, error) {
	out, err := v.QMP(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return "", &InfraError{Op: "qmp query-status", Err: fmt.Errorf("reply %s: %w", out, err)}
	}
	return st.Status, nil
}

// SaveVM takes an internal snapshot named tag (HMP savevm; the first disk
// must be qcow2). Without a deadline in ctx it gets 60 s × timeout.Scale.
func (v *VM) SaveVM(ctx context.Context, tag string) error {
	if !tagRE.MatchString(tag) {
		return fmt.Errorf("%w: snapshot tag %q: use letters, digits, '_', '.', '-'", ErrConfig, tag)
	}
	ctx, cancel := withDefaultTimeout(ctx, timeout.Scaled(60*time.Second))
	defer cancel()
	out, err := v.QMP(ctx, "human-monitor-command", map[string]string{"command-line": "savevm " + tag})
	if err != nil {
		return err
	}
	// HMP reports failure as text in an otherwise successful reply.
	var text string
	if err := json.Unmarshal(out, &text); err != nil {
		return &InfraError{Op: "savevm", Err: fmt.Errorf("reply %s: %w", out, err)}
	}
	if strings.TrimSpace(text) != "" {
		return &InfraError{Op: "savevm", Err: errors.New(strings.TrimSpace(strings.ReplaceAll(text, "\r\n", " ")))}
	}
	return nil
}
