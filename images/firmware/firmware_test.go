package firmware

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cca-testbed/qemu"
)

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		name, tfa, rmm string
		wantErr        bool
	}{
		{"tf-rmm-0.9", "v2.15.0", "tf-rmm-v0.9.0", false},
		{"tf-rmm-0.8", "v2.14.0", "tf-rmm-v0.8.0", false},
		{"tf-rmm-0.7", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Lookup(tc.name)
			if tc.wantErr {
				if !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "tf-rmm-0.9, tf-rmm-0.8") {
					t.Fatalf("got %v, want ErrUnknown listing the known builds", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.TFA.Tag != tc.tfa || s.RMM.Tag != tc.rmm {
				t.Errorf("got TF-A %s TF-RMM %s, want %s %s", s.TFA.Tag, s.RMM.Tag, tc.tfa, tc.rmm)
			}
		})
	}
	// Lookup hands out copies.
	s, _ := Lookup("tf-rmm-0.9")
	s.RMMOptions[0] = "RMM_CONFIG=changed"
	if again, _ := Lookup("tf-rmm-0.9"); again.RMMOptions[0] == "RMM_CONFIG=changed" {
		t.Error("changing a looked-up spec changed the table")
	}
}

// TestPinnedDigests holds the pins against the SHA256SUMS shipped with
// the sources, when they are here.
func TestPinnedDigests(t *testing.T) {
	dir, err := DefaultSources()
	if err != nil {
		t.Skipf("no sources directory: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Skipf("no SHA256SUMS: %v", err)
	}
	sums := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			sums[f[1]] = f[0]
		}
	}
	for _, s := range Specs() {
		for _, src := range []Source{s.TFA, s.RMM} {
			if sums[src.Tarball] != src.SHA256 {
				t.Errorf("%s: pinned %s, SHA256SUMS says %q", src.Tarball, src.SHA256, sums[src.Tarball])
			}
		}
	}
}

func TestCheckoutName(t *testing.T) {
	s, _ := Lookup("tf-rmm-0.9")
	if got := s.TFA.CheckoutName(); got != "tf-a-v2.15.0" {
		t.Errorf("TF-A: got %s, want tf-a-v2.15.0", got)
	}
	if got := s.RMM.CheckoutName(); got != "tf-rmm-v0.9.0" {
		t.Errorf("TF-RMM: got %s, want tf-rmm-v0.9.0", got)
	}
}

func TestSourceCandidates(t *testing.T) {
	base := t.TempDir()
	main := filepath.Join(base, "main")
	wt := filepath.Join(base, "wt", "mine")
	for _, d := range []string{filepath.Join(main, ".git", "worktrees", "mine"), filepath.Join(wt, "images", "firmware")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, root := range []string{main, wt} {
		if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module cca-testbed\n\ngo 1.24\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(wt, ".git"), []byte("gitdir: "+filepath.Join(main, ".git", "worktrees", "mine")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := sourceCandidates(filepath.Join(wt, "images", "firmware"))
	want := []string{filepath.Join(base, "wt", "shared", "firmware-src"), filepath.Join(base, "shared", "firmware-src")}
	if !slices.Equal(got, want) {
		t.Errorf("worktree: got %v, want %v", got, want)
	}
	if got := sourceCandidates(main); !slices.Equal(got, want[1:]) {
		t.Errorf("main checkout: got %v, want %v", got, want[1:])
	}
	if got := sourceCandidates(base); got != nil {
		t.Errorf("outside a repository: got %v, want none", got)
	}
}

// TestSourceErrors: a tarball that is not the pinned one is refused by
// name, a missing one is named with what to do, and a checkout must be
// at the pinned tag and clean.
func TestSourceErrors(t *testing.T) {
	s, _ := Lookup("tf-rmm-0.9")
	ctx := context.Background()

	t.Run("corrupt tarball", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, s.TFA.Tarball), []byte("not TF-A\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := resolveSources(ctx, dir, s.TFA, s.RMM)
		checkOneLine(t, err, ErrSource, s.TFA.Tarball, s.TFA.SHA256, "not the release tarball")
	})
	t.Run("missing tarball", func(t *testing.T) {
		_, err := resolveSources(ctx, t.TempDir(), s.TFA, s.RMM)
		checkOneLine(t, err, ErrSource, s.TFA.Tarball+" missing", SourcesEnv)
	})
	t.Run("missing directory", func(t *testing.T) {
		_, err := resolveSources(ctx, filepath.Join(t.TempDir(), "nope"), s.TFA, s.RMM)
		checkOneLine(t, err, ErrSource, "sources directory", "is missing", s.RMM.Tarball)
	})
	t.Run("missing via Build", func(t *testing.T) {
		_, err := Build(ctx, Options{Cache: nil, Sources: t.TempDir()}, s)
		checkOneLine(t, err, ErrSource, "firmware tf-rmm-0.9", s.TFA.Tarball+" missing")
	})

	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed (scripts/setup-host installs it)")
	}
	dir := t.TempDir()
	co := filepath.Join(dir, s.TFA.CheckoutName())
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", co, "-c", "user.name=t", "-c", "user.email=t@localhost"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	if err := os.MkdirAll(co, 0o755); err != nil {
		t.Fatal(err)
	}
	git("init", "-q")
	if err := os.WriteFile(filepath.Join(co, "Makefile"), []byte("all:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "-A")
	git("commit", "-q", "-m", "x")
	git("tag", "v2.14.0")
	t.Run("checkout at another tag", func(t *testing.T) {
		_, err := resolveSource(ctx, dir, s.TFA)
		checkOneLine(t, err, ErrSource, "is not at tag v2.15.0", "checkout v2.15.0")
	})
	git("tag", "v2.15.0")
	t.Run("checkout at the tag", func(t *testing.T) {
		r, err := resolveSource(ctx, dir, s.TFA)
		if err != nil {
			t.Fatal(err)
		}
		if !r.checkout || !strings.HasPrefix(r.id, "git:") {
			t.Errorf("got %+v, want a checkout with a git id", r)
		}
	})
	if err := os.WriteFile(filepath.Join(co, "Makefile"), []byte("all: changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("dirty checkout", func(t *testing.T) {
		_, err := resolveSource(ctx, dir, s.TFA)
		checkOneLine(t, err, ErrSource, "has local changes", "Makefile")
	})
}

// checkOneLine asserts err wraps target, is one line, and says each of
// the fragments.
func checkOneLine(t *testing.T, err, target error, says ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got %v, want %v", err, target)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
	for _, s := range says {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not say %q", msg, s)
		}
	}
}

// TestScriptAndKey: every option reaches the script, and the key moves
// with options, sources and the build root but not with the job count.
func TestScriptAndKey(t *testing.T) {
	s, _ := Lookup("tf-rmm-0.9")
	srcs := []resolved{{Source: s.TFA, id: "sha256:" + s.TFA.SHA256}, {Source: s.RMM, id: "sha256:" + s.RMM.SHA256}}
	b := &build{spec: s, srcs: srcs, root: "/c/buildroot/trixie-amd64-aaaa/root.tar.zst", jobs: 2}
	script := b.script()
	for _, want := range []string{"-DRMM_CONFIG=qemu_virt_defcfg", "-DLOG_LEVEL=40", "PLAT=qemu", "ENABLE_RME=1",
		"PRELOADED_BL33_BASE=0x60000000", "ARM_LINUX_KERNEL_AS_BL33=1", "RMM=" + rmmImage, "all fip"} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	key := b.inputs().Key(s.Name)
	if !strings.HasPrefix(key, "tf-rmm-0.9-") {
		t.Errorf("key %s does not start with the name", key)
	}
	jobs := *b
	jobs.jobs = 8
	if jobs.inputs().Key(s.Name) != key {
		t.Error("the job count changed the key")
	}
	changes := map[string]func(*build){
		"rmm option": func(b *build) { b.spec.RMMOptions = append(slices.Clone(b.spec.RMMOptions), "LOG_LEVEL=50") },
		"tfa option": func(b *build) { b.spec.TFAOptions = append(slices.Clone(b.spec.TFAOptions), "DEBUG=1") },
		"source": func(b *build) {
			b.srcs = slices.Clone(b.srcs)
			b.srcs[1].id = "git:0123"
		},
		"build root": func(b *build) { b.root = "/c/buildroot/trixie-amd64-bbbb/root.tar.zst" },
	}
	for name, change := range changes {
		c := *b
		change(&c)
		if c.inputs().Key(s.Name) == key {
			t.Errorf("%s: key unchanged", name)
		}
	}
}

// TestAssemble: the flash layout is the one qemu.CheckFirmware accepts.
func TestAssemble(t *testing.T) {
	dir := t.TempDir()
	bl1 := filepath.Join(dir, "bl1.bin")
	fip := filepath.Join(dir, "fip.bin")
	if err := os.WriteFile(bl1, []byte("\x00\x01\x02\x03 bl1 code"), 0o644); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 64)
	binary.LittleEndian.PutUint32(hdr, qemu.FIPHeaderName)
	if err := os.WriteFile(fip, hdr, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "flash.bin")
	if err := assemble(bl1, fip, out); err != nil {
		t.Fatal(err)
	}
	if err := qemu.CheckFirmware(out); err != nil {
		t.Errorf("assembled flash refused: %v", err)
	}
	if FIPOffset != qemu.FIPOffset {
		t.Errorf("FIPOffset %#x, qemu expects %#x", FIPOffset, qemu.FIPOffset)
	}
	big := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(big, make([]byte, FIPOffset+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := assemble(big, fip, out); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("oversized bl1: got %v", err)
	}
}

func TestLastStage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	log := "x\n" + stageMarker + "stage tf-rmm git\nfoo\n" + stageMarker + "stage tf-rmm configure\nCMake Error\n"
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := lastStage(p); got != "tf-rmm configure" {
		t.Errorf("got %q, want tf-rmm configure", got)
	}
	if got := tailOf(p, 2); got != strings.TrimSpace(stageMarker)+" stage tf-rmm configure | CMake Error" {
		t.Errorf("tail: got %q", got)
	}
}
