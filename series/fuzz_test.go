package series

import (
	"os"
	"testing"
)

func seed(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseMbox(f *testing.F) {
	seed(f, "testdata/bisect3.mbox", "testdata/fails-build.mbox")
	f.Add([]byte("Subject: [PATCH 1/1] x\n\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ParseMbox(b)
		if err != nil {
			return
		}
		for i, p := range ps {
			if p.Index != i+1 || len(p.Files) == 0 {
				t.Fatalf("patch %d: index %d, %d files", i, p.Index, len(p.Files))
			}
		}
	})
}

func FuzzParseDiff(f *testing.F) {
	seed(f, "testdata/applies/log-no-realm.patch", "testdata/applies/comment-initcall.patch")
	f.Fuzz(func(t *testing.T, b []byte) {
		files, err := ParseDiff(b)
		if err != nil {
			return
		}
		for _, fd := range files {
			for _, p := range []string{fd.Old, fd.New} {
				if len(p) > 0 && (p[0] == '/' || p == "..") {
					t.Fatalf("path %q escapes", p)
				}
			}
		}
	})
}

func FuzzParseRecipe(f *testing.F) {
	seed(f, "testdata/applies/recipe")
	f.Fuzz(func(t *testing.T, b []byte) {
		fields, err := ParseRecipe(b)
		if err != nil {
			return
		}
		for k, v := range fields {
			if len(v) > 1 && k != "udev" && k != "unit" {
				t.Fatalf("%s repeated", k)
			}
		}
	})
}

func FuzzParseQuiltSeries(f *testing.F) {
	seed(f, "testdata/applies/series")
	f.Fuzz(func(t *testing.T, b []byte) {
		names, err := ParseQuiltSeries(b)
		if err != nil {
			return
		}
		if len(names) > MaxPatches {
			t.Fatalf("%d names", len(names))
		}
	})
}
