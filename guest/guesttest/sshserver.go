// Package guesttest holds test doubles for guest: SSHServer, a real SSH
// server on 127.0.0.1 that runs commands on this machine, so the SSH guest
// (and anything built on it) can be tested without booting a VM.
//
// Tests: go test ./guest/... (guest's SSH tests exercise it).
package guesttest

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHServer is a real SSH server on 127.0.0.1 built with x/crypto/ssh: it
// accepts "exec" and "shell" requests, runs them with /bin/sh -c on this
// machine (never point anything untrusted at it), and reports exit-status
// or exit-signal like sshd. The exec command "__no_exit_status__" closes
// the session without either. Refuse and Stall make it misbehave the ways
// a booting guest does.
type SSHServer struct {
	Addr    string
	HostKey ssh.Signer // what it presents

	Refuse atomic.Int32 // close this many connections at once (handshake EOF)
	Stall  atomic.Int32 // hold this many connections open and silent
	// BannerDelay (nanoseconds) holds each served connection this long
	// before the handshake, like an sshd busy in a booting guest.
	BannerDelay atomic.Int64
	Signals     atomic.Int32 // "signal" requests received
	PtyReqs     atomic.Int32 // "pty-req" requests received (no pty is made)

	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	pgids []int
	wg    sync.WaitGroup
}

// NewSigner returns a fresh ed25519 key.
func NewSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// FreeAddr returns a loopback address nobody listens on (right now).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// StartSSHServer listens on addr ("127.0.0.1:0" for any port) and accepts
// clientKey only. The server stops at test cleanup, killing what it ran.
func StartSSHServer(t testing.TB, addr string, hostKey ssh.Signer, clientKey ssh.PublicKey) *SSHServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &SSHServer{Addr: ln.Addr().String(), HostKey: hostKey, ln: ln}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == string(clientKey.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(hostKey)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			if s.Refuse.Add(-1) >= 0 {
				c.Close()
				continue
			}
			if s.Stall.Add(-1) >= 0 {
				continue // held open, silent, until cleanup
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				time.Sleep(time.Duration(s.BannerDelay.Load()))
				s.serveConn(c, cfg)
			}()
		}
	}()
	t.Cleanup(s.stop)
	return s
}

// Accepted is the number of connections accepted so far.
func (s *SSHServer) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *SSHServer) stop() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	for _, p := range s.pgids {
		_ = syscall.Kill(-p, syscall.SIGKILL)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *SSHServer) serveConn(c net.Conn, cfg *ssh.ServerConfig) {
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveSession(ch, creqs)
		}()
	}
}

func (s *SSHServer) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var cmd *exec.Cmd
	exited := make(chan struct{})
	for req := range reqs {
		switch req.Type {
		case "exec", "shell":
			var p struct{ Command string }
			if req.Type == "exec" {
				if err := ssh.Unmarshal(req.Payload, &p); err != nil || cmd != nil {
					_ = req.Reply(false, nil)
					continue
				}
			} else {
				p.Command = "exec /bin/sh"
			}
			if p.Command == "__no_exit_status__" {
				_ = req.Reply(true, nil)
				return // close without exit-status
			}
			cmd = exec.Command("/bin/sh", "-c", p.Command)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.WaitDelay = 2 * time.Second
			if err := cmd.Start(); err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			s.mu.Lock()
			s.pgids = append(s.pgids, cmd.Process.Pid)
			s.mu.Unlock()
			_ = req.Reply(true, nil)
			go func() {
				defer close(exited)
				err := cmd.Wait()
				ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
				if err != nil && ws.Signaled() {
					sig := map[syscall.Signal]string{syscall.SIGKILL: "KILL", syscall.SIGTERM: "TERM", syscall.SIGHUP: "HUP"}[ws.Signal()]
					_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
						Signal     string
						CoreDumped bool
						Error      string
						Lang       string
					}{Signal: sig}))
				} else {
					_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(cmd.ProcessState.ExitCode())}))
				}
				ch.Close()
			}()
		case "signal":
			s.Signals.Add(1)
			if cmd != nil && cmd.Process != nil {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
		case "pty-req":
			s.PtyReqs.Add(1)
			_ = req.Reply(true, nil)
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
	// The client closed the channel: whatever still runs is orphaned.
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}
