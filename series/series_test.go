package series

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cca-testbed/images"
)

func TestRead(t *testing.T) {
	tests := []struct {
		spec, name, format, version string
		subjects                    []string
		fragment                    string
		userspace                   []string
	}{
		{
			spec: "testdata/applies", name: "applies-demo", format: "quilt", version: "v1",
			subjects: []string{
				"arm64: rsi: say when no realm device is registered",
				"arm64: rsi: say why the realm device waits for arch_initcall",
				"arm64: rsi: register the realm device as arm-cca-demo",
			},
			fragment:  "CONFIG_PRINTK_TIME=y",
			userspace: []string{"/etc/udev/rules.d/90-testbed-demo.rules"},
		},
		{
			spec: "testdata/fails-apply", name: "fails-apply", format: "format-patch",
			subjects: []string{
				"arm64: rsi: say where the realm config comes from",
				"arm64: rsi: comment the shared bit and the ioremap hook",
			},
		},
		{
			spec: "testdata/fails-build.mbox", name: "fails-build", format: "mbox",
			subjects: []string{"arm64: rsi: gate the realm device on a symbol nobody defines"},
		},
		{
			spec: "testdata/bisect3.mbox", name: "bisect3", format: "mbox", version: "v2",
			subjects: []string{
				"arm64: rsi: add a helper telling whether we are a realm guest",
				"arm64: rsi: include the kobject and sysfs headers",
				"arm64: rsi: expose /sys/firmware/cca/realm_guest",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Read(context.Background(), tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if r.Name != tt.name || r.Provenance.Format != tt.format || r.Provenance.Version != tt.version {
				t.Errorf("name, format, version = %q, %q, %q; want %q, %q, %q", r.Name, r.Provenance.Format, r.Provenance.Version, tt.name, tt.format, tt.version)
			}
			if len(r.Patches) != len(tt.subjects) {
				t.Fatalf("%d patches, want %d", len(r.Patches), len(tt.subjects))
			}
			for i, p := range r.Patches {
				if p.Subject != tt.subjects[i] || p.Index != i+1 {
					t.Errorf("patch %d: %d %q, want %d %q", i, p.Index, p.Subject, i+1, tt.subjects[i])
				}
				if len(p.Files) != 1 || p.Files[0].Path() != "arch/arm64/kernel/rsi.c" {
					t.Errorf("patch %d files: %+v", i+1, p.Files)
				}
			}
			if !strings.Contains(r.Provenance.Who, "tests@cca-testbed.invalid") {
				t.Errorf("provenance who = %q", r.Provenance.Who)
			}
			if tt.format != "quilt" && r.Provenance.Date == "" {
				t.Errorf("provenance has no date: %+v", r.Provenance)
			}
			if !strings.Contains(string(r.Fragment), tt.fragment) {
				t.Errorf("fragment %q lacks %q", r.Fragment, tt.fragment)
			}
			var us []string
			for _, u := range r.Userspace {
				us = append(us, u.GuestPath)
			}
			if strings.Join(us, ",") != strings.Join(tt.userspace, ",") {
				t.Errorf("userspace = %v, want %v", us, tt.userspace)
			}
		})
	}
}

// TestReadEmptyRecipe: a recipe whose quilt series lists nothing is the
// base as it is (the stock variant): no patches, its fragment and
// provenance, and a summary that says so.
func TestReadEmptyRecipe(t *testing.T) {
	for _, series := range []string{"", "# the base as shipped\n\n"} {
		dir := filepath.Join(t.TempDir(), "baseline")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for n, s := range map[string]string{
			"recipe":        "description: the base as it is\nda-check: none\nwho: A Distro\nversion: 1.0-1\ndate: 2026-11-15\n",
			"series":        series,
			"kernel.config": "CONFIG_PRINTK_TIME=y\n",
		} {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		r, err := Read(context.Background(), dir)
		if err != nil {
			t.Fatalf("series %q: %v", series, err)
		}
		if r.Name != "baseline" || len(r.Patches) != 0 || string(r.Fragment) != "CONFIG_PRINTK_TIME=y\n" || r.DACheck != "none" {
			t.Errorf("series %q: name %q, %d patches, fragment %q, da-check %q", series, r.Name, len(r.Patches), r.Fragment, r.DACheck)
		}
		want := "the base as it is (no patches); by A Distro; version 1.0-1; date 2026-11-15; quilt " + dir
		if got := r.Summary(); got != want {
			t.Errorf("series %q: summary\n %q\nwant\n %q", series, got, want)
		}
		if err := Check(context.Background(), t.TempDir(), r.Patches); err != nil {
			t.Errorf("Check of no patches: %v", err)
		}
	}
}

func TestReadMessageIDs(t *testing.T) {
	r, err := Read(context.Background(), "testdata/bisect3.mbox")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Patches {
		if p.MessageID == "" || strings.ContainsAny(p.MessageID, "<>") || len(p.Commit) != 40 {
			t.Errorf("patch %d: message-id %q commit %q", p.Index, p.MessageID, p.Commit)
		}
	}
	if r.Provenance.MessageID != r.Patches[0].MessageID {
		t.Errorf("provenance message-id %q, want the first patch's", r.Provenance.MessageID)
	}
}

// gitRepo makes a repository with one file and two commits on top of a
// base commit tagged "base".
func gitRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@example.invalid",
			"GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@example.invalid", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "f.c"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run("init", "-q")
	write("a\nb\nc\n")
	run("add", "f.c")
	run("commit", "-qm", "base")
	run("tag", "base")
	write("a\nB\nc\n")
	run("commit", "-qam", "one: change b")
	write("a\nB\nC\n")
	run("commit", "-qam", "two: change c")
	return dir
}

func TestReadGitRange(t *testing.T) {
	dir := gitRepo(t)
	r, err := Read(context.Background(), dir+":base..HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Patches) != 2 || r.Patches[0].Subject != "one: change b" || r.Patches[1].Subject != "two: change c" {
		t.Fatalf("patches: %+v", r.Patches)
	}
	if r.Provenance.Format != "git-range" || len(r.Provenance.Commit) != 40 || r.Provenance.Commit != r.Patches[1].Commit {
		t.Errorf("provenance %+v", r.Provenance)
	}
	if err := Check(context.Background(), dir, r.Patches); err == nil {
		t.Error("Check applied a range to the tree that already holds it")
	}
	if _, err := Read(context.Background(), dir+":nosuch..HEAD"); err == nil || !strings.Contains(err.Error(), "format-patch") {
		t.Errorf("bad range: err = %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	mk := func(files map[string]string) string {
		dir := t.TempDir()
		for n, s := range files {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	one := "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n"
	tests := []struct {
		name, spec, want string
	}{
		{"missing", "/nonexistent/series", "no such file"},
		{"empty dir", mk(nil), "no series file"},
		{"bad recipe key", mk(map[string]string{"recipe": "colour: blue\n"}), "want KEY: VALUE"},
		{"recipe key twice", mk(map[string]string{"recipe": "name: a\nname: b\n"}), "given twice"},
		{"bad da-check", mk(map[string]string{"recipe": "da-check: reg0-bit43\n"}), `recipe line 1: da-check "reg0-bit43": want one of reg0-bit42, reg2-bit0, none`},
		{"da-check twice", mk(map[string]string{"recipe": "da-check: none\nda-check: reg2-bit0\n"}), "given twice"},
		{"bad name", mk(map[string]string{"recipe": "name: Not Valid\n", "series": "p\n", "p": one}), "variant name"},
		{"quilt escapes", mk(map[string]string{"series": "../etc/passwd\n"}), "outside the series directory"},
		{"empty quilt, no recipe", mk(map[string]string{"series": "# nothing yet\n"}), "lists no patches"},
		{"empty quilt elsewhere", func() string {
			d := mk(map[string]string{"recipe": "series: sub\n"})
			if err := os.Mkdir(filepath.Join(d, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "sub", "series"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return d
		}(), "lists no patches"},
		{"quilt -p0", mk(map[string]string{"series": "p -p0\n", "p": one}), "only"},
		{"path escapes", mk(map[string]string{"series": "p\n", "p": "--- a/../x\n+++ b/../x\n@@ -1 +1 @@\n-a\n+b\n"}), "leaves the tree"},
		{"short hunk", mk(map[string]string{"series": "p\n", "p": "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n-a\n+b\n"}), "ends early"},
		{"no diff", mk(map[string]string{"series": "p\n", "p": "just words\n"}), "no diff"},
		{"udev not rules", mk(map[string]string{"recipe": "udev: x.conf\n", "series": "p\n", "p": one, "x.conf": "x"}), "ending in .rules"},
		{"base not a tree", mk(map[string]string{"recipe": "base: /tmp\n", "series": "p\n", "p": one}), "not a kernel tree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(context.Background(), tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestParseMboxOrder(t *testing.T) {
	msg := func(n int, subj string) string {
		return "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: A <a@example.invalid>\nSubject: [PATCH v3 " +
			subj + "\n\n---\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n\n"
	}
	cover := "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nSubject: [PATCH v3 0/2] cover\n\nwords\n\n"
	ps, err := ParseMbox([]byte(cover + msg(2, "2/2] second") + msg(1, "1/2] first")))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Subject != "first" || ps[1].Subject != "second" || ps[0].Index != 1 {
		t.Fatalf("got %+v", ps)
	}
	if _, err := ParseMbox([]byte(msg(1, "1/3] a") + msg(3, "3/3] c"))); err == nil || !strings.Contains(err.Error(), "do not run") {
		t.Errorf("gap: err = %v", err)
	}
	qp := "From: A <a@example.invalid>\nSubject: =?UTF-8?q?[PATCH]_caf=C3=A9?=\nContent-Transfer-Encoding: quoted-printable\n\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a=3D1\n+b\n"
	ps, err = ParseMbox([]byte(qp))
	if err != nil || len(ps) != 1 || ps[0].Subject != "café" || !strings.Contains(string(ps[0].Diff), "-a=1") {
		t.Errorf("quoted-printable: %+v, %v", ps, err)
	}
}

func TestParseDiffHunks(t *testing.T) {
	d := "diff --git a/x.c b/x.c\n--- a/x.c\n+++ b/x.c\n@@ -1,3 +1,3 @@ int f(void)\n a\n--- not a header\n+c\n \n" +
		"diff --git a/y.c b/y.c\nnew file mode 100644\n--- /dev/null\n+++ b/y.c\n@@ -0,0 +1 @@\n+new\n-- \n2.39.5\n"
	files, err := ParseDiff([]byte(d))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Path() != "x.c" || files[0].Hunks[0].Header != "@@ -1,3 +1,3 @@ int f(void)" ||
		files[1].Old != "" || files[1].New != "y.c" {
		t.Fatalf("got %+v", files)
	}
}

// source is the unpacked linux-source-7.3 scripts/setup-host prepares.
func source(t *testing.T) string {
	t.Helper()
	dir, err := images.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src", "linux-source-7.3")
	if _, err := os.Stat(filepath.Join(src, ".unpacked")); err != nil {
		t.Fatalf("no unpacked kernel source (run scripts/setup-host): %v", err)
	}
	return src
}

func TestCheck(t *testing.T) {
	src := source(t)
	for _, spec := range []string{"testdata/applies", "testdata/bisect3.mbox", "testdata/fails-build.mbox"} {
		r, err := Read(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(context.Background(), src, r.Patches); err != nil {
			t.Errorf("%s: %v", spec, err)
		}
	}
	r, err := Read(context.Background(), "testdata/fails-apply")
	if err != nil {
		t.Fatal(err)
	}
	err = Check(context.Background(), src, r.Patches)
	var ae *ApplyError
	if !errors.As(err, &ae) || !errors.Is(err, ErrApply) {
		t.Fatalf("err = %v, want an ApplyError", err)
	}
	want := ApplyError{Patch: 2, Total: 2, Subject: "arm64: rsi: comment the shared bit and the ioremap hook",
		Name: "0002-arm64-rsi-comment-the-shared-bit-and-the-ioremap-hoo.patch", File: "arch/arm64/kernel/rsi.c",
		Hunk: "#2 @@ -118,6 +119,7 @@ bool arm64_rsi_is_protected(phys_addr_t base, size_t size)"}
	got := *ae
	got.Detail = ""
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	t.Logf("message: %v", err)
	// The base tree is untouched.
	if b, err := os.ReadFile(filepath.Join(src, "arch/arm64/kernel/rsi.c")); err != nil || strings.Contains(string(b), "Filled by RSI_REALM_CONFIG") {
		t.Errorf("Check wrote the base tree (%v)", err)
	}
}

// TestBisect runs the search against every change point of series of
// several lengths and counts probes: the base plus ceil(log2(n+1)).
func TestBisect(t *testing.T) {
	for n := 1; n <= 9; n++ {
		budget := 1
		for 1<<(budget-1) < n+1 {
			budget++
		}
		for change := 1; change <= n+1; change++ { // n+1: no patch changes it
			probes := 0
			b, err := Bisect(context.Background(), n, func(_ context.Context, k int) (string, error) {
				probes++
				if k >= change {
					return "after", nil
				}
				return "before", nil
			})
			if err != nil {
				t.Fatal(err)
			}
			want := change
			if change > n {
				want = 0
			}
			if b.First != want || probes > budget || len(b.Steps) != probes {
				t.Errorf("n=%d change=%d: first %d in %d probes (steps %v), want %d in at most %d", n, change, b.First, probes, b.Steps, want, budget)
			}
			if n == 6 && probes > 4 {
				t.Errorf("6 patches took %d builds", probes)
			}
		}
	}
	if _, err := Bisect(context.Background(), 0, nil); err == nil {
		t.Error("bisect of no patches: no error")
	}
}
