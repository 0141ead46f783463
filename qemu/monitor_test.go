package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeQMP is a hand-written QMP server on a unix socket. behave runs per
// connection; it owns the connection.
func fakeQMP(t *testing.T, behave func(c net.Conn)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
			go behave(c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	})
	return path
}

const banner = `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 10}, "package": ""}, "capabilities": ["oob"]}}` + "\n"

// answer greets, then replies to each command with reply(cmd); a reply of
// "" means stay silent from then on.
func answer(reply func(cmd string) string) func(net.Conn) {
	return func(c net.Conn) {
		c.Write([]byte(banner))
		dec := json.NewDecoder(c) // QMP is a JSON stream, not lines
		for {
			var req struct {
				Execute string `json:"execute"`
			}
			if err := dec.Decode(&req); err != nil {
				return
			}
			r := reply(req.Execute)
			if r == "" {
				select {} // hang, holding the connection open
			}
			c.Write([]byte(r + "\n"))
		}
	}
}

func TestMonitorDeadlines(t *testing.T) {
	ok := func(cmd string) string { return `{"return": {"status": "running"}}` }
	tests := []struct {
		name   string
		behave func(net.Conn)
		want   func(error) bool
	}{
		{"silent from the start", func(c net.Conn) { select {} }, isDeadline},
		{"silent after the banner", func(c net.Conn) { c.Write([]byte(banner)); select {} }, isDeadline},
		{"silent after the handshake", answer(func(cmd string) string {
			if cmd == "qmp_capabilities" {
				return `{"return": {}}`
			}
			return ""
		}), isDeadline},
		{"closes at once", func(c net.Conn) { c.Close() }, func(err error) bool { return err != nil && !isDeadline(err) }},
		{"closes after the handshake", func(c net.Conn) {
			c.Write([]byte(banner))
			dec := json.NewDecoder(c)
			var req any
			dec.Decode(&req)
			c.Write([]byte(`{"return": {}}` + "\n"))
			dec.Decode(&req)
			c.Close()
		}, func(err error) bool { return err != nil && !isDeadline(err) }},
		{"events before the reply", answer(func(cmd string) string {
			// QEMU sends events only once capabilities are negotiated.
			if cmd == "qmp_capabilities" {
				return `{"return": {}}`
			}
			ev := `{"event": "RESUME", "data": {}, "timestamp": {"seconds": 1, "microseconds": 2}}` + "\n"
			return strings.Repeat(ev, 50) + ok(cmd)
		}), func(err error) bool { return err == nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMonitor(fakeQMP(t, tc.behave))
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := m.run(ctx, "query-status", nil)
			if !tc.want(err) {
				t.Fatalf("got %v", err)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("returned after %s with a 300ms deadline", el)
			}
			m.close()
		})
	}
}

func TestMonitorRecoversAfterTimeout(t *testing.T) {
	// The first command is never answered; a reply that arrived late
	// must not be taken for the next command's.
	var n atomic.Int32
	path := fakeQMP(t, func(c net.Conn) {
		first := n.Add(1) == 1
		answer(func(cmd string) string {
			switch {
			case cmd == "qmp_capabilities":
				return `{"return": {}}`
			case first:
				return ""
			default:
				return `{"return": "` + cmd + `"}`
			}
		})(c)
	})
	m := newMonitor(path)
	defer m.close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := m.run(ctx, "slow", nil); !isDeadline(err) {
		t.Fatalf("first call: got %v, want a deadline", err)
	}
	out, err := m.run(context.Background(), "second", nil)
	if err != nil || string(out) != `"second"` {
		t.Fatalf("second call: got %s, %v; want its own reply", out, err)
	}
}

func TestMonitorQueueKeepsDeadline(t *testing.T) {
	// A caller waiting behind a hung command still gets its deadline.
	path := fakeQMP(t, answer(func(cmd string) string {
		if cmd == "qmp_capabilities" {
			return `{"return": {}}`
		}
		return ""
	}))
	m := newMonitor(path)
	defer m.close()
	go m.run(context.Background(), "hangs", nil) // default 10s budget
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := m.run(ctx, "queued", nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("queued call: got %v after %s", err, time.Since(start))
	}
}

func TestMonitorNoSocket(t *testing.T) {
	m := newMonitor(filepath.Join(t.TempDir(), "absent.sock"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := m.run(ctx, "query-status", nil); err == nil || isDeadline(err) {
		t.Fatalf("got %v, want a prompt dial error", err)
	}
}
