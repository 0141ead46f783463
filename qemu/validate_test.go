package qemu

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeImage is a header-only arm64 Image: enough for CheckKernel, and for
// QEMU to load it (the tests never let it run).
func fakeImage() []byte {
	b := make([]byte, 4096)
	copy(b[imageMagicOffset:], imageMagic)
	return b
}

// fakeFlash is a synthetic flash.bin: a non-blank "BL1" at 0 and a FIP
// ToC header at 0x40000.
func fakeFlash(size int, name uint32) []byte {
	b := make([]byte, size)
	copy(b, "\x00\x00\x00\x14not really bl1..")
	if size >= FIPOffset+fipHeaderSize {
		binary.LittleEndian.PutUint32(b[FIPOffset:], name)
		binary.LittleEndian.PutUint32(b[FIPOffset+4:], 0x12345678)
	}
	return b
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckFirmware(t *testing.T) {
	blankBL1 := fakeFlash(FIPOffset+4096, FIPHeaderName)
	copy(blankBL1, make([]byte, 16))
	tests := []struct {
		name string
		path func(t *testing.T) string
		msg  string // "" means valid
	}{
		{"good", func(t *testing.T) string { return writeFile(t, "flash.bin", fakeFlash(FIPOffset+4096, FIPHeaderName)) }, ""},
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "flash.bin") }, "no such file"},
		{"directory", func(t *testing.T) string { return t.TempDir() }, "not a regular file"},
		{"too small", func(t *testing.T) string { return writeFile(t, "flash.bin", fakeFlash(4096, 0)) }, "too small to hold a FIP at 0x40000"},
		{"too large", func(t *testing.T) string { return writeFile(t, "flash.bin", fakeFlash(flashMax+1, FIPHeaderName)) }, "larger than the virt machine's 64 MiB flash"},
		{"bad magic", func(t *testing.T) string { return writeFile(t, "flash.bin", fakeFlash(FIPOffset+4096, 0xAA640002)) }, "has 0xAA640002 at 0x40000 where the FIP ToC name 0xAA640001 belongs"},
		{"big-endian magic", func(t *testing.T) string { return writeFile(t, "flash.bin", fakeFlash(FIPOffset+4096, 0x0100_64AA)) }, "has 0x010064AA"},
		{"blank bl1", func(t *testing.T) string { return writeFile(t, "flash.bin", blankBL1) }, "no BL1 at offset 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckFirmware(tc.path(t))
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("got %v, want a valid image", err)
				}
				return
			}
			if !errors.Is(err, ErrFirmware) {
				t.Fatalf("got %v, want ErrFirmware", err)
			}
			for _, want := range []string{tc.msg, "BL1 at offset 0", "0xAA640001", "PLAT=qemu ENABLE_RME=1", "qemu_virt"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message lacks %q: %v", want, err)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message is not one line: %q", err)
			}
		})
	}
}

func TestCheckKernel(t *testing.T) {
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	zboot := make([]byte, 128)
	copy(zboot, "MZ\x00\x00zimg")
	tests := []struct {
		name string
		path func(t *testing.T) string
		msg  string
	}{
		{"image", func(t *testing.T) string { return writeFile(t, "Image", fakeImage()) }, ""},
		{"gzip image", func(t *testing.T) string { return writeFile(t, "Image.gz", gz(fakeImage())) }, ""},
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "Image") }, "no such file"},
		{"directory", func(t *testing.T) string { return t.TempDir() }, "not a regular file"},
		{"empty", func(t *testing.T) string { return writeFile(t, "Image", nil) }, "is 0 bytes, shorter than the 64-byte"},
		{"elf", func(t *testing.T) string {
			return writeFile(t, "vmlinux", append([]byte("\x7fELF"), make([]byte, 100)...))
		}, "ELF vmlinux"},
		{"zboot", func(t *testing.T) string { return writeFile(t, "vmlinuz", zboot) }, "EFI zboot"},
		{"x86 bzImage", func(t *testing.T) string { return writeFile(t, "bzImage", make([]byte, 512)) }, `want magic "ARM\x64" at offset 56`},
		{"bad gzip", func(t *testing.T) string { return writeFile(t, "Image.gz", []byte{0x1f, 0x8b, 1, 2}) }, "gzip-compressed but is not"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckKernel(tc.path(t))
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("got %v, want a valid kernel", err)
				}
				return
			}
			if !errors.Is(err, ErrKernel) {
				t.Fatalf("got %v, want ErrKernel", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %q, want it to say %q", err, tc.msg)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	kernel := writeFile(t, "Image", fakeImage())
	raw := writeFile(t, "disk.img", make([]byte, 1<<16))
	qcow := writeFile(t, "disk.qcow2", append([]byte(qcow2Magic), make([]byte, 100)...))
	flash := writeFile(t, "flash.bin", fakeFlash(FIPOffset+4096, FIPHeaderName))
	tests := []struct {
		name string
		cfg  Config
		is   error
		msg  string
	}{
		{"ok", Config{Kernel: kernel, Disks: []Disk{{Path: qcow, Format: "qcow2"}, {Path: raw, ReadOnly: true}}}, nil, ""},
		{"ok rme", Config{Profile: ProfileRME, Kernel: kernel, Firmware: flash}, nil, ""},
		{"bad kernel", Config{Kernel: raw}, ErrKernel, "not an arm64 Image"},
		{"missing disk", Config{Kernel: kernel, Disks: []Disk{{Path: raw + ".nope"}}}, ErrDisk, "no such file"},
		{"qcow2 said raw", Config{Kernel: kernel, Disks: []Disk{{Path: qcow}}}, ErrDisk, "Format says raw"},
		{"raw said qcow2", Config{Kernel: kernel, Disks: []Disk{{Path: raw, Format: "qcow2"}}}, ErrDisk, "is not a qcow2 image"},
		{"rme bad firmware", Config{Profile: ProfileRME, Kernel: kernel, Firmware: raw}, ErrFirmware, "too small"},
		{"rme no firmware", Config{Profile: ProfileRME, Kernel: kernel}, ErrFirmware, "needs Firmware"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.cfg)
			if tc.is == nil {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v saying %q", err, tc.is, tc.msg)
			}
		})
	}
}

func FuzzImageHeader(f *testing.F) {
	f.Add(fakeImage()[:64])
	f.Add([]byte("\x7fELF"))
	f.Add([]byte("MZ\x00\x00zimg"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := imageHeader(b)
		valid := len(b) >= 64 && string(b[56:60]) == imageMagic && !bytes.HasPrefix(b, []byte("\x7fELF")) &&
			!(b[0] == 'M' && b[1] == 'Z' && string(b[4:8]) == "zimg")
		if (err == nil) != valid {
			t.Errorf("imageHeader(%q) = %v, valid=%v", b, err, valid)
		}
	})
}

func FuzzFlashImage(f *testing.F) {
	f.Add(fakeFlash(FIPOffset+16, FIPHeaderName), int64(0))
	f.Add([]byte{}, int64(0))
	f.Add(fakeFlash(100, 0), int64(-5))
	f.Fuzz(func(t *testing.T, b []byte, delta int64) {
		// The size claimed may disagree with the bytes (a file that
		// shrinks under us): it must error, never panic.
		size := int64(len(b)) + delta%8
		err := flashImage(bytes.NewReader(b), size)
		if err == nil && (len(b) < FIPOffset+fipHeaderSize || binary.LittleEndian.Uint32(b[FIPOffset:]) != FIPHeaderName) {
			t.Errorf("accepted an image without a FIP header (len %d)", len(b))
		}
	})
}
