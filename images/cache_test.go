package images

import (
	"cca-testbed/internal/flock"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeBuild writes name=content files into tmpDir and counts its calls.
func fakeBuild(calls *atomic.Int32, files map[string]string) func(context.Context, string) error {
	return func(_ context.Context, dir string) error {
		calls.Add(1)
		for n, c := range files {
			p := filepath.Join(dir, n)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
				return err
			}
		}
		return nil
	}
}

func openTemp(t *testing.T) *Cache {
	t.Helper()
	c, err := Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ops returns the op= field of every cache.log line.
func ops(t *testing.T, c *Cache) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Dir, LogName))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "op="); ok {
				out = append(out, v)
			}
		}
		if !strings.HasPrefix(line, "time=") || !strings.Contains(line, " dur=") || !strings.Contains(line, " key=") {
			t.Errorf("log line %q lacks time=, key= or dur=", line)
		}
	}
	return out
}

func TestOpenMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "cache")
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o700 {
		t.Errorf("cache dir mode %o, want 700", got)
	}
}

func TestDefaultDir(t *testing.T) {
	tests := []struct {
		name, cache, xdg, home, want string
	}{
		{"explicit", "/c", "/x", "/h", "/c"},
		{"xdg", "", "/x", "/h", "/x/cca-testbed"},
		{"home", "", "", "/h", "/h/.cache/cca-testbed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CCA_TESTBED_CACHE", tt.cache)
			t.Setenv("XDG_CACHE_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			got, err := DefaultDir()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("DefaultDir() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOpenEmptyIsDefault(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	t.Setenv("CCA_TESTBED_CACHE", dir)
	c, err := Open("")
	if err != nil || c.Dir != dir {
		t.Fatalf("Open(\"\") = %v, %v; want the cache at %s", c, err, dir)
	}
}

func TestGetMissThenHit(t *testing.T) {
	c := openTemp(t)
	var calls atomic.Int32
	build := fakeBuild(&calls, map[string]string{"disk.img": "disk", "sub/key": "secret"})
	ctx := context.Background()

	dir, err := c.Get(ctx, "thing", "k-1", build)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(c.Dir, "thing", "k-1"); dir != want {
		t.Errorf("dir = %q, want %q", dir, want)
	}
	dir2, err := c.Get(ctx, "thing", "k-1", build)
	if err != nil {
		t.Fatal(err)
	}
	if dir2 != dir {
		t.Errorf("second Get dir = %q, want %q", dir2, dir)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("build ran %d times, want 1", n)
	}
	if got := strings.Join(ops(t, c), ","); got != "build,hit" {
		t.Errorf("log ops = %s, want build,hit", got)
	}
	// fakeBuild writes 0600: the cache clears write bits only.
	for n, want := range map[string]os.FileMode{"disk.img": 0o400, "sub/key": 0o400, ManifestName: 0o444} {
		info, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s mode %o, want %o", n, got, want)
		}
	}
	if info, _ := os.Stat(dir); info.Mode().Perm() != 0o700 {
		t.Errorf("entry mode %o, want 700", info.Mode().Perm())
	}
	if err := verify(dir, true); err != nil {
		t.Errorf("verify(full) of a fresh entry: %v", err)
	}
}

func TestGetFailedBuildLeavesNothing(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name  string
		build func(ctx context.Context, dir string) error
		want  error
	}{
		{"error", func(_ context.Context, dir string) error {
			_ = os.WriteFile(filepath.Join(dir, "half.img"), []byte("x"), 0o600)
			return boom
		}, boom},
		{"cancelled", func(ctx context.Context, dir string) error {
			_ = os.WriteFile(filepath.Join(dir, "half.img"), []byte("x"), 0o600)
			return nil // ignores ctx; Get must still notice
		}, context.Canceled},
		{"manifest written by builder", func(_ context.Context, dir string) error {
			return os.WriteFile(filepath.Join(dir, ManifestName), []byte("{}"), 0o600)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openTemp(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			build := tt.build
			if tt.want == context.Canceled {
				build = func(c context.Context, dir string) error { cancel(); return tt.build(c, dir) }
			}
			_, err := c.Get(ctx, "thing", "k", build)
			if err == nil {
				t.Fatal("Get succeeded, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			ents, _ := os.ReadDir(filepath.Join(c.Dir, "thing"))
			for _, e := range ents {
				if e.Name() != "k.lock" {
					t.Errorf("left behind %s", e.Name())
				}
			}
			if got := strings.Join(ops(t, c), ","); got != "build-fail" {
				t.Errorf("log ops = %s, want build-fail", got)
			}
		})
	}
}

func TestGetPanicLeavesNothing(t *testing.T) {
	c := openTemp(t)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic was swallowed")
			}
		}()
		_, _ = c.Get(context.Background(), "thing", "k", func(_ context.Context, dir string) error {
			_ = os.WriteFile(filepath.Join(dir, "half"), nil, 0o600)
			panic("builder bug")
		})
	}()
	ents, _ := os.ReadDir(filepath.Join(c.Dir, "thing"))
	for _, e := range ents {
		if e.Name() != "k.lock" {
			t.Errorf("left behind %s", e.Name())
		}
	}
	// The lock must have been released: a new Get must not wait.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var calls atomic.Int32
	if _, err := c.Get(ctx, "thing", "k", fakeBuild(&calls, map[string]string{"a": "b"})); err != nil {
		t.Fatal(err)
	}
}

func TestGetConcurrentWaiters(t *testing.T) {
	c := openTemp(t)
	var calls atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{})
	build := func(ctx context.Context, dir string) error {
		if calls.Add(1) == 1 {
			close(started)
		}
		<-release
		return os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o600)
	}
	const n = 4
	var wg sync.WaitGroup
	dirs := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			// Each waiter uses its own Cache value, as another process would.
			c2 := &Cache{Dir: c.Dir}
			dirs[i], errs[i] = c2.Get(context.Background(), "thing", "k", build)
		})
	}
	<-started
	time.Sleep(3 * flock.Poll) // let the others queue on the lock
	close(release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Get %d: %v", i, errs[i])
		}
		if dirs[i] != dirs[0] {
			t.Errorf("Get %d dir %q, want %q", i, dirs[i], dirs[0])
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("build ran %d times, want 1", got)
	}
	got := ops(t, c)
	if len(got) != n || got[0] != "build" {
		t.Errorf("log ops = %v, want build then %d hits", got, n-1)
	}
}

func TestGetWaitHonoursContext(t *testing.T) {
	c := openTemp(t)
	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := c.Get(context.Background(), "thing", "k", func(context.Context, string) error {
			close(started)
			<-release
			return nil
		})
		done <- err
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 3*flock.Poll)
	defer cancel()
	_, err := c.Get(ctx, "thing", "k", func(context.Context, string) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting Get err = %v, want DeadlineExceeded", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestGetCorruptionRebuilds(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, dir string)
	}{
		{"truncated", func(t *testing.T, dir string) {
			mustChmodWrite(t, filepath.Join(dir, "disk.img"), "dis")
		}},
		{"same size, new content", func(t *testing.T, dir string) {
			mustChmodWrite(t, filepath.Join(dir, "disk.img"), "DISK")
		}},
		{"artefact deleted", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "disk.img")); err != nil {
				t.Fatal(err)
			}
		}},
		{"manifest deleted", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, ManifestName)); err != nil {
				t.Fatal(err)
			}
		}},
		{"manifest garbage", func(t *testing.T, dir string) {
			mustChmodWrite(t, filepath.Join(dir, ManifestName), "not json")
		}},
		// The check covers every file of the entry, not only the listed ones.
		{"file added", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "extra.ko"), []byte("x"), 0o444); err != nil {
				t.Fatal(err)
			}
		}},
		{"file dropped from the manifest", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *Manifest) { delete(m.Files, "disk.img") })
		}},
		{"artefact replaced by a symlink to the same bytes", func(t *testing.T, dir string) {
			outside := filepath.Join(filepath.Dir(dir), "same")
			if err := os.WriteFile(outside, []byte("disk"), 0o644); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "disk.img")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, p); err != nil {
				t.Fatal(err)
			}
		}},
		// Names in the manifest never leave the entry.
		{"manifest names a file outside", func(t *testing.T, dir string) {
			outside := filepath.Join(filepath.Dir(dir), "outside")
			if err := os.WriteFile(outside, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			editManifest(t, dir, func(m *Manifest) {
				m.Files["../outside"] = FileSum{Size: 1, SHA256: "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"}
			})
		}},
		{"manifest with a cut sum", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *Manifest) { m.Files["disk.img"] = FileSum{Size: 4, SHA256: "ab"} })
		}},
		{"manifest names an absolute path", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *Manifest) { m.Files["/etc/hostname"] = FileSum{} })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openTemp(t)
			var calls atomic.Int32
			build := fakeBuild(&calls, map[string]string{"disk.img": "disk"})
			ctx := context.Background()
			dir, err := c.Get(ctx, "thing", "k", build)
			if err != nil {
				t.Fatal(err)
			}
			tt.corrupt(t, dir)
			if err := verify(dir, true); !errors.Is(err, ErrCorrupt) {
				t.Errorf("verify = %v, want ErrCorrupt", err)
			}
			if _, err := c.Get(ctx, "thing", "k", build); err != nil {
				t.Fatal(err)
			}
			if n := calls.Load(); n != 2 {
				t.Errorf("build ran %d times, want 2", n)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "disk.img")); err != nil || string(b) != "disk" {
				t.Errorf("rebuilt disk.img = %q, %v; want \"disk\"", b, err)
			}
			if got := strings.Join(ops(t, c), ","); got != "build,verify-fail,rebuild" {
				t.Errorf("log ops = %s, want build,verify-fail,rebuild", got)
			}
		})
	}
}

// editManifest rewrites an entry's manifest.json through fn.
func editManifest(t *testing.T, dir string, fn func(*Manifest)) {
	t.Helper()
	p := filepath.Join(dir, ManifestName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	fn(&m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	mustChmodWrite(t, p, string(b))
}

// TestBuildLeavesOnlyFiles: an artefact the manifest cannot record (a
// symlink, a FIFO) fails the build rather than escaping the check.
func TestBuildLeavesOnlyFiles(t *testing.T) {
	c := openTemp(t)
	_, err := c.Get(context.Background(), "thing", "k", func(_ context.Context, dir string) error {
		return os.Symlink("/etc/hostname", filepath.Join(dir, "link"))
	})
	if err == nil || !strings.Contains(err.Error(), "link") {
		t.Fatalf("Get = %v, want an error naming the symlink", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "thing", "k")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("entry exists after a refused build: %v", err)
	}
}

// mustChmodWrite rewrites a read-only artefact, as a careless user would.
func mustChmodWrite(t *testing.T, p, content string) {
	t.Helper()
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestGetNames(t *testing.T) {
	c := openTemp(t)
	noop := func(context.Context, string) error { return nil }
	for _, tt := range []struct{ kind, key string }{
		{"", "k"}, {"a/b", "k"}, {"k", ".."}, {"k", "a/b"}, {"k", ".tmp-x"}, {".", "k"},
	} {
		t.Run(tt.kind+"|"+tt.key, func(t *testing.T) {
			if _, err := c.Get(context.Background(), tt.kind, tt.key, noop); err == nil {
				t.Errorf("Get(%q, %q) succeeded, want an error", tt.kind, tt.key)
			}
		})
	}
}

func TestSweep(t *testing.T) {
	c := openTemp(t)
	kdir := filepath.Join(c.Dir, "thing")
	old := filepath.Join(kdir, tmpPrefix+"k-old")
	young := filepath.Join(kdir, tmpPrefix+"k2-12345")
	otherKey := filepath.Join(kdir, tmpPrefix+"k2-x-12345") // key "k2-x", still building
	keep := filepath.Join(kdir, "k3")
	for _, d := range []string{old, young, keep, otherKey} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * staleAfter)
	for _, d := range []string{old, keep} {
		if err := os.Chtimes(d, past, past); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(c.Dir); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]bool{old: false, young: true, keep: true} {
		_, err := os.Stat(d)
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(d), got, want)
		}
	}
	// A Get of key k2 holds its lock, so its young temp dir is a dead
	// builder's and goes at once.
	var calls atomic.Int32
	if _, err := c.Get(context.Background(), "thing", "k2", fakeBuild(&calls, map[string]string{"a": "a"})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(young); err == nil {
		t.Errorf("Get left a dead builder's %s", filepath.Base(young))
	}
	if _, err := os.Stat(otherKey); err != nil {
		t.Errorf("Get of k2 removed %s, a build of another key: %v", filepath.Base(otherKey), err)
	}
}

func TestInputsKey(t *testing.T) {
	base := Inputs{"recipe": []byte("a"), "packages": []byte("b c")}
	k := base.Key("forky")
	if !strings.HasPrefix(k, "forky-") || len(k) != len("forky-")+12 {
		t.Errorf("Key = %q, want forky-<12 hex>", k)
	}
	if k2 := (Inputs{"packages": []byte("b c"), "recipe": []byte("a")}).Key("forky"); k2 != k {
		t.Errorf("Key depends on map order: %q vs %q", k, k2)
	}
	for name, in := range map[string]Inputs{
		"value changed": {"recipe": []byte("a2"), "packages": []byte("b c")},
		"input added":   {"recipe": []byte("a"), "packages": []byte("b c"), "x": nil},
		"bytes shifted": {"recipe": []byte("ab"), "packages": []byte(" c")},
		"label changed": {"recipe2": []byte("a"), "packages": []byte("b c")},
	} {
		if in.Key("forky") == k {
			t.Errorf("%s: key unchanged", name)
		}
	}
}

// TestFailedBuildDetachesMounts is the reason removeTree exists: a builder
// that dies with a bind mount inside its directory must not get the mount's
// source deleted.
func TestFailedBuildDetachesMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (it bind-mounts); run go test as root, as make test does")
	}
	c := openTemp(t)
	precious := t.TempDir()
	sentinel := filepath.Join(precious, "keep")
	if err := os.WriteFile(sentinel, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mnt string
	_, err := c.Get(context.Background(), "thing", "k", func(_ context.Context, dir string) error {
		mnt = filepath.Join(dir, "tree", "dev")
		if err := os.MkdirAll(mnt, 0o700); err != nil {
			return err
		}
		if err := syscall.Mount(precious, mnt, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount: %w", err)
		}
		return errors.New("builder died")
	})
	if err == nil || strings.Contains(err.Error(), "bind mount") {
		t.Fatalf("Get err = %v, want the builder's failure", err)
	}
	if _, err := os.Stat(sentinel); err != nil {
		t.Errorf("removing the failed build deleted the bind mount's source: %v", err)
	}
	if m, _ := mountsUnder(filepath.Dir(filepath.Dir(mnt))); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
		_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
	}
	if _, err := os.Stat(mnt); err == nil {
		t.Errorf("failed build directory %s still exists", mnt)
	}
}

var mountinfoTests = []struct {
	name, dir string
	want      []string
}{
	{"below", "/c/rootfs/.tmp-x", []string{"/c/rootfs/.tmp-x/tree/proc", "/c/rootfs/.tmp-x/tree/dev"}},
	{"exact", "/c/rootfs/.tmp-x/tree/dev", []string{"/c/rootfs/.tmp-x/tree/dev"}},
	{"prefix is not parent", "/c/rootfs/.tmp", nil},
	{"escaped space", "/c/with space", []string{"/c/with space/m"}},
}

const mountinfoSample = `22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
90 22 0:5 / /c/rootfs/.tmp-x/tree/proc rw - proc proc rw
91 22 0:6 / /c/rootfs/.tmp-x/tree/dev rw - devtmpfs udev rw
92 22 0:7 / /c/with\040space/m rw - tmpfs tmpfs rw
short line
`

func TestParseMountinfo(t *testing.T) {
	for _, tt := range mountinfoTests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseMountinfo([]byte(mountinfoSample), tt.dir)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("parseMountinfo(%q) = %q, want %q", tt.dir, got, tt.want)
			}
		})
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add([]byte(mountinfoSample), "/c")
	f.Add([]byte("1 2 3 4 \\0"), "/")
	f.Fuzz(func(t *testing.T, b []byte, dir string) {
		for _, m := range parseMountinfo(b, dir) {
			if m != dir && !strings.HasPrefix(m, dir+"/") {
				t.Errorf("%q is not at or below %q", m, dir)
			}
		}
	})
}

// TestGetTwoProcesses runs Get in two processes (this test binary re-run as
// a child) on one cache: one builds, the other waits and then hits.
func TestGetTwoProcesses(t *testing.T) {
	if dir := os.Getenv("CCA_IMAGES_CHILD_CACHE"); dir != "" {
		c := &Cache{Dir: dir}
		_, err := c.Get(context.Background(), "thing", "k", func(_ context.Context, tmp string) error {
			time.Sleep(500 * time.Millisecond)
			return os.WriteFile(filepath.Join(tmp, "x"), []byte(os.Getenv("CCA_IMAGES_CHILD_NAME")), 0o600)
		})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	c := openTemp(t)
	var cmds []*exec.Cmd
	for _, name := range []string{"a", "b"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGetTwoProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CCA_IMAGES_CHILD_CACHE="+c.Dir, "CCA_IMAGES_CHILD_NAME="+name)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
	}
	if got := strings.Join(ops(t, c), ","); got != "build,hit" {
		t.Errorf("log ops = %s, want build,hit (one process built, the other waited)", got)
	}
}

func TestPrune(t *testing.T) {
	c := openTemp(t)
	var calls atomic.Int32
	get := func(kind, key string) string {
		t.Helper()
		dir, err := c.Get(context.Background(), kind, key, fakeBuild(&calls, map[string]string{"a": "12345"}))
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	old := time.Now().Add(-DefaultUnusedFor - time.Hour)
	age := func(p string) {
		t.Helper()
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	stale, busy, used, fresh := get("rootfs", "forky-1"), get("rootfs", "forky-2"), get("kernel", "faux-1"), get("kernel", "faux-2")
	for _, p := range []string{stale, busy, used} {
		age(p)
	}
	get("kernel", "faux-1") // a hit counts as a use
	tree := filepath.Join(c.Dir, "kbuild", "tree")
	if err := os.MkdirAll(tree, 0o700); err != nil {
		t.Fatal(err)
	}
	age(tree)
	unlock, err := flock.Lock(context.Background(), busy+".lock", nil)
	if err != nil {
		t.Fatal(err)
	}

	got, err := c.Prune(DefaultUnusedFor)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Kind != "rootfs" || got[0].Key != "forky-1" || got[0].Bytes != 5 || !got[0].LastUsed.Equal(old) {
		t.Fatalf("pruned %+v, want only rootfs/forky-1 (5 bytes, last used %v)", got, old)
	}
	for p, want := range map[string]bool{stale: false, stale + ".lock": true, busy: true, used: true, fresh: true, tree: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", p, err == nil, want)
		}
	}
	if o := ops(t, c); o[len(o)-1] != "prune" {
		t.Errorf("last cache.log op %q, want prune", o[len(o)-1])
	}

	// Open prunes with the default age once the entry is free.
	unlock()
	if _, err := Open(c.Dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(busy); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open left the stale entry %s (stat: %v)", busy, err)
	}
}

// FuzzVerifyManifest: whatever manifest.json holds, the check neither
// panics nor passes an entry it does not describe exactly.
func FuzzVerifyManifest(f *testing.F) {
	good := `{"files":{"a":{"size":1,"mtime_ns":0,"sha256":"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"}}}`
	f.Add([]byte(good))
	f.Add([]byte(`{"files":{"a":{"size":1,"sha256":"ab"}}}`))
	f.Add([]byte(`{"files":{"../a":{"size":1,"sha256":"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"}}}`))
	f.Fuzz(func(t *testing.T, manifest []byte) {
		dir := t.TempDir()
		entry := filepath.Join(dir, "entry")
		if err := os.Mkdir(entry, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{filepath.Join(entry, "a"), filepath.Join(dir, "a")} {
			if err := os.WriteFile(p, []byte("x"), 0o444); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(entry, ManifestName), manifest, 0o444); err != nil {
			t.Fatal(err)
		}
		if verify(entry, true) != nil {
			return
		}
		var m Manifest
		if err := json.Unmarshal(manifest, &m); err != nil {
			t.Fatalf("passed an unreadable manifest: %v", err)
		}
		if len(m.Files) != 1 || m.Files["a"].SHA256 != "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881" {
			t.Fatalf("passed a manifest that does not describe the entry: %+v", m.Files)
		}
	})
}
