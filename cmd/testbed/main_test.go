package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"cca-testbed/cell"
	"cca-testbed/checks"
	"cca-testbed/images"
)

// testbed runs the CLI in process and returns stdout, stderr and the exit code.
func testbed(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	code := exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func TestUsageErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.snap")
	if err := os.WriteFile(bad, []byte("cca-testbed snapshot 2\nlink class/tsm/tsm0 x\nwhat is this\nend\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badExp := filepath.Join(t.TempDir(), "exp.txt")
	if err := os.WriteFile(badExp, []byte("# ok\n*/* tsm0 none\n*/* nosuch none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown variant", []string{"snapshot", "--variant", "nosuch"}, `unknown name: variant "nosuch" (known: ` + cell.VariantNames() + ")"},
		{"prepare an unknown cell", []string{"prepare", "nosuch/realm"}, `variant "nosuch"`},
		{"prepare on the model", []string{"prepare", "--backend", "emulated", "platform/realm"}, "prepare always boots under QEMU"},
		{"unknown cell role", []string{"snapshot", "faux/queen"}, `role "queen"`},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown format", []string{"matrix", "--format", "pdf"}, `unknown format "pdf"`},
		{"unknown backend", []string{"matrix", "--backend", "vmware"}, `unknown backend "vmware"`},
		{"bad flag", []string{"matrix", "--colour"}, "flag provided but not defined: -colour"},
		{"diff arity", []string{"diff", "platform/realm"}, "want two arguments"},
		{"corrupt snapshot file", []string{"diff", bad, bad}, "line 3: unknown fact kind \"what\""},
		{"corrupt expectations", []string{"matrix", "--expectations", badExp}, "line 3: unknown check \"nosuch\""},
		{"unknown firmware profile", []string{"matrix", "--firmware-profile", "rmm-9"}, "rmm-9"},
		{"prune arity", []string{"prune", "everything"}, "prune: takes no arguments"},
		{"unknown firmware build", []string{"firmware", "--build", "tf-rmm-0.1"}, `unknown firmware build "tf-rmm-0.1": known builds are tf-rmm-0.9, tf-rmm-0.8`},
		{"firmware path alone", []string{"firmware", "--path"}, "--path needs --build"},
		{"firmware sources missing", []string{"firmware", "--build", "tf-rmm-0.9", "--firmware-src", t.TempDir()}, "tf-a-v2.15.0.tar.xz missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := testbed(t, tt.args...)
			if code != exitError {
				t.Errorf("exit %d, want %d", code, exitError)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q lacks %q", stderr, tt.want)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
				t.Errorf("error spans %d lines: %q", n+1, stderr)
			}
		})
	}
}

// TestHelpEverywhere: every entry point, the top level and each command,
// answers -h and --help with its usage and exit 0.
func TestHelpEverywhere(t *testing.T) {
	entries := [][]string{{"--help"}, {"-h"}, {"help"}}
	for _, c := range commands() {
		entries = append(entries, []string{c.name, "--help"}, []string{c.name, "-h"})
	}
	for _, args := range entries {
		out, _, code := testbed(t, args...)
		want := "usage: testbed"
		if len(args) == 2 {
			want += " " + args[0]
		}
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("%v: exit %d, output %q, want %q", args, code, out, want)
		}
	}
}

// TestDocListsCommands: the package comment shows every command.
func TestDocListsCommands(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, _, _ := strings.Cut(string(src), "package main")
	for _, c := range commands() {
		if !strings.Contains(doc, "//\ttestbed "+c.name+" ") && !strings.Contains(doc, "//\ttestbed "+c.name+"\n") {
			t.Errorf("main.go's doc does not show `testbed %s`", c.name)
		}
	}
}

func TestVariants(t *testing.T) {
	out, _, code := testbed(t, "variants")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, v := range cell.Variants {
		if !strings.Contains(out, string(v.Name)+" ") {
			t.Errorf("variants output lacks %s", v.Name)
		}
	}
	// The DA check is a column: the glue's RFC check, none for recipes.
	// (The column is as wide as the longest name, so match any spacing.)
	for _, want := range []string{`DA CHECK`, `\nplatform +reg0-bit42 `, `\nsmccc-bus-next +none `, `\nsmccc-aux-v4 +reg2-bit0 `} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("variants output lacks %q:\n%s", want, out)
		}
	}
	// The notes name the variants whose model hosts the firmware in host
	// mode answers (every recipe) and those nothing answers (the
	// prebuilt package); none with the glue is in either.
	for _, n := range []struct {
		marker string
		want   func(cell.Variant) bool
	}{
		{": the testbed's firmware in host mode", cell.FromRecipe},
		{": no RMI answerer", cell.Prebuilt},
	} {
		var names string
		for _, para := range strings.Split(out, "\nhost-da and host-noda of ")[1:] {
			if before, _, ok := strings.Cut(para, n.marker); ok {
				names = before
			}
		}
		if names == "" {
			t.Fatalf("variants output lacks the note %q:\n%s", n.marker, out)
		}
		list := strings.Split(names, ", ")
		for _, v := range cell.Variants {
			if want := n.want(v.Name); slices.Contains(list, string(v.Name)) != want {
				t.Errorf("%s: in the note %q = %v, want %v", v.Name, n.marker, !want, want)
			}
		}
	}
}

// TestEmulatedMatrixJSON is the acceptance check: every cell of the default
// matrix, every check, with its result and expectation, all as expected.
func TestEmulatedMatrixJSON(t *testing.T) {
	out, stderr, code := testbed(t, "matrix", "--backend", "emulated", "--format", "json")
	var rep struct {
		Cells []struct {
			Cell    string          `json:"cell"`
			Results []checks.Result `json:"results"`
		} `json:"cells"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, stderr)
	}
	if len(rep.Cells) != len(cell.Matrix()) {
		t.Errorf("%d cells, want %d", len(rep.Cells), len(cell.Matrix()))
	}
	for _, c := range rep.Cells {
		if len(c.Results) != len(checks.All) {
			t.Errorf("%s: %d results, want %d", c.Cell, len(c.Results), len(checks.All))
		}
		for _, r := range c.Results {
			if r.Status != checks.Pass && r.Status != checks.XFail {
				t.Errorf("%s %s: %s, measured %q expected %q %s", c.Cell, r.Check, r.Status, r.Measured, r.Expected, r.Reason)
			}
			if r.Expected == "" {
				t.Errorf("%s %s: no expectation in the report", c.Cell, r.Check)
			}
		}
	}
	if code != exitOK {
		t.Errorf("exit %d, stderr %s", code, stderr)
	}
}

// TestDiffPlatformFauxBuiltin: the posted faux patch built in trades
// arm-cca-dev for a faux arm-rsi-dev that announces no MODALIAS.
func TestDiffPlatformFauxBuiltin(t *testing.T) {
	out, stderr, code := testbed(t, "diff", "platform/realm", "faux-builtin/realm")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"- device devices/platform/arm-cca-dev",
		"+ device devices/faux/arm-rsi-dev",
		"- uevent devices/platform/arm-cca-dev DRIVER=cca_guest_tsm | MODALIAS=platform:arm-cca-dev",
		"~ cvm systemd-detect-virt: cca => none",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
}

func TestSnapshotFilesDiff(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []string{"platform/host-da", "virtual/host-da"} {
		out, stderr, code := testbed(t, "snapshot", c, "--format", "json")
		if code != exitOK {
			t.Fatalf("snapshot %s: exit %d %s", c, code, stderr)
		}
		if err := os.WriteFile(filepath.Join(dir, strings.ReplaceAll(c, "/", "_")+".json"), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, _, code := testbed(t, "diff", filepath.Join(dir, "platform_host-da.json"), filepath.Join(dir, "virtual_host-da.json"))
	if code != exitOK || !strings.Contains(out, "~ link class/tsm/tsm0: ../../devices/platform/arm-rmi-dev/tsm/tsm0 => ../../devices/virtual/tsm/tsm0") {
		t.Errorf("exit %d, diff:\n%s", code, out)
	}
}

func TestMismatchExitsOne(t *testing.T) {
	exp := filepath.Join(t.TempDir(), "exp.txt")
	if err := os.WriteFile(exp, []byte(checks.DefaultExpectations+"\nplatform/realm cvm-systemd none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := testbed(t, "matrix", "--variant", "platform", "--role", "realm", "--expectations", exp)
	if code != exitMismatch || !strings.Contains(out, "platform/realm cvm-systemd: FAIL measured cca, expected none") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

func TestWriteAll(t *testing.T) {
	dir := t.TempDir()
	_, stderr, code := testbed(t, "matrix", "--variant", "faux", "--out", dir, "--format", "markdown")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []string{"report.txt", "report.json", "report.xml", "report.md", "report.html", "snapshots/faux_realm.snap", "snapshots/faux_realm@trixie.snap"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}

func TestChanges(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, run := range []struct{ out, variant string }{{a, "platform"}, {b, "platform,faux"}} {
		if _, stderr, code := testbed(t, "matrix", "--variant", run.variant, "--role", "realm", "--out", run.out); code != exitOK {
			t.Fatalf("matrix: exit %d %s", code, stderr)
		}
	}
	out, stderr, code := testbed(t, "changes", a, b)
	if code != exitOK || !strings.Contains(out, "+ cell faux/realm") {
		t.Fatalf("changes: exit %d %s\n%s", code, stderr, out)
	}
	out, _, _ = testbed(t, "changes", a, a)
	if !strings.Contains(out, "no changes") {
		t.Fatalf("same run: %s", out)
	}
	_, stderr, code = testbed(t, "changes", a, filepath.Join(dir, "nope"))
	if code != exitError || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("missing run: exit %d %q", code, stderr)
	}
}

func TestFidelity(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, code := testbed(t, "matrix", "--variant", "platform,faux", "--role", "realm", "--out", dir); code != exitOK {
		t.Fatalf("matrix: exit %d %s", code, stderr)
	}
	out, stderr, code := testbed(t, "fidelity", dir)
	if code != exitOK || !strings.Contains(out, "platform/realm: 0 differences") {
		t.Fatalf("model against itself: exit %d %s\n%s", code, stderr, out)
	}
	// A run with another firmware profile is compared with the model
	// answering with that profile (host-noda under rmm-2.0 has DA).
	da := t.TempDir()
	if _, stderr, code := testbed(t, "matrix", "--variant", "smccc-aux", "--role", "host-noda", "--firmware-profile", "rmm-2.0", "--out", da); code != exitOK && code != exitMismatch {
		t.Fatalf("matrix --firmware-profile: exit %d %s", code, stderr)
	}
	out, stderr, code = testbed(t, "fidelity", da)
	if code != exitOK || !strings.Contains(out, "smccc-aux/host-noda: 0 differences") {
		t.Fatalf("--firmware-profile run: exit %d %s\n%s", code, stderr, out)
	}
	// A real run whose guest device moved must show up as differences.
	rep, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	moved := strings.ReplaceAll(string(rep), "devices/platform/arm-cca-dev", "devices/platform/arm-cca-dev.0")
	if err := os.WriteFile(filepath.Join(dir, "report.json"), []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = testbed(t, "fidelity", dir)
	if code != exitMismatch || !strings.Contains(out, "+ device devices/platform/arm-cca-dev") {
		t.Fatalf("moved device: exit %d\n%s", code, out)
	}
}

func TestBenchEmulated(t *testing.T) {
	out, stderr, code := testbed(t, "bench", "--runs", "2")
	if code != exitOK || !strings.HasPrefix(out, fmt.Sprintf("bench what=emulated-matrix cells=%d runs=2 median=", len(cell.Matrix()))) {
		t.Fatalf("exit %d %s\n%s", code, stderr, out)
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	c, err := images.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := c.Get(context.Background(), "rootfs", "forky-0", func(_ context.Context, tmp string) error {
		return os.WriteFile(filepath.Join(tmp, "root.ext4"), make([]byte, 3<<20), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Used 20 days ago: a longer age keeps it, and the cache is not first
	// pruned at the two-week default behind the command's back.
	then := time.Now().Add(-20 * 24 * time.Hour)
	if err := os.Chtimes(entry, then, then); err != nil {
		t.Fatal(err)
	}
	out, _, code := testbed(t, "prune", "--cache", dir, "--unused-for", "720h")
	if code != exitOK || !strings.Contains(out, "0 entries pruned") {
		t.Fatalf("prune --unused-for 720h: exit %d, output %q", code, out)
	}
	if _, err := os.Stat(entry); err != nil {
		t.Fatalf("prune --unused-for 720h removed a 20-day-old entry: %v", err)
	}
	// Used a minute ago: the default (two weeks) keeps it, one second does not.
	then = time.Now().Add(-time.Minute)
	if err := os.Chtimes(entry, then, then); err != nil {
		t.Fatal(err)
	}
	out, _, code = testbed(t, "prune", "--cache", dir)
	if code != exitOK || !strings.Contains(out, "0 entries pruned") {
		t.Fatalf("default prune: exit %d, output %q", code, out)
	}
	out, _, code = testbed(t, "prune", "--cache", dir, "--unused-for", "1s")
	if code != exitOK || !strings.Contains(out, "pruned rootfs/forky-0 (3 MiB") || !strings.Contains(out, "1 entries pruned, 3 MiB freed") {
		t.Fatalf("prune --unused-for 1s: exit %d, output %q", code, out)
	}
	if _, err := os.Stat(entry); !os.IsNotExist(err) {
		t.Errorf("entry still there: %v", err)
	}
}
