package guest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cca-testbed/guest/guesttest"

	"golang.org/x/crypto/ssh"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// fixture is a server plus the config that reaches it.
type fixture struct {
	srv *guesttest.SSHServer
	cfg SSHConfig
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	host, client := guesttest.NewSigner(t), guesttest.NewSigner(t)
	srv := guesttest.StartSSHServer(t, "127.0.0.1:0", host, client.PublicKey())
	return fixture{srv, SSHConfig{Addr: srv.Addr, Signer: client, HostKey: host.PublicKey(), DialTimeout: 2 * time.Second, CommandTimeout: 5 * time.Second}}
}

func dial(t *testing.T, cfg SSHConfig) *SSH {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := DialSSH(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestDialSSH(t *testing.T) {
	t.Run("pinned key", func(t *testing.T) {
		f := newFixture(t)
		g := dial(t, f.cfg)
		r, err := g.Run(context.Background(), "echo", "hello")
		if err != nil || string(r.Stdout) != "hello\n" || r.ExitCode != 0 {
			t.Fatalf("got %+v, %v", r, err)
		}
	})

	t.Run("wrong host key fails fast", func(t *testing.T) {
		f := newFixture(t)
		f.cfg.HostKey = guesttest.NewSigner(t).PublicKey()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err := DialSSH(ctx, f.cfg)
		if !errors.Is(err, ErrHostKey) {
			t.Fatalf("got %v, want ErrHostKey", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v: a host key mismatch must not be retried", d)
		}
		if !strings.Contains(err.Error(), ssh.FingerprintSHA256(f.srv.HostKey.PublicKey())) {
			t.Errorf("error %q does not name the offered key", err)
		}
	})

	t.Run("wrong client key fails fast", func(t *testing.T) {
		f := newFixture(t)
		f.cfg.Signer = guesttest.NewSigner(t)
		start := time.Now()
		_, err := DialSSH(context.Background(), f.cfg)
		if !errors.Is(err, ErrAuth) || time.Since(start) > 2*time.Second {
			t.Fatalf("got %v after %v, want ErrAuth at once", err, time.Since(start))
		}
	})

	t.Run("server appears after 500ms", func(t *testing.T) {
		host, client := guesttest.NewSigner(t), guesttest.NewSigner(t)
		addr := guesttest.FreeAddr(t)
		go func() {
			time.Sleep(500 * time.Millisecond)
			guesttest.StartSSHServer(t, addr, host, client.PublicKey())
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		g, err := DialSSH(ctx, SSHConfig{Addr: addr, Signer: client, HostKey: host.PublicKey()})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		if d := time.Since(start); d < 500*time.Millisecond || d > 2500*time.Millisecond {
			t.Fatalf("connected after %v, want 0.5s plus at most one capped backoff", d)
		}
	})

	t.Run("handshake cut short, then ok", func(t *testing.T) {
		f := newFixture(t)
		f.srv.Refuse.Store(3)
		g := dial(t, f.cfg)
		if _, err := g.Run(context.Background(), "true"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("silent server, per-attempt timeout, then ok", func(t *testing.T) {
		f := newFixture(t)
		f.srv.Stall.Store(1)
		f.cfg.DialTimeout = 300 * time.Millisecond
		start := time.Now()
		g := dial(t, f.cfg)
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("connected after %v: the first attempt should have stalled", d)
		}
		if _, err := g.Run(context.Background(), "true"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("silent connection dropped after the banner wait", func(t *testing.T) {
		// A connection made before the guest's NIC was up stays silent
		// (its SYN was lost); waiting out DialTimeout (a minute here,
		// beyond dial's 10 s) would fail the test.
		f := newFixture(t)
		f.srv.Stall.Store(2)
		f.cfg.DialTimeout = time.Minute
		g := dial(t, f.cfg)
		if _, err := g.Run(context.Background(), "true"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("slow banner waited for once the guest has answered", func(t *testing.T) {
		// A refusal proves the guest's network is up; the next connection
		// is queued for a busy sshd and must not be dropped at 1 s.
		f := newFixture(t)
		f.srv.Refuse.Store(1)
		f.srv.BannerDelay.Store(int64(1500 * time.Millisecond))
		f.cfg.DialTimeout = 5 * time.Second
		dial(t, f.cfg)
		if n := f.srv.Accepted(); n != 2 {
			t.Fatalf("server accepted %d connections, want 2 (refused, then served)", n)
		}
	})

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		f := newFixture(t)
		f.cfg.Addr = guesttest.FreeAddr(t)
		start := time.Now()
		_, err := DialSSH(ctx, f.cfg)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("got %v after %v, want DeadlineExceeded near 0.7s", err, time.Since(start))
		}
		if !strings.Contains(err.Error(), "refused") {
			t.Errorf("error %q does not carry the last dial error", err)
		}
	})

	t.Run("abort", func(t *testing.T) {
		f := newFixture(t)
		f.cfg.Addr = guesttest.FreeAddr(t)
		abort := make(chan struct{})
		qemuErr := errors.New("qemu exited: status 1")
		f.cfg.Abort, f.cfg.AbortErr = abort, func() error { return qemuErr }
		go func() { time.Sleep(300 * time.Millisecond); close(abort) }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		_, err := DialSSH(ctx, f.cfg)
		if !errors.Is(err, qemuErr) || !errors.Is(err, ErrAborted) {
			t.Fatalf("got %v, want the abort error", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("returned %v after start, want promptly after the abort at 0.3s", d)
		}
	})

	t.Run("abort during a silent handshake", func(t *testing.T) {
		f := newFixture(t)
		f.srv.Stall.Store(100)
		f.cfg.DialTimeout = time.Minute
		abort := make(chan struct{})
		f.cfg.Abort = abort
		go func() { time.Sleep(300 * time.Millisecond); close(abort) }()
		start := time.Now()
		_, err := DialSSH(context.Background(), f.cfg)
		if !errors.Is(err, ErrAborted) || time.Since(start) > time.Second {
			t.Fatalf("got %v after %v, want ErrAborted promptly", err, time.Since(start))
		}
	})

	t.Run("bad config", func(t *testing.T) {
		f := newFixture(t)
		for name, mut := range map[string]func(*SSHConfig){
			"no host key": func(c *SSHConfig) { c.HostKey = nil },
			"no addr":     func(c *SSHConfig) { c.Addr = "" },
			"no key":      func(c *SSHConfig) { c.Signer = nil },
			"bad keyfile": func(c *SSHConfig) { c.Signer, c.KeyPath = nil, "/nonexistent/key" },
		} {
			t.Run(name, func(t *testing.T) {
				cfg := f.cfg
				mut(&cfg)
				if _, err := DialSSH(context.Background(), cfg); err == nil {
					t.Fatal("got nil error")
				}
			})
		}
	})
}

func TestSSHRun(t *testing.T) {
	f := newFixture(t)
	g := dial(t, f.cfg)
	ctx := context.Background()

	tests := []struct {
		argv       []string
		stdout     string
		stderr     string
		exit       int
		errWanted  bool
		errMention string
		anyStderr  bool // a shell may report the signal
	}{
		{argv: []string{"sh", "-c", "echo out; echo err >&2; exit 7"}, stdout: "out\n", stderr: "err\n", exit: 7},
		{argv: []string{"false"}, exit: 1},
		{argv: []string{"sh", "-c", "kill -TERM $$"}, exit: 128 + 15, anyStderr: true},
		{argv: []string{"__no_exit_status__"}, errWanted: true, errMention: "__no_exit_status__"},
		{argv: []string{"printf", "%s|", "-n", "--", "$(touch /tmp/pwned)", "a'b", "x\ny", "`id`", "*", ""}, stdout: "-n|--|$(touch /tmp/pwned)|a'b|x\ny|`id`|*||"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.argv, " "), func(t *testing.T) {
			r, err := g.Run(ctx, tt.argv...)
			if tt.errWanted {
				if err == nil || !strings.Contains(err.Error(), tt.errMention) {
					t.Fatalf("got %v, want an error naming %q", err, tt.errMention)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.anyStderr {
				r.Stderr = []byte(tt.stderr)
			}
			if string(r.Stdout) != tt.stdout || string(r.Stderr) != tt.stderr || r.ExitCode != tt.exit {
				t.Fatalf("got stdout %q stderr %q exit %d, want %q %q %d", r.Stdout, r.Stderr, r.ExitCode, tt.stdout, tt.stderr, tt.exit)
			}
		})
	}

	t.Run("NUL refused", func(t *testing.T) {
		if _, err := g.Run(ctx, "echo", "a\x00b"); err == nil {
			t.Fatal("got nil error")
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				want := strings.Repeat("x", i)
				r, err := g.Run(ctx, "printf", "%s", want)
				if err == nil && string(r.Stdout) != want {
					err = errors.New("got " + string(r.Stdout) + ", want " + want)
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})
}

func TestSSHCommandTimeout(t *testing.T) {
	f := newFixture(t)
	f.cfg.CommandTimeout = time.Second
	g := dial(t, f.cfg)
	start := time.Now()
	_, err := g.Run(context.Background(), "sleep", "30")
	d := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "sleep 30") {
		t.Fatalf("got %v, want DeadlineExceeded naming the command", err)
	}
	if d < time.Second || d > 2*time.Second {
		t.Fatalf("returned after %v, want within timeout+1s", d)
	}
	if f.srv.Signals.Load() != 1 {
		t.Errorf("server got %d signal requests, want 1 (KILL)", f.srv.Signals.Load())
	}
	r, err := g.Run(context.Background(), "echo", "still here")
	if err != nil || string(r.Stdout) != "still here\n" {
		t.Fatalf("connection unusable after a timeout: %+v, %v", r, err)
	}

	t.Run("ctx shorter than CommandTimeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := g.Run(ctx, "sleep", "30"); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
			t.Fatalf("got %v after %v", err, time.Since(start))
		}
	})
}

// tree builds a directory with the shapes sysfs has, plus hostile names.
func tree(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{"dev/sub", "it's $(x)"} {
		if err := os.MkdirAll(filepath.Join(d, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, data := range map[string]string{"dev/uevent": "MODALIAS=platform:x\n", "-rf": "dash", "a b\nc": "odd", "it's $(x)/f": "q"} {
		if err := os.WriteFile(filepath.Join(d, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"link": "dev", "dangling": "nope", "dev/driver": "../-rf"} {
		if err := os.Symlink(target, filepath.Join(d, link)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestSSHReads(t *testing.T) {
	f := newFixture(t)
	g := dial(t, f.cfg)
	ctx := context.Background()
	d := tree(t)

	t.Run("ReadFile", func(t *testing.T) {
		for p, want := range map[string]string{"dev/uevent": "MODALIAS=platform:x\n", "-rf": "dash", "a b\nc": "odd", "it's $(x)/f": "q", "link/uevent": "MODALIAS=platform:x\n"} {
			got, err := g.ReadFile(ctx, filepath.Join(d, p))
			if err != nil || string(got) != want {
				t.Errorf("%q: got %q, %v, want %q", p, got, err, want)
			}
		}
	})
	t.Run("ReadDir", func(t *testing.T) {
		ents, err := g.ReadDir(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name()+" "+e.Type().String())
		}
		want := []string{"-rf ----------", "a b\nc ----------", "dangling L---------", "dev d---------", "it's $(x) d---------", "link L---------"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("got %q, want %q", got, want)
		}
		info, err := ents[0].Info()
		if err != nil || info.Size() != 4 || info.Mode() != 0o644 {
			t.Errorf("-rf info: got %v, %v, want size 4 mode 0644", info, err)
		}
	})
	t.Run("ReadDir through a symlink", func(t *testing.T) {
		ents, err := g.ReadDir(ctx, filepath.Join(d, "link"))
		if err != nil || len(ents) != 3 || ents[0].Name() != "driver" || ents[0].Type() != fs.ModeSymlink || !ents[1].IsDir() {
			t.Fatalf("got %v, %v, want [driver@ sub/ uevent]", ents, err)
		}
	})
	t.Run("ReadLink", func(t *testing.T) {
		for p, want := range map[string]string{"link": "dev", "dangling": "nope", "dev/driver": "../-rf"} {
			got, err := g.ReadLink(ctx, filepath.Join(d, p))
			if err != nil || got != want {
				t.Errorf("%s: got %q, %v, want %q", p, got, err, want)
			}
		}
	})

	errTests := []struct {
		name string
		op   func(context.Context, string) error
		path string
		want error
	}{
		{"ReadFile missing", readFile(g), filepath.Join(d, "missing"), fs.ErrNotExist},
		{"ReadFile dangling", readFile(g), filepath.Join(d, "dangling"), fs.ErrNotExist},
		{"ReadDir missing", readDir(g), filepath.Join(d, "missing"), fs.ErrNotExist},
		{"ReadDir of a file", readDir(g), filepath.Join(d, "-rf"), fs.ErrInvalid},
		{"ReadLink missing", readLink(g), filepath.Join(d, "missing"), fs.ErrNotExist},
		{"ReadLink of a file", readLink(g), filepath.Join(d, "-rf"), fs.ErrInvalid},
		{"relative", readFile(g), "dev/uevent", ErrRelativePath},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(ctx, tt.path); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want an error wrapping %v", err, tt.want)
			}
		})
	}
	t.Run("ReadFile of a directory", func(t *testing.T) {
		err := readFile(g)(ctx, filepath.Join(d, "dev"))
		if err == nil || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "directory") {
			t.Fatalf("got %v, want cat's complaint", err)
		}
	})
}

func TestSSHUpload(t *testing.T) {
	f := newFixture(t)
	g := dial(t, f.cfg)
	d := tree(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		data []byte
		mode fs.FileMode
	}{
		{"-leading dash", []byte("x"), 0o600},
		{"it's $(x)/new file", bytes.Repeat([]byte{0, 1, 0xff, '\n'}, 100000), 0o755},
		{"dev/uevent", []byte("replaced\n"), 0o640}, // over an existing file
		{"empty", nil, 0o644},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(d, tt.name)
			if err := g.Upload(ctx, p, tt.data, tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("read back %d bytes, %v; want %d bytes", len(got), err, len(tt.data))
			}
			st, err := os.Stat(p)
			if err != nil || st.Mode().Perm() != tt.mode {
				t.Fatalf("mode %v, %v; want %v", st.Mode().Perm(), err, tt.mode)
			}
		})
	}
	t.Run("no temp files left", func(t *testing.T) {
		m, _ := filepath.Glob(filepath.Join(d, "*", "*.upload.*"))
		m2, _ := filepath.Glob(filepath.Join(d, "*.upload.*"))
		if len(m)+len(m2) != 0 {
			t.Fatalf("left behind %v %v", m, m2)
		}
	})
	t.Run("into a missing directory", func(t *testing.T) {
		if err := g.Upload(ctx, filepath.Join(d, "missing/x"), []byte("x"), 0o644); err == nil {
			t.Fatal("got nil error")
		}
	})
}

func TestSSHShell(t *testing.T) {
	f := newFixture(t)
	g := dial(t, f.cfg)
	ctx := context.Background()
	t.Run("login shell reads stdin", func(t *testing.T) {
		var out, errb bytes.Buffer
		code, err := g.Shell(ctx, false, strings.NewReader("echo hi; exit 3\n"), &out, &errb)
		if err != nil || code != 3 || out.String() != "hi\n" {
			t.Fatalf("got %d, %v, out %q, want 3 and hi", code, err, out.String())
		}
		if f.srv.PtyReqs.Load() != 0 {
			t.Fatal("asked for a pty without tty")
		}
	})
	t.Run("command with tty", func(t *testing.T) {
		var out, errb bytes.Buffer
		code, err := g.Shell(ctx, true, strings.NewReader(""), &out, &errb, "printf", "%s", "a b")
		if err != nil || code != 0 || out.String() != "a b" {
			t.Fatalf("got %d, %v, out %q", code, err, out.String())
		}
		if f.srv.PtyReqs.Load() != 1 {
			t.Fatalf("pty requests %d, want 1", f.srv.PtyReqs.Load())
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		pr, pw := io.Pipe()
		defer pw.Close()
		start := time.Now()
		if _, err := g.Shell(ctx, false, pr, io.Discard, io.Discard); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
			t.Fatalf("got %v after %v", err, time.Since(start))
		}
	})
}

func TestOpenSSHConfig(t *testing.T) {
	// A fixed seed keeps the golden file stable.
	hostKey, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)).Public())
	if err != nil {
		t.Fatal(err)
	}
	cfg := SSHConfig{Addr: "127.0.0.1:2222", HostKey: hostKey, DialTimeout: 30 * time.Second}
	var b bytes.Buffer
	if err := WriteOpenSSHConfig(&b, "faux-realm", cfg, "/cache/keys/id_ed25519", "/run/cca testbed/100%/known_hosts"); err != nil {
		t.Fatal(err)
	}
	if err := WriteKnownHosts(&b, cfg); err != nil {
		t.Fatal(err)
	}
	golden(t, "ssh_config.golden", b.Bytes())

	for name, args := range map[string][]string{
		"bad host":   {"a b", "/k", "/kh"},
		"dash host":  {"-oProxyCommand=x", "/k", "/kh"},
		"rel key":    {"h", "k", "/kh"},
		"quote path": {"h", "/k", "/k\"h"},
		"newline":    {"h", "/k\nHost *", "/kh"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := WriteOpenSSHConfig(io.Discard, args[0], cfg, args[1], args[2]); err == nil {
				t.Fatal("got nil error")
			}
		})
	}
}

// TestOpenSSHClient proves the written files work with the real ssh client
// against the test server, with strict host key checking.
func TestOpenSSHClient(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatalf("ssh client not found (scripts/setup-host installs openssh-client): %v", err)
	}
	_, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ssh.NewSignerFromKey(clientPriv)
	if err != nil {
		t.Fatal(err)
	}
	host := guesttest.NewSigner(t)
	srv := guesttest.StartSSHServer(t, "127.0.0.1:0", host, client.PublicKey())
	f := fixture{srv, SSHConfig{Addr: srv.Addr, Signer: client, HostKey: host.PublicKey(), DialTimeout: 5 * time.Second}}
	dir := filepath.Join(t.TempDir(), "with space")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	keyPath, khPath, cfgPath := filepath.Join(dir, "id"), filepath.Join(dir, "known_hosts"), filepath.Join(dir, "ssh_config")
	blk, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	var kh, conf bytes.Buffer
	if err := WriteKnownHosts(&kh, f.cfg); err != nil {
		t.Fatal(err)
	}
	if err := WriteOpenSSHConfig(&conf, "guest", f.cfg, keyPath, khPath); err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{khPath: kh.Bytes(), cfgPath: conf.Bytes()} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("parses", func(t *testing.T) {
		out, err := exec.Command(sshBin, "-G", "-F", cfgPath, "guest").CombinedOutput()
		if err != nil {
			t.Fatalf("ssh -G: %v: %s", err, out)
		}
		for _, want := range []string{"stricthostkeychecking true", "identityfile " + keyPath, "userknownhostsfile " + khPath} {
			if !strings.Contains(string(out), want+"\n") {
				t.Errorf("ssh -G output lacks %q", want)
			}
		}
	})
	t.Run("connects", func(t *testing.T) {
		out, err := exec.Command(sshBin, "-F", cfgPath, "guest", "echo", "via-openssh").CombinedOutput()
		if err != nil || string(out) != "via-openssh\n" {
			t.Fatalf("ssh: %v: %q", err, out)
		}
	})
	t.Run("refuses another host key", func(t *testing.T) {
		other := f.cfg
		other.HostKey = guesttest.NewSigner(t).PublicKey()
		var kh bytes.Buffer
		_ = WriteKnownHosts(&kh, other)
		if err := os.WriteFile(khPath, kh.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sshBin, "-F", cfgPath, "guest", "true").CombinedOutput()
		if err == nil {
			t.Fatalf("ssh accepted an unpinned host key: %s", out)
		}
	})
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./guest -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs (run with -update if intended):\ngot:\n%s\nwant:\n%s", p, got, want)
	}
}
