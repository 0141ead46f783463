package images

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMirrorFrom(t *testing.T) {
	td := filepath.Join("testdata", "sources")
	tests := []struct {
		name    string
		files   []string
		want    string
		wantErr error
	}{
		{"deb822 skips security, disabled and deb-src", []string{"deb822.sources"}, "https://mirror.example/pub/debian", nil},
		{"one-line with options", []string{"oneline.list"}, "http://mirror.example/debian", nil},
		{"first usable file wins", []string{"none.sources", "missing.list", "oneline.list", "deb822.sources"}, "http://mirror.example/debian", nil},
		{"nothing usable", []string{"none.sources", "empty.list", "missing.list"}, "", ErrNoMirror},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []string
			for _, f := range tt.files {
				files = append(files, filepath.Join(td, f))
			}
			got, err := mirrorFrom(files)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("mirror = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMirrorReadsHostLayout(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("testdata", "sources", "deb822.sources"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "debian.sources"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	old := hostSources
	t.Cleanup(func() { hostSources = old })
	hostSources.dir, hostSources.list = dir, filepath.Join(dir, "absent")
	got, err := Mirror()
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://mirror.example/pub/debian"; got != want {
		t.Errorf("Mirror() = %q, want %q", got, want)
	}
}

// The host this runs on must have a usable mirror, or no rootfs can be built.
func TestMirrorOnThisHost(t *testing.T) {
	got, err := Mirror()
	if err != nil {
		t.Fatalf("%v: scripts/setup-host expects the same", err)
	}
	if !isDebianArchive(got) || strings.HasSuffix(got, "/") {
		t.Errorf("Mirror() = %q, want an http(s) .../debian URL without a trailing slash", got)
	}
}

func TestParseSources(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		deb822 bool
		want   []string
	}{
		{"one-line", "deb http://a/debian x main\ndeb  [trusted=yes]  http://b/debian y\n", false, []string{"http://a/debian", "http://b/debian"}},
		{"options only", "deb [arch=amd64\n", false, nil},
		{"deb822 folded", "Types: deb\nURIs: http://a/debian\n  http://b/debian\n", true, []string{"http://a/debian", "http://b/debian"}},
		{"deb822 case", "types: deb\nuris: http://a/debian\nenabled: No\n\nTYPES: deb\nURIS: http://c/debian\n", true, []string{"http://c/debian"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseSources([]byte(tt.in), tt.deb822)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("ParseSources = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseSources(f *testing.F) {
	for _, n := range []string{"deb822.sources", "none.sources", "oneline.list"} {
		b, err := os.ReadFile(filepath.Join("testdata", "sources", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, strings.HasSuffix(n, ".sources"))
	}
	f.Fuzz(func(t *testing.T, b []byte, deb822 bool) {
		for _, u := range ParseSources(b, deb822) {
			if u == "" || strings.ContainsAny(u, " \t\n") {
				t.Errorf("URI %q is empty or holds white space", u)
			}
		}
	})
}
