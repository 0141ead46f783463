package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"cca-testbed/internal/shell"
	"cca-testbed/internal/timeout"

	"golang.org/x/crypto/ssh"
)

// Defaults for the zero values of SSHConfig, each multiplied by
// timeout.Scale. They are sized for TCG, where a key exchange and a
// udevadm settle are an order of magnitude slower than on KVM.
const (
	DefaultSSHUser        = "root"
	DefaultDialTimeout    = 20 * time.Second // one TCP connect + SSH handshake
	DefaultCommandTimeout = 2 * time.Minute  // one Run, ReadFile, ... call
	// DefaultBringUpTimeout bounds DialSSH when ctx has no deadline, so a
	// guest that never answers cannot hang the caller.
	DefaultBringUpTimeout = 5 * time.Minute
)

// Backoff bounds between dial attempts while the guest boots. An attempt
// is a loopback connect that QEMU's user network answers at once, so
// polling at 4 Hz costs nothing and finds sshd within a quarter second.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 250 * time.Millisecond
	// firstBannerWait bounds the wait for the server's first bytes until
	// an attempt has been closed by the guest; it doubles after each
	// silent attempt, up to DialTimeout. Why: QEMU's user network accepts
	// a connection on the host before the guest's NIC is up, and its SYN
	// to the guest is then lost; the retransmission reaches the guest
	// seconds after sshd listens (a 0.2 s connection measured 3 s late).
	// A fresh attempt gets through at once.
	firstBannerWait = time.Second
	// killGrace is how long Run waits for a killed command's session to
	// end before giving up on it.
	killGrace = 500 * time.Millisecond
)

var (
	// ErrHostKey means the guest presented a host key other than the
	// pinned one. It is never retried: the image and the key disagree.
	ErrHostKey = errors.New("ssh host key mismatch")
	// ErrAborted is DialSSH's error when SSHConfig.Abort closes and
	// AbortErr gives no better reason.
	ErrAborted = errors.New("ssh dial aborted: the guest is gone")
	// ErrAuth means the guest refused our key. Not retried: the key is
	// baked into the image, so waiting does not help.
	ErrAuth = errors.New("ssh authentication refused")
)

// SSHConfig says how to reach one guest. Zero values take the documented
// defaults; Addr and HostKey are required, and one of Signer or KeyPath.
type SSHConfig struct {
	Addr    string        // host:port of the forwarded sshd, e.g. 127.0.0.1:2222
	User    string        // default DefaultSSHUser
	Signer  ssh.Signer    // client key; if nil, read from KeyPath
	KeyPath string        // OpenSSH private key file (unencrypted)
	HostKey ssh.PublicKey // pinned guest host key; required, never skipped

	DialTimeout    time.Duration // per attempt; default DefaultDialTimeout
	CommandTimeout time.Duration // per command; default DefaultCommandTimeout
	Logger         *slog.Logger  // default: discard

	// Abort, when closed, says the guest is gone (QEMU exited): DialSSH
	// stops at once instead of retrying to its deadline. AbortErr, if set,
	// says why and becomes DialSSH's error (ErrAborted otherwise). The pair
	// matches a process handle's Done()/Err().
	Abort    <-chan struct{}
	AbortErr func() error
}

func (c SSHConfig) withDefaults() SSHConfig {
	if c.User == "" {
		c.User = DefaultSSHUser
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = timeout.Scaled(DefaultDialTimeout)
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = timeout.Scaled(DefaultCommandTimeout)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c SSHConfig) check() error {
	if c.HostKey == nil {
		return errors.New("ssh config: HostKey is nil: pin the guest's host key (the image's ssh_host_ed25519_key.pub)")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("ssh config: Addr %q: %v: use host:port like 127.0.0.1:2222", c.Addr, err)
	}
	if c.Signer == nil && c.KeyPath == "" {
		return errors.New("ssh config: no client key: set Signer or KeyPath")
	}
	return nil
}

func (c SSHConfig) abortErr() error {
	if c.AbortErr != nil {
		if err := c.AbortErr(); err != nil {
			return fmt.Errorf("%w: %w", ErrAborted, err)
		}
	}
	return ErrAborted
}

// SSH is a Guest reached over one SSH connection; each call opens its own
// session on it, so an SSH is safe for concurrent use.
type SSH struct {
	cfg    SSHConfig
	client *ssh.Client
	log    *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

var _ Guest = (*SSH)(nil)

// DialSSH connects to the guest, retrying with capped exponential backoff
// while it boots (refused, reset, or a handshake cut short are all normal
// then) until ctx ends or cfg.Abort closes. Without a deadline on ctx it
// gives up after DefaultBringUpTimeout. A host key mismatch (ErrHostKey)
// or a refused key (ErrAuth) ends it at once.
func DialSSH(ctx context.Context, cfg SSHConfig) (*SSH, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Signer == nil {
		pem, err := os.ReadFile(cfg.KeyPath)
		if err != nil {
			return nil, fmt.Errorf("ssh config: read client key: %w", err)
		}
		if cfg.Signer, err = ssh.ParsePrivateKey(pem); err != nil {
			return nil, fmt.Errorf("ssh config: parse client key %s: %w", cfg.KeyPath, err)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout.Scaled(DefaultBringUpTimeout))
		defer cancel()
	}

	start := time.Now()
	backoff, bannerWait := minBackoff, min(firstBannerWait, cfg.DialTimeout)
	var last error
	for attempt := 1; ; attempt++ {
		if err := stopped(ctx, cfg); err != nil {
			return nil, dialGiveUp(cfg, attempt-1, start, err, last)
		}
		client, err := dialOnce(ctx, cfg, bannerWait)
		if err == nil {
			cfg.Logger.Debug("ssh connected", "addr", cfg.Addr, "attempts", attempt, "elapsed", time.Since(start))
			return &SSH{cfg: cfg, client: client, log: cfg.Logger}, nil
		}
		switch {
		case errors.Is(err, ErrHostKey) || errors.Is(err, ErrAuth):
			return nil, fmt.Errorf("ssh %s: %w", cfg.Addr, err)
		case errors.Is(err, errSilent):
			bannerWait = min(2*bannerWait, cfg.DialTimeout)
		case errors.Is(err, errClosed):
			// The guest's network answered, so a connection from now on
			// is queued for sshd and only slow if sshd is: measured
			// 1.5-3 s from accept to banner while the boot is busy.
			bannerWait = cfg.DialTimeout
		}
		last = err
		cfg.Logger.Debug("ssh dial failed, retrying", "addr", cfg.Addr, "attempt", attempt, "backoff", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		case <-cfg.Abort:
			t.Stop()
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// stopped reports why dialing must stop, Abort first: when QEMU died, that
// is the reason, even if the deadline passed meanwhile.
func stopped(ctx context.Context, cfg SSHConfig) error {
	select {
	case <-cfg.Abort:
		return cfg.abortErr()
	default:
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

func dialGiveUp(cfg SSHConfig, attempts int, start time.Time, why, last error) error {
	msg := fmt.Sprintf("ssh %s: guest not reachable after %d attempts in %v", cfg.Addr, attempts, time.Since(start).Round(time.Millisecond))
	if last == nil {
		return fmt.Errorf("%s: %w", msg, why)
	}
	return fmt.Errorf("%s: %w (last error: %w)", msg, why, last)
}

// dialOnce's errors before the server sent a byte: errSilent when nothing
// came within the banner wait, errClosed when the connection was closed
// (in a guest behind QEMU's user network: nothing listens on the port yet).
var (
	errSilent = errors.New("no ssh banner")
	errClosed = errors.New("closed before the ssh banner")
)

// dialOnce makes one TCP connection and SSH handshake, bounded by
// DialTimeout, ctx and Abort; the server must start talking within
// bannerWait.
func dialOnce(ctx context.Context, cfg SSHConfig, bannerWait time.Duration) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	// A handshake cannot take a context: closing the conn is how ctx and
	// Abort interrupt it.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			conn.Close()
		case <-cfg.Abort:
			conn.Close()
		case <-done:
		}
	}()
	dl, _ := ctx.Deadline() // always set: DialTimeout
	heard := &bannerConn{Conn: conn, full: dl}
	first := time.Now().Add(bannerWait)
	if dl.Before(first) {
		first = dl
	}
	_ = conn.SetDeadline(first)

	cc := &ssh.ClientConfig{
		User: cfg.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(cfg.Signer)},
		HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
			if err := ssh.FixedHostKey(cfg.HostKey)(host, remote, key); err != nil {
				return fmt.Errorf("%w: guest offered %s %s, pinned %s %s: the image's host key and the pinned key differ (rebuild the image or pin its key)",
					ErrHostKey, key.Type(), ssh.FingerprintSHA256(key), cfg.HostKey.Type(), ssh.FingerprintSHA256(cfg.HostKey))
			}
			return nil
		},
		// Ask only for the pinned key's algorithms, so a guest that also
		// has other host keys presents the pinned one.
		HostKeyAlgorithms: hostKeyAlgorithms(cfg.HostKey),
	}
	c, chans, reqs, err := ssh.NewClientConn(heard, cfg.Addr, cc)
	if err != nil {
		conn.Close()
		if !heard.spoke.Load() && ctx.Err() == nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				return nil, fmt.Errorf("%w within %v: %w", errSilent, bannerWait, err)
			case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
				return nil, fmt.Errorf("%w: %w", errClosed, err)
			}
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("%w for user %s with key %s: check the image's authorized_keys: %v",
				ErrAuth, cfg.User, ssh.FingerprintSHA256(cfg.Signer.PublicKey()), err)
		}
		return nil, err // ErrHostKey arrives wrapped
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// bannerConn lifts the short banner deadline to the attempt's full one
// once the server has sent its first bytes.
type bannerConn struct {
	net.Conn
	full  time.Time
	spoke atomic.Bool
}

func (c *bannerConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.spoke.Swap(true) {
		_ = c.Conn.SetDeadline(c.full)
	}
	return n, err
}

func hostKeyAlgorithms(k ssh.PublicKey) []string {
	if k.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{k.Type()}
}

// Close closes the connection; sessions still running end with an error.
func (s *SSH) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.client.Close() })
	return s.closeErr
}

// Run runs argv in the guest, every element quoted (shell.Join), with a
// deadline of the earlier of ctx's and CommandTimeout. On the deadline the
// command gets SIGKILL, its session is closed, and the error wraps
// context.DeadlineExceeded and names the command. A non-zero exit is
// Result.ExitCode (128+n for a signal), not an error.
func (s *SSH) Run(ctx context.Context, argv ...string) (Result, error) {
	return s.run(ctx, nil, argv)
}

func (s *SSH) run(ctx context.Context, stdin io.Reader, argv []string) (Result, error) {
	if len(argv) == 0 {
		return Result{}, errors.New("ssh run: empty command: pass at least the program name")
	}
	for _, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return Result{}, fmt.Errorf("ssh run %s: argument %q contains a NUL byte, which no shell can carry", argv[0], a)
		}
	}
	line := shell.Join(argv...)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	defer cancel()

	sess, err := s.newSession(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("ssh run %s: open session: %w", line, err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, &stdout, &stderr
	if err := sess.Start(line); err != nil {
		return Result{}, fmt.Errorf("ssh run %s: start: %w", line, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	start := time.Now()
	select {
	case err := <-done:
		r := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
		var exit *ssh.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			r.ExitCode = exit.ExitStatus()
		default: // ExitMissingError, a dropped connection
			return r, fmt.Errorf("ssh run %s: %w", line, err)
		}
		s.log.Debug("ssh run", "cmd", line, "exit", r.ExitCode, "elapsed", time.Since(start))
		return r, nil
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGKILL)
		sess.Close()
		t := time.NewTimer(timeout.Scaled(killGrace))
		defer t.Stop()
		select { // the output buffers belong to Wait until it returns
		case <-done:
		case <-t.C:
		}
		s.log.Warn("ssh command killed", "cmd", line, "elapsed", time.Since(start), "err", ctx.Err())
		return Result{ExitCode: -1}, fmt.Errorf("ssh run %s: killed after %v: %w", line, time.Since(start).Round(time.Millisecond), ctx.Err())
	}
}

// newSession opens a session, bounded by ctx: a hung guest can leave the
// channel-open request unanswered.
func (s *SSH) newSession(ctx context.Context) (*ssh.Session, error) {
	type res struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		sess, err := s.client.NewSession()
		ch <- res{sess, err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-ctx.Done():
		go func() { // close it if it arrives late
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// Exit codes of the small scripts below, chosen to differ from what cat,
// find and readlink return themselves.
const (
	exitNotExist  = 3
	exitWrongType = 4
)

// The scripts are constants; paths reach them only as "$1", quoted by Run.
const (
	readFileScript = `[ -e "$1" ] || exit 3; exec cat -- "$1"`
	readDirScript  = `[ -e "$1" ] || exit 3; [ -d "$1" ] || exit 4; exec find -H "$1" -mindepth 1 -maxdepth 1 -printf '%y %m %s %P\0'`
	readLinkScript = `[ -L "$1" ] || { [ -e "$1" ] && exit 4; exit 3; }; exec readlink -- "$1"`
	uploadScript   = `set -e; t="$1.upload.$$"; trap 'rm -f -- "$t"' EXIT; cat > "$t"; chmod -- "$2" "$t"; mv -f -- "$t" "$1"; trap - EXIT`
)

func (s *SSH) script(ctx context.Context, op, path, script, wrongType string, args ...string) ([]byte, error) {
	p, err := cleanPath(op, path)
	if err != nil {
		return nil, err
	}
	r, err := s.Run(ctx, append([]string{"sh", "-c", script, "sh", p}, args...)...)
	if err != nil {
		return nil, err
	}
	switch r.ExitCode {
	case 0:
		return r.Stdout, nil
	case exitNotExist:
		return nil, &fs.PathError{Op: op, Path: p, Err: fs.ErrNotExist}
	case exitWrongType:
		return nil, &fs.PathError{Op: op, Path: p, Err: fmt.Errorf("%w: %s", fs.ErrInvalid, wrongType)}
	}
	return nil, &fs.PathError{Op: op, Path: p, Err: fmt.Errorf("exit %d: %s", r.ExitCode, firstLine(r.Stderr))}
}

// ReadFile returns the file's contents (cat).
func (s *SSH) ReadFile(ctx context.Context, path string) ([]byte, error) {
	return s.script(ctx, "read", path, readFileScript, "")
}

// ReadDir lists a directory (following it if it is a symlink, like
// os.ReadDir), sorted by name. Entries carry their type (dir, symlink, ...)
// and permissions; Info().Size is what find reported.
func (s *SSH) ReadDir(ctx context.Context, path string) ([]fs.DirEntry, error) {
	out, err := s.script(ctx, "readdir", path, readDirScript, "not a directory")
	if err != nil {
		return nil, err
	}
	ents, err := parseListing(out)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: path, Err: err}
	}
	return ents, nil
}

// ReadLink returns a symlink's raw target (readlink).
func (s *SSH) ReadLink(ctx context.Context, path string) (string, error) {
	out, err := s.script(ctx, "readlink", path, readLinkScript, "not a symlink")
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(out), "\n"), nil
}

// Upload writes data to path with mode's permission bits, atomically: it
// is written beside path and renamed over it.
func (s *SSH) Upload(ctx context.Context, path string, data []byte, mode fs.FileMode) error {
	p, err := cleanPath("upload", path)
	if err != nil {
		return err
	}
	r, err := s.run(ctx, bytes.NewReader(data), []string{"sh", "-c", uploadScript, "sh", p, strconv.FormatUint(uint64(mode.Perm()), 8)})
	if err != nil {
		return err
	}
	if r.ExitCode != 0 {
		return &fs.PathError{Op: "upload", Path: p, Err: fmt.Errorf("exit %d: %s", r.ExitCode, firstLine(r.Stderr))}
	}
	return nil
}

// Shell runs an interactive session: the login shell when command is
// empty, else the quoted command. With tty set it asks for a pseudo-
// terminal (do so only when stdin is a terminal; putting the local one in
// raw mode is the caller's job). No CommandTimeout applies; cancelling ctx
// ends the session. It returns the remote exit code. stdout and stderr
// are written from separate goroutines: pass distinct writers or ones safe
// for concurrent use (an *os.File is). A reader that blocks (a terminal)
// keeps one goroutine reading it until it returns.
func (s *SSH) Shell(ctx context.Context, tty bool, stdin io.Reader, stdout, stderr io.Writer, command ...string) (int, error) {
	sess, err := s.newSession(ctx)
	if err != nil {
		return -1, fmt.Errorf("ssh shell: open session: %w", err)
	}
	defer sess.Close()
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	if tty {
		term := os.Getenv("TERM")
		if term == "" {
			term = "vt100"
		}
		rows, cols := terminalSize(stdin)
		modes := ssh.TerminalModes{ssh.ECHO: 1, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400}
		if err := sess.RequestPty(term, rows, cols, modes); err != nil {
			return -1, fmt.Errorf("ssh shell: request pty: %w", err)
		}
	}
	if len(command) == 0 {
		err = sess.Shell()
	} else {
		err = sess.Start(shell.Join(command...))
	}
	if err != nil {
		return -1, fmt.Errorf("ssh shell: start: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGHUP)
		sess.Close()
		return -1, fmt.Errorf("ssh shell: %w", ctx.Err())
	}
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit):
		return exit.ExitStatus(), nil
	}
	return -1, fmt.Errorf("ssh shell: %w", err)
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if s == "" {
		return "(no stderr)"
	}
	return s
}

// parseListing reads find's "-printf '%y %m %s %P\0'" output.
func parseListing(out []byte) ([]fs.DirEntry, error) {
	var ents []fs.DirEntry
	for len(out) > 0 {
		rec, rest, ok := bytes.Cut(out, []byte{0})
		if !ok {
			return nil, fmt.Errorf("listing: record %q not NUL-terminated", rec)
		}
		out = rest
		f := strings.SplitN(string(rec), " ", 4)
		if len(f) != 4 || len(f[0]) != 1 || f[3] == "" || strings.Contains(f[3], "/") {
			return nil, fmt.Errorf("listing: malformed record %q", rec)
		}
		perm, err := strconv.ParseUint(f[1], 8, 32)
		if err != nil || perm > 0o7777 {
			return nil, fmt.Errorf("listing: bad mode in %q", rec)
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("listing: bad size in %q", rec)
		}
		ents = append(ents, dirEntry{name: f[3], mode: findType(f[0][0]) | unixPerm(perm), size: size})
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, nil
}

// findType maps find's %y letter to fs.FileMode type bits.
func findType(y byte) fs.FileMode {
	switch y {
	case 'f':
		return 0
	case 'd':
		return fs.ModeDir
	case 'l':
		return fs.ModeSymlink
	case 'b':
		return fs.ModeDevice
	case 'c':
		return fs.ModeDevice | fs.ModeCharDevice
	case 'p':
		return fs.ModeNamedPipe
	case 's':
		return fs.ModeSocket
	}
	return fs.ModeIrregular
}

// unixPerm converts st_mode permission bits (with setuid/setgid/sticky)
// to fs.FileMode's.
func unixPerm(p uint64) fs.FileMode {
	m := fs.FileMode(p & 0o777)
	if p&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if p&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if p&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// dirEntry is a listed entry; it is its own FileInfo, with no ModTime.
type dirEntry struct {
	name string
	mode fs.FileMode
	size int64
}

func (e dirEntry) Name() string               { return e.name }
func (e dirEntry) IsDir() bool                { return e.mode.IsDir() }
func (e dirEntry) Type() fs.FileMode          { return e.mode.Type() }
func (e dirEntry) Info() (fs.FileInfo, error) { return e, nil }
func (e dirEntry) Size() int64                { return e.size }
func (e dirEntry) Mode() fs.FileMode          { return e.mode }
func (e dirEntry) ModTime() time.Time         { return time.Time{} }
func (e dirEntry) Sys() any                   { return nil }
func (e dirEntry) String() string             { return fs.FormatDirEntry(e) }
