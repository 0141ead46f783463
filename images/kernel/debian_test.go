package kernel

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// header is a 64-byte arm64 Image header with the given magic at 56.
func header(magic string) []byte {
	h := make([]byte, 64)
	copy(h[56:], magic)
	return h
}

func TestDecompressImage(t *testing.T) {
	img := append(header(imageMagic), bytes.Repeat([]byte{0xaa}, 4096)...)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(img)
	zw.Close()
	zboot := header("")
	copy(zboot, "MZ\x00\x00zimg")
	tests := []struct {
		name string
		in   []byte
		want []byte // nil: refused with ErrBuild
		msg  string
	}{
		{"raw Image as it is", img, img, ""},
		{"gzip decompressed", gz.Bytes(), img, ""},
		{"EFI zboot refused", zboot, nil, "EFI zboot"},
		{"not an Image", header("ELF!"), nil, "not an arm64 Image"},
		{"short", []byte("MZ"), nil, "not an arm64 Image"},
		{"bad gzip", []byte{0x1f, 0x8b, 0, 0}, nil, "ErrBuild"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "Image")
			if err := os.WriteFile(src, tt.in, 0o644); err != nil {
				t.Fatal(err)
			}
			err := DecompressImage(src, dst)
			if tt.want == nil {
				if !errors.Is(err, ErrBuild) || (tt.msg != "ErrBuild" && !strings.Contains(err.Error(), tt.msg)) {
					t.Fatalf("err = %v, want ErrBuild mentioning %q", err, tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dst)
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("Image differs from the expected %d bytes (got %d, %v)", len(tt.want), len(got), err)
			}
		})
	}
}

// TestDebianRecipe: the recipe installs every fetched .deb by path (one
// --include each, never split on commas), with initramfs-tools and
// backports' linux-base, and copies out /boot and /usr/lib/modules.
func TestDebianRecipe(t *testing.T) {
	txt := debianRecipeText([]string{"/x/linux-image-7.3.4+deb13-arm64_7.3.4-1~bpo13+1_arm64.deb", "/x/linux-modules-7.3.4+deb13-arm64_7.3.4-1~bpo13+1_arm64.deb"})
	for _, want := range []string{
		"'--include=DEBS/linux-image-7.3.4+deb13-arm64_7.3.4-1~bpo13+1_arm64.deb'",
		"'--include=DEBS/linux-modules-7.3.4+deb13-arm64_7.3.4-1~bpo13+1_arm64.deb'",
		"'--include=initramfs-tools,linux-base/trixie-backports'",
		"'--customize-hook=copy-out /boot /usr/lib/modules OUT'",
		"trixie - 'deb MIRROR trixie main' 'deb MIRROR trixie-backports main'",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("recipe lacks %s:\n%s", want, txt)
		}
	}
}
