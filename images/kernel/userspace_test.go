package kernel

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cca-testbed/images"
	"cca-testbed/series"
)

// TestWithUserspace: a recipe's userspace part lands in a copy of the
// kernel's modules disk under cca-userspace/, root-owned and 0644, next
// to the modules it leaves as they were; the kernel's own disk is not
// written; the same part is a cache hit, another part another entry.
func TestWithUserspace(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	mods := filepath.Join(tmp, "lib-modules", "7.3.4-x")
	if err := os.MkdirAll(mods, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mods, "modules.alias"), []byte("alias x y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kdir := filepath.Join(tmp, "kernel-entry")
	if err := os.Mkdir(kdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := makeExt4(ctx, filepath.Dir(mods), filepath.Join(kdir, ModulesName), nil); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(kdir, ModulesName))
	if err != nil {
		t.Fatal(err)
	}
	cache, err := images.Open(filepath.Join(tmp, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	k := &Kernel{Image: filepath.Join(kdir, ImageName), ModulesDisk: filepath.Join(kdir, ModulesName), Release: "7.3.4-x", Dir: kdir}
	files := []series.UserspaceFile{
		{GuestPath: "/etc/modules-load.d/cca.conf", Data: []byte("arm_cca_guest\n")},
		{GuestPath: "/etc/udev/rules.d/60-cca.rules", Data: []byte("ACTION==\"add\", RUN+=\"/bin/true\"\n")},
	}
	got, err := withUserspace(ctx, cache, "x", k, files)
	if err != nil {
		t.Fatal(err)
	}
	if got.ModulesDisk == k.ModulesDisk || got.Image != k.Image || got.Release != k.Release {
		t.Fatalf("kernel %+v from %+v", got, k)
	}
	debugfs := func(req string) string {
		out, err := exec.Command("debugfs", "-R", req, got.ModulesDisk).Output()
		if err != nil {
			t.Fatalf("debugfs %s: %v", req, err)
		}
		return string(out)
	}
	for _, f := range files {
		p := "cca-userspace" + f.GuestPath
		if c := debugfs("cat " + p); c != string(f.Data) {
			t.Errorf("%s = %q, want %q", p, c, f.Data)
		}
		st := debugfs("stat " + p)
		for _, want := range []string{"Mode:  0644", "User:     0", "Group:     0"} {
			if !strings.Contains(st, want) {
				t.Errorf("%s: stat lacks %q:\n%s", p, want, st)
			}
		}
	}
	if c := debugfs("cat 7.3.4-x/modules.alias"); c != "alias x y\n" {
		t.Errorf("modules.alias = %q", c)
	}
	if after, _ := os.ReadFile(k.ModulesDisk); string(after) != string(before) {
		t.Error("the kernel's own modules disk was written")
	}
	again, err := withUserspace(ctx, cache, "x", k, files)
	if err != nil || again.ModulesDisk != got.ModulesDisk {
		t.Errorf("same part: %v, disk %s, want %s", err, again.ModulesDisk, got.ModulesDisk)
	}
	other, err := withUserspace(ctx, cache, "x", k, files[:1])
	if err != nil || other.ModulesDisk == got.ModulesDisk {
		t.Errorf("another part: %v, disk %s", err, other.ModulesDisk)
	}
	if none, err := withUserspace(ctx, cache, "x", k, nil); err != nil || none != k {
		t.Errorf("no part: %v, %+v", err, none)
	}
	if _, err := withUserspace(ctx, cache, "x", k, []series.UserspaceFile{{GuestPath: "/etc/passwd"}}); err == nil || !strings.Contains(err.Error(), "/etc/passwd") {
		t.Errorf("bad path: err = %v", err)
	}
}
