package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
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
// "" means stay silent from then on. Like QEMU it echoes the command's id
// in the reply (the last JSON object of reply; those before it are events).
func answer(reply func(cmd string) string) func(net.Conn) {
	return func(c net.Conn) {
		c.Write([]byte(banner))
		dec := json.NewDecoder(c) // QMP is a JSON stream, not lines
		for {
			var req request
			if err := dec.Decode(&req); err != nil {
				return
			}
			r := reply(req.Execute)
			if r == "" {
				select {} // hang, holding the connection open
			}
			c.Write([]byte(withID(r, req.ID) + "\n"))
		}
	}
}

// request is a QMP command as the fake server sees it.
type request struct {
	Execute string          `json:"execute"`
	ID      json.RawMessage `json:"id"`
}

// withID adds "id": id to the last object in r, as QEMU does to a reply
// when the command had one.
func withID(r string, id json.RawMessage) string {
	if id == nil {
		return r
	}
	i := strings.LastIndex(r, "}")
	return r[:i] + `, "id": ` + string(id) + r[i:]
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
			var req request
			dec.Decode(&req)
			c.Write([]byte(withID(`{"return": {}}`, req.ID) + "\n"))
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

// TestMonitorStaleReply: QEMU answers a command it was already running
// when its client gave up on the connection that is open when it
// finishes, the next one. That late reply must go to no one: before, it
// became the handshake's or the next command's (savevm got a
// query-status reply).
func TestMonitorStaleReply(t *testing.T) {
	const status = `{"return": {"status": "running", "singlestep": false, "running": true}}`
	for _, before := range []bool{true, false} {
		t.Run(map[bool]string{true: "before the handshake reply", false: "after the handshake reply"}[before], func(t *testing.T) {
			var mu sync.Mutex
			var owed []string // replies to commands on closed connections
			path := fakeQMP(t, func(c net.Conn) {
				c.Write([]byte(banner))
				dec := json.NewDecoder(c)
				for {
					var req request
					if err := dec.Decode(&req); err != nil {
						return
					}
					mu.Lock()
					switch req.Execute {
					case "query-status": // still running when the client leaves
						owed = append(owed, withID(status, req.ID)+"\n")
					case "qmp_capabilities":
						late := strings.Join(owed, "")
						owed = nil
						ok := withID(`{"return": {}}`, req.ID) + "\n"
						// Apart, as QEMU sends them: a client must not
						// depend on both arriving in one read.
						first, second := ok, late
						if before {
							first, second = late, ok
						}
						c.Write([]byte(first))
						time.Sleep(20 * time.Millisecond)
						c.Write([]byte(second))
					default:
						c.Write([]byte(withID(`{"return": ""}`, req.ID) + "\n"))
					}
					mu.Unlock()
				}
			})
			m := newMonitor(path)
			defer m.close()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if _, err := m.run(ctx, "query-status", nil); !isDeadline(err) {
				t.Fatalf("query-status: got %v, want a deadline", err)
			}
			out, err := m.run(context.Background(), "human-monitor-command", map[string]string{"command-line": "savevm t1"})
			if err != nil || string(out) != `""` {
				t.Fatalf("savevm: got %s, %v; want its own reply \"\"", out, err)
			}
		})
	}
}

// qemuLike serves QMP the way QEMU's single-client monitor does: commands
// run one at a time, each taking delay and preceded by an event, and each
// reply goes to whichever connection is open when the command finishes.
func qemuLike(t *testing.T, delay time.Duration) string {
	var mu sync.Mutex
	var cur net.Conn
	cmds := make(chan request, 256)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	path := fakeQMP(t, func(c net.Conn) {
		mu.Lock()
		cur = c
		c.Write([]byte(banner))
		mu.Unlock()
		dec := json.NewDecoder(c)
		for {
			var req request
			if err := dec.Decode(&req); err != nil {
				return
			}
			cmds <- req
		}
	})
	go func() {
		for {
			var req request
			select {
			case req = <-cmds:
			case <-done:
				return
			}
			time.Sleep(delay)
			r := `{"return": "` + req.Execute + `"}`
			if req.Execute == "qmp_capabilities" {
				r = `{"return": {}}`
			}
			mu.Lock()
			cur.Write([]byte(`{"event": "STOP", "data": {}, "timestamp": {"seconds": 1, "microseconds": 2}}` + "\n" + withID(r, req.ID) + "\n"))
			mu.Unlock()
		}
	}()
	return path
}

// TestMonitorConcurrentCallers: callers at once, some giving up before
// their reply, each get their own reply or an error, never another's.
func TestMonitorConcurrentCallers(t *testing.T) {
	m := newMonitor(qemuLike(t, 5*time.Millisecond))
	defer m.close()
	var wg sync.WaitGroup
	var ok, gaveUp atomic.Int32
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				cmd := fmt.Sprintf("c-%d-%d", g, i)
				d := 2 * time.Second
				if i%3 == 0 {
					d = 3 * time.Millisecond // lost before its reply
				}
				ctx, cancel := context.WithTimeout(context.Background(), d)
				out, err := m.run(ctx, cmd, nil)
				cancel()
				switch {
				case err == nil && string(out) == `"`+cmd+`"`:
					ok.Add(1)
				case err == nil:
					t.Errorf("%s got the reply %s", cmd, out)
				case isDeadline(err):
					gaveUp.Add(1)
				default:
					t.Errorf("%s: %v", cmd, err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d own replies, %d gave up", ok.Load(), gaveUp.Load())
	if ok.Load() == 0 || gaveUp.Load() == 0 {
		t.Errorf("%d own replies, %d gave up: want some of each", ok.Load(), gaveUp.Load())
	}
}

// TestMonitorExpiredContext: a call whose time is already up says so,
// not that it waited for a previous command (none was running).
func TestMonitorExpiredContext(t *testing.T) {
	m := newMonitor(fakeQMP(t, answer(func(string) string { return `{"return": {}}` })))
	defer m.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	for range 20 { // the old select picked either way at random
		_, err := m.run(ctx, "quit", nil)
		if !isDeadline(err) || !strings.Contains(err.Error(), "no time left for quit") {
			t.Fatalf("got %v, want no time left for quit", err)
		}
	}
}
