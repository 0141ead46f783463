package kernel

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"cca-testbed/cell"
	kernelconfigs "cca-testbed/kernel-configs"
	"cca-testbed/series"
)

func TestParseFragment(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Fragment
		wantErr bool
	}{
		{"empty", "", Fragment{}, false},
		{"values", "CONFIG_A=y\nCONFIG_B=m\nCONFIG_C=\"-x\"\nCONFIG_D=-1\n",
			Fragment{"CONFIG_A": "y", "CONFIG_B": "m", "CONFIG_C": `"-x"`, "CONFIG_D": "-1"}, false},
		{"not set means n", "# CONFIG_A is not set\n", Fragment{"CONFIG_A": "n"}, false},
		{"comments and blanks", "# a comment\n\n   \n# CONFIG_A is set wrongly\nCONFIG_B=y\n", Fragment{"CONFIG_B": "y"}, false},
		{"last wins", "CONFIG_A=y\n# CONFIG_A is not set\n", Fragment{"CONFIG_A": "n"}, false},
		{"indented", "  CONFIG_A=y  \n", Fragment{"CONFIG_A": "y"}, false},
		{"no prefix", "A=y\n", nil, true},
		{"no value", "CONFIG_A=\n", nil, true},
		{"garbage", "CONFIG_A y\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFragment("t", []byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrConfig) {
					t.Errorf("err %v does not wrap ErrConfig", err)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	base := Fragment{"CONFIG_A": "y", "CONFIG_B": "m", "CONFIG_L": `""`}
	variant := Fragment{"CONFIG_B": "n", "CONFIG_C": "y", "CONFIG_L": `"-faux"`}
	got := Merge(base, variant)
	want := Fragment{"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": "y", "CONFIG_L": `"-faux"`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if base["CONFIG_B"] != "m" {
		t.Errorf("Merge modified its input: %v", base)
	}
	wantText := "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_L=\"-faux\"\n"
	if s := string(got.Bytes()); s != wantText {
		t.Errorf("Bytes = %q, want %q", s, wantText)
	}
	back, err := ParseFragment("bytes", got.Bytes())
	if err != nil || !reflect.DeepEqual(back, got) {
		t.Errorf("round trip = %v, %v; want %v", back, err, got)
	}
}

func TestCheck(t *testing.T) {
	dot := "#\n# Automatically generated file; DO NOT EDIT.\n#\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_S=\"-platform\"\n"
	tests := []struct {
		name string
		want Fragment
		bad  []string // substrings the error must name
	}{
		{"all took", Fragment{"CONFIG_A": "y", "CONFIG_B": "m", "CONFIG_C": "n", "CONFIG_ABSENT": "n", "CONFIG_S": `"-platform"`}, nil},
		{"y became m", Fragment{"CONFIG_B": "y"}, []string{"CONFIG_B asked y, got m"}},
		{"dropped", Fragment{"CONFIG_GONE": "y"}, []string{"CONFIG_GONE asked y, got n"}},
		{"should be off", Fragment{"CONFIG_A": "n"}, []string{"CONFIG_A asked n, got y"}},
		{"string", Fragment{"CONFIG_S": `"-faux"`}, []string{`CONFIG_S asked "-faux", got "-platform"`}},
		{"several", Fragment{"CONFIG_A": "m", "CONFIG_C": "y"}, []string{"2 option(s)", "CONFIG_A asked m", "CONFIG_C asked y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.want, []byte(dot))
			if tt.bad == nil {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("Check = %v, want an ErrConfig", err)
			}
			for _, s := range tt.bad {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func FuzzParseFragment(f *testing.F) {
	f.Add([]byte("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n"))
	f.Add([]byte("# comment\n\nCONFIG_=1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		frag, err := ParseFragment("fuzz", data)
		if err != nil {
			return
		}
		// What parses must survive a round trip through Bytes.
		back, err := ParseFragment("bytes", frag.Bytes())
		if err != nil {
			t.Fatalf("Bytes output does not parse: %v\n%s", err, frag.Bytes())
		}
		if !reflect.DeepEqual(back, frag) {
			t.Fatalf("round trip changed %v into %v", frag, back)
		}
		if err := Check(frag, frag.Bytes()); err != nil {
			t.Fatalf("a fragment does not satisfy itself: %v", err)
		}
	})
}

// The fragments are the contract's table (kernel-configs/README.md,
// "Modules and drivers"): check them here so a fragment edit that breaks
// it fails in milliseconds, not after a kernel build.
func TestEmbeddedFragments(t *testing.T) {
	choice := map[cell.Variant]string{
		cell.Platform: "PLATFORM", cell.SMCCCAux: "SMCCC_AUX",
		cell.SMCCCAuxNoLegacy: "SMCCC_AUX_NOLEGACY",
		cell.Virtual:          "VIRTUAL", cell.ModuleFaux: "MODULE_FAUX",
	}
	for _, vi := range cell.Variants {
		v := vi.Name
		if cell.FromRecipe(v) || cell.Prebuilt(v) {
			continue // built by BuildSeries from variants/, or not built (their own tests)
		}
		t.Run(string(v), func(t *testing.T) {
			in, err := readInputs(kernelconfigs.FS, v)
			if err != nil {
				t.Fatal(err)
			}
			r, err := in.recipe(v)
			if err != nil {
				t.Fatal(err)
			}
			base, err := fs.ReadFile(kernelconfigs.FS, "base.config")
			if err != nil {
				t.Fatal(err)
			}
			frag, _, err := seriesFragment(base, r)
			if err != nil {
				t.Fatal(err)
			}
			want := Fragment{
				"CONFIG_CCA_TESTBED":               "y",
				"CONFIG_CCA_TESTBED_" + choice[v]:  "y",
				"CONFIG_LOCALVERSION":              `"-` + string(v) + `"`,
				"CONFIG_MODULES":                   "y",
				"CONFIG_TSM_REPORTS":               "m",
				"CONFIG_AUXILIARY_BUS":             "y",
				"CONFIG_CONFIGFS_FS":               "y",
				"CONFIG_ARM_CCA_GUEST":             "n",
				"CONFIG_BLK_DEV_INITRD":            "n",
				"CONFIG_VIRTIO_BLK":                "y",
				"CONFIG_EXT4_FS":                   "y",
				"CONFIG_SERIAL_AMBA_PL011_CONSOLE": "y",
				"CONFIG_DEVTMPFS_MOUNT":            "y",
			}
			mods := map[string]bool{"CONFIG_CCA_HOST_TSM": false, "CONFIG_CCA_GUEST_TSM": false, "CONFIG_CCA_FAUX": false}
			switch v {
			case cell.Virtual:
			case cell.ModuleFaux:
				mods["CONFIG_CCA_FAUX"] = true
			default:
				mods["CONFIG_CCA_HOST_TSM"], mods["CONFIG_CCA_GUEST_TSM"] = true, true
			}
			for k, on := range mods {
				if on {
					want[k] = "m"
				} else if _, ok := frag[k]; ok {
					t.Errorf("%s sets %s=%s; the contract does not build it for %s", v, k, frag[k], v)
				}
			}
			for k, w := range want {
				if frag[k] != w {
					t.Errorf("merged fragment has %s=%q, want %q", k, frag[k], w)
				}
			}
			for k := range frag {
				if strings.HasPrefix(k, "CONFIG_CCA_TESTBED_") && k != "CONFIG_CCA_TESTBED_"+choice[v] {
					t.Errorf("%s also sets choice %s", v, k)
				}
			}
		})
	}
}

// TestGlueRecipe: a glue variant is the hook patches in name order, then
// one patch creating src/, which applies to a tree and reverts cleanly, and
// is the only patch an edit of the glue's code changes.
func TestGlueRecipe(t *testing.T) {
	hook := "--- a/x/Kconfig\n+++ b/x/Kconfig\n@@ -1 +1,2 @@\n a\n+b\n"
	fsys := fstest.MapFS{
		"base.config":        {Data: []byte("CONFIG_A=y\n")},
		"faux.config":        {Data: []byte("CONFIG_B=y\n")},
		"patches/0003.patch": {Data: []byte(hook)},
		"patches/0001.patch": {Data: []byte(hook)},
		"patches/README":     {Data: []byte("not a patch")},
		"src/glue.c":         {Data: []byte("int x;\nint y;\n")},
		"src/Kconfig":        {Data: []byte("config B\n\tbool")}, // no final newline
	}
	in, err := readInputs(fsys, cell.Faux)
	if err != nil {
		t.Fatal(err)
	}
	r, err := in.recipe(cell.Faux)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range r.Patches {
		names = append(names, p.Name)
	}
	if want := []string{"patches/0001.patch", "patches/0003.patch", "src/"}; !slices.Equal(names, want) {
		t.Fatalf("patches %q, want %q", names, want)
	}
	if r.Name != "faux" || string(r.Fragment) != "CONFIG_B=y\n" {
		t.Errorf("recipe %q with fragment %q", r.Name, r.Fragment)
	}

	dir := t.TempDir()
	src := &r.Patches[2]
	if err := series.Apply(context.Background(), dir, src, 3, false); err != nil {
		t.Fatal(err)
	}
	for n, f := range fsys {
		rest, ok := strings.CutPrefix(n, "src/")
		if !ok {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, srcDir, rest))
		if err != nil || string(got) != string(f.Data) {
			t.Errorf("%s applied as %q (%v), want %q", rest, got, err, f.Data)
		}
	}
	if err := series.Apply(context.Background(), dir, src, 3, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, srcDir, "glue.c")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("reverting left glue.c behind: %v", err)
	}

	in.src["glue.c"] = []byte("int z;\n")
	edited, err := in.recipe(cell.Faux)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Patches {
		if moved := edited.Patches[i].ID() != r.Patches[i].ID(); moved != (i == 2) {
			t.Errorf("editing glue.c: patch %s moved = %v", r.Patches[i].Name, moved)
		}
	}
}

func TestBuildEnv(t *testing.T) {
	got := buildEnv([]string{"PATH=/root/.cargo/bin:/bin", "MAKEFLAGS=-j8 --jobserver-auth=3,4", "ARCH=x86", "HOME=/root"})
	joined := "\n" + strings.Join(got, "\n") + "\n"
	for _, must := range []string{"\nPATH=" + buildPath + "\n", "\nHOME=/root\n", "\nLC_ALL=C\n"} {
		if !strings.Contains(joined, must) {
			t.Errorf("env lacks %q: %v", strings.TrimSpace(must), got)
		}
	}
	for _, mustNot := range []string{"MAKEFLAGS=", "ARCH=", "PATH=/root"} {
		if strings.Contains(joined, "\n"+mustNot) {
			t.Errorf("env keeps %s: %v", mustNot, got)
		}
	}
}

func TestErrorLines(t *testing.T) {
	var e errorLines
	log := "  CC      a.o\nfoo.c:3:1: error: expected ';'\n  CC      b.o\nmake[2]: *** [x] Error 1\n" +
		"ERROR: modpost: \"tsm_register\" [cca_host_tsm.ko] undefined!\npartial error: no newline"
	// Written in odd-sized chunks, as a pipe delivers it.
	for i := 0; i < len(log); i += 7 {
		e.Write([]byte(log[i:min(i+7, len(log))]))
	}
	want := "; errors: foo.c:3:1: error: expected ';' | ERROR: modpost: \"tsm_register\" [cca_host_tsm.ko] undefined!"
	if got := e.summary(); got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
	var none errorLines
	none.Write([]byte("  CC a.o\n"))
	if none.summary() != "" {
		t.Errorf("summary of a clean log = %q", none.summary())
	}
}

// TestMakerCompilerCache: with a compiler cache, make compiles through
// ccache into that directory; without one, kbuild's own CC stands.
func TestMakerCompilerCache(t *testing.T) {
	for _, dir := range []string{"", "/cache/kbuild/ccache"} {
		m := &maker{tree: "/t", obj: "/o", cross: "aarch64-linux-gnu-", ccache: dir}
		argv, env := m.command([]string{"Image"})
		cc := slices.Contains(argv, "CC=ccache aarch64-linux-gnu-gcc")
		ccdir := slices.Contains(env, "CCACHE_DIR="+dir)
		if want := dir != ""; cc != want || ccdir != want {
			t.Errorf("ccache %q: CC through ccache %v, CCACHE_DIR set %v; want %v", dir, cc, ccdir, want)
		}
		if argv[len(argv)-1] != "Image" {
			t.Errorf("ccache %q: argv %q does not end with the target", dir, argv)
		}
	}
}
