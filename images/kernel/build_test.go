package kernel

import (
	"bytes"
	"encoding/binary"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cca-testbed/cell"
	builtin "cca-testbed/variants"
)

// aliases is what each variant's modules.alias must say about the
// testbed's modules (kernel-configs/README.md, "Aliases"): exactly these
// lines, no more. The emulated kmod model is written against the same
// table.
var aliases = map[cell.Variant][]string{
	cell.Platform: {
		"alias platform:arm-cca-dev cca_guest_tsm",
		"alias platform:arm-rmi-dev cca_host_tsm",
	},
	cell.SMCCCAux: {
		"alias auxiliary:arm_cca_guest.arm-rsi-dev cca_guest_tsm",
		"alias auxiliary:arm_cca_host.arm-rmi-dev cca_host_tsm",
	},
	cell.SMCCCAuxNoLegacy: {
		"alias auxiliary:arm_cca_guest.arm-rsi-dev cca_guest_tsm",
		"alias auxiliary:arm_cca_host.arm-rmi-dev cca_host_tsm",
	},
	cell.Virtual: nil,
	cell.ModuleFaux: {
		"alias cpu:type:*:feature:*0001* cca_faux",
	},
}

// deps is what modules.dep must say about the testbed's modules.
var deps = map[cell.Variant][]string{
	cell.Platform:         {"cca_guest_tsm.ko: kernel/drivers/virt/coco/guest/tsm_report.ko", "cca_host_tsm.ko:"},
	cell.SMCCCAux:         {"cca_guest_tsm.ko: kernel/drivers/virt/coco/guest/tsm_report.ko", "cca_host_tsm.ko:"},
	cell.SMCCCAuxNoLegacy: {"cca_guest_tsm.ko: kernel/drivers/virt/coco/guest/tsm_report.ko", "cca_host_tsm.ko:"},
	cell.Virtual:          nil,
	cell.ModuleFaux:       {"cca_faux.ko: kernel/drivers/virt/coco/guest/tsm_report.ko"},
}

// variants bounds what TestBuildVariants builds. make test builds the
// glue kernel the real-boot tests need (platform), so a cold CI run stays
// within its budget; the nightly matrix builds and boots them all, and
// `go test ./images/kernel -run BuildVariants -variants all` checks all
// here. Variants built from recipes (variants/)
// are built by BuildSeries and checked in ./variants and ./vm.
var variants = flag.String("variants", "platform", `comma-separated variants to build, or "all"`)

// TestBuildVariants builds variants into the shared cache: platform
// first (cold: minutes), then the others incrementally in the same build
// directory (seconds each), then platform again, which must be a cache
// hit. Each kernel is checked for an arm64 Image and for the aliases and
// dependencies the contract promises.
func TestBuildVariants(t *testing.T) {
	ctx, opts := testOptions(t)

	order := []cell.Variant{cell.Platform}
	for _, v := range cell.Variants {
		if v.Name != cell.Platform && !cell.FromRecipe(v.Name) && !cell.Prebuilt(v.Name) && (*variants == "all" || slices.Contains(strings.Split(*variants, ","), string(v.Name))) {
			order = append(order, v.Name)
		}
	}
	built := map[cell.Variant]*Kernel{}
	for _, v := range order {
		start := time.Now()
		k, err := Build(ctx, opts, v)
		if err != nil {
			t.Fatalf("Build(%s): %v", v, err)
		}
		t.Logf("%s: %s in %v (%s)", v, k.Release, time.Since(start).Round(time.Millisecond), k.Dir)
		built[v] = k
		checkKernel(t, v, k)
	}

	// A warm rerun builds nothing: same entry, untouched.
	before, err := os.Stat(built[cell.Platform].Image)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	again, err := Build(ctx, opts, cell.Platform)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("platform again: %v", time.Since(start).Round(time.Millisecond))
	after, err := os.Stat(again.Image)
	if err != nil {
		t.Fatal(err)
	}
	if again.Dir != built[cell.Platform].Dir || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("rerun of platform rebuilt: %s (mtime %v), first %s (mtime %v)",
			again.Dir, after.ModTime(), built[cell.Platform].Dir, before.ModTime())
	}
}

func checkKernel(t *testing.T, v cell.Variant, k *Kernel) {
	t.Helper()
	if want := "7.3.4-" + string(v); k.Release != want {
		t.Errorf("%s: release %q, want %q", v, k.Release, want)
	}
	img, err := os.ReadFile(k.Image)
	if err != nil {
		t.Fatal(err)
	}
	// arm64 Image header (Documentation/arch/arm64/booting.rst): the
	// magic "ARM\x64" at offset 56.
	if len(img) < 64 || binary.LittleEndian.Uint32(img[56:60]) != 0x644d5241 {
		t.Errorf("%s: %s is not an arm64 Image (no ARM\\x64 magic at 56)", v, k.Image)
	}
	cfg, err := os.ReadFile(filepath.Join(k.Dir, ConfigName))
	if err != nil || !bytes.Contains(cfg, []byte(`CONFIG_LOCALVERSION="-`+string(v)+`"`)) {
		t.Errorf("%s: entry config lacks its LOCALVERSION (%v)", v, err)
	}

	alias := debugfsCat(t, k.ModulesDisk, "/"+k.Release+"/modules.alias")
	got := ccaLines(alias, func(l string) bool {
		f := strings.Fields(l)
		return len(f) == 3 && f[0] == "alias" && strings.HasPrefix(f[2], "cca_")
	})
	if !slices.Equal(got, sorted(aliases[v])) {
		t.Errorf("%s: modules.alias lines for cca_* modules:\n got %q\nwant %q", v, got, sorted(aliases[v]))
	}
	dep := debugfsCat(t, k.ModulesDisk, "/"+k.Release+"/modules.dep")
	gotDeps := ccaLines(dep, func(l string) bool { return strings.Contains(l, "/cca_testbed/") })
	for i, l := range gotDeps {
		gotDeps[i] = strings.TrimPrefix(l, "kernel/drivers/virt/coco/cca_testbed/")
	}
	if !slices.Equal(gotDeps, sorted(deps[v])) {
		t.Errorf("%s: modules.dep lines for cca_* modules:\n got %q\nwant %q", v, gotDeps, sorted(deps[v]))
	}
	if !strings.Contains(dep, "kernel/drivers/virt/coco/guest/tsm_report.ko:") {
		t.Errorf("%s: tsm_report.ko is not installed (base.config promises TSM_REPORTS=m)", v)
	}
}

// TestBuildStock builds stock from its empty recipe in the series tree,
// as vm does, and checks what the stock kernel promises: none of the
// project's modules, upstream's arm_cca_guest with its platform alias
// (rsi.c's arm-cca-dev autoloads it) and tsm_report, and the config
// symbols its fragment names.
func TestBuildStock(t *testing.T) {
	ctx, opts := testOptions(t)
	r, ok, err := builtin.Recipe(cell.Stock)
	if err != nil || !ok {
		t.Fatalf("variants.Recipe(stock) = %v, %v", ok, err)
	}
	start := time.Now()
	k, err := BuildSeries(ctx, opts, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stock: %s in %v (%s)", k.Release, time.Since(start).Round(time.Millisecond), k.Dir)
	checkKernel(t, cell.Stock, k)
	alias := debugfsCat(t, k.ModulesDisk, "/"+k.Release+"/modules.alias")
	if !strings.Contains(alias, "alias platform:arm-cca-dev arm_cca_guest\n") {
		t.Errorf("modules.alias lacks upstream's arm_cca_guest alias")
	}
	dep := debugfsCat(t, k.ModulesDisk, "/"+k.Release+"/modules.dep")
	if !strings.Contains(dep, "kernel/drivers/virt/coco/arm-cca-guest/arm-cca-guest.ko: kernel/drivers/virt/coco/guest/tsm_report.ko") {
		t.Errorf("modules.dep lacks arm-cca-guest.ko with its tsm_report dependency")
	}
	cfg, err := os.ReadFile(filepath.Join(k.Dir, ConfigName))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"CONFIG_ARM_CCA_GUEST=m", "CONFIG_TSM_REPORTS=m",
		`CONFIG_LOCALVERSION="-stock"`, "# CONFIG_LOCALVERSION_AUTO is not set"} {
		if !bytes.Contains(cfg, []byte("\n"+line+"\n")) {
			t.Errorf(".config lacks %q", line)
		}
	}
	// TSM and AUXILIARY_BUS have no prompt: unselected, .config omits them.
	for _, s := range []string{"\nCONFIG_TSM=", "\nCONFIG_AUXILIARY_BUS=", "CONFIG_CCA_TESTBED"} {
		if bytes.Contains(cfg, []byte(s)) {
			t.Errorf(".config sets %q: stock has no glue to select it", strings.TrimSpace(s))
		}
	}
	if err := Check(Fragment{"CONFIG_TSM": "n", "CONFIG_AUXILIARY_BUS": "n", "CONFIG_ARM_CCA_GUEST": "m"}, cfg); err != nil {
		t.Error(err)
	}
}

// debugfsCat reads a file out of an ext4 image without mounting it.
func debugfsCat(t *testing.T, image, path string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("debugfs", "-R", "cat "+path, image)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || len(out) == 0 {
		t.Fatalf("debugfs cat %s in %s: %v (%s); e2fsprogs comes from scripts/setup-host", path, image, err, stderr.String())
	}
	return string(out)
}

func ccaLines(s string, keep func(string) bool) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if keep(l) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return sorted(out)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// testWriter sends the build's progress log to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
