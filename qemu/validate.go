package qemu

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// Firmware layout of TF-A's qemu platform: bl1.bin at offset 0 of
// flash.bin, fip.bin at 64 blocks of 4096 bytes, and the FIP's ToC header
// begins with TOC_HEADER_NAME (include/tools_share/firmware_image_package.h
// in TF-A), stored little-endian.
const (
	FIPOffset     = 64 * 4096 // 0x40000
	FIPHeaderName = 0xAA640001
	// fipHeaderSize is name (4) + serial number (4) + flags (8).
	fipHeaderSize = 16
	// flashMax is the virt machine's flash bank size: -bios loads into it.
	flashMax = 64 << 20
)

// firmwareWant says what the rme profile expects, for every ErrFirmware.
const firmwareWant = "want a TF-A flash.bin for QEMU with BL1 at offset 0 and a FIP at 0x40000 (64x4096) whose first 4 bytes are the ToC name 0xAA640001 (little-endian), at most 64 MiB; " +
	"build TF-RMM with -DRMM_CONFIG=qemu_virt_defcfg, then TF-A with PLAT=qemu ENABLE_RME=1 QEMU_USE_GIC_DRIVER=QEMU_GICV3 RMM=<rmm.img> BL33=<...> all fip, " +
	"and combine: dd if=bl1.bin of=flash.bin; dd if=fip.bin of=flash.bin seek=64 bs=4096 conv=notrunc"

// arm64 Image header (Documentation/arch/arm64/booting.rst): the magic
// "ARM\x64" sits at byte 56 of the 64-byte header.
const (
	imageMagicOffset = 56
	imageHeaderSize  = 64
	imageMagic       = "ARM\x64"
)

// Validate checks the files cfg names before QEMU is started: the kernel
// is an arm64 Image (ErrKernel), the rme firmware is a TF-A flash image
// (ErrFirmware), and each disk exists, can be opened as QEMU will open it
// and is in its stated format (ErrDisk). It reports the first problem.
func Validate(cfg Config) error {
	r, err := resolve(withDir(cfg))
	if err != nil {
		return err
	}
	if err := CheckKernel(r.Kernel); err != nil {
		return err
	}
	if r.Initrd != "" {
		f, err := openRegular(r.Initrd)
		if err != nil {
			return fmt.Errorf("%w: initrd: %v", ErrKernel, err)
		}
		f.Close()
	}
	switch {
	case r.prof.realm:
		if err := checkRealm(r.Firmware, r.RSITable); err != nil {
			return err
		}
	case r.prof.firmware:
		if err := CheckFirmware(r.Firmware); err != nil {
			return err
		}
	}
	for _, d := range r.Disks {
		if err := checkDisk(d); err != nil {
			return err
		}
	}
	return nil
}

// withDir lets Validate run before Start has chosen the run directory.
func withDir(cfg Config) Config {
	if cfg.Dir == "" {
		cfg.Dir = os.TempDir()
	}
	return cfg
}

// CheckKernel reports (wrapping ErrKernel) unless path is an arm64 Image,
// raw or gzip-compressed (QEMU's -kernel unpacks gzip itself).
func CheckKernel(path string) error {
	f, err := openRegular(path)
	if err != nil {
		return fmt.Errorf("%w: kernel: %v: set Kernel to an arm64 Image (arch/arm64/boot/Image)", ErrKernel, err)
	}
	defer f.Close()
	head := make([]byte, imageHeaderSize)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("%w: kernel %s: %v", ErrKernel, path, err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%w: kernel %s looks gzip-compressed but is not: %v", ErrKernel, path, err)
		}
		head = make([]byte, imageHeaderSize)
		n, _ := io.ReadFull(zr, head)
		head = head[:n]
	}
	if err := imageHeader(head); err != nil {
		return fmt.Errorf("%w: kernel %s %v", ErrKernel, path, err)
	}
	return nil
}

// imageHeader checks the first bytes of a (decompressed) kernel. The error
// text continues "kernel PATH ...".
func imageHeader(head []byte) error {
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		return fmt.Errorf("is an ELF vmlinux, not an Image: use arch/arm64/boot/Image")
	case len(head) < imageHeaderSize:
		return fmt.Errorf("is %d bytes, shorter than the 64-byte arm64 Image header: use arch/arm64/boot/Image", len(head))
	case len(head) >= 8 && head[0] == 'M' && head[1] == 'Z' && string(head[4:8]) == "zimg":
		return fmt.Errorf("is an EFI zboot image (vmlinuz.efi), which -kernel cannot boot without UEFI: use arch/arm64/boot/Image")
	case string(head[imageMagicOffset:imageMagicOffset+4]) != imageMagic:
		return fmt.Errorf("is not an arm64 Image: want magic \"ARM\\x64\" at offset 56, found %q: use arch/arm64/boot/Image", head[imageMagicOffset:imageMagicOffset+4])
	}
	return nil
}

// CheckFirmware reports (wrapping ErrFirmware) unless path is a TF-A
// flash image for QEMU's virt machine, saying what was expected and how to
// build one.
func CheckFirmware(path string) error {
	f, err := openRegular(path)
	if err != nil {
		return fmt.Errorf("%w: %v: %s", ErrFirmware, err, firmwareWant)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %v: %s", ErrFirmware, err, firmwareWant)
	}
	if err := flashImage(f, st.Size()); err != nil {
		return fmt.Errorf("%w: %s %v: %s", ErrFirmware, path, err, firmwareWant)
	}
	return nil
}

// flashImage checks the layout of a flash.bin of the given size. The
// error text continues "firmware PATH ...".
func flashImage(r io.ReaderAt, size int64) error {
	if size < FIPOffset+fipHeaderSize {
		return fmt.Errorf("is %d bytes, too small to hold a FIP at 0x%x", size, FIPOffset)
	}
	if size > flashMax {
		return fmt.Errorf("is %d bytes, larger than the virt machine's 64 MiB flash", size)
	}
	bl1 := make([]byte, 16)
	if _, err := r.ReadAt(bl1, 0); err != nil {
		return fmt.Errorf("cannot be read: %v", err)
	}
	if allBytes(bl1, 0x00) || allBytes(bl1, 0xff) {
		return fmt.Errorf("has no BL1 at offset 0 (the first 16 bytes are blank)")
	}
	hdr := make([]byte, fipHeaderSize)
	if _, err := r.ReadAt(hdr, FIPOffset); err != nil {
		return fmt.Errorf("cannot be read at 0x%x: %v", FIPOffset, err)
	}
	if name := binary.LittleEndian.Uint32(hdr); name != FIPHeaderName {
		return fmt.Errorf("has 0x%08X at 0x%x where the FIP ToC name 0x%08X belongs", name, FIPOffset, uint32(FIPHeaderName))
	}
	return nil
}

func allBytes(b []byte, v byte) bool {
	for _, c := range b {
		if c != v {
			return false
		}
	}
	return true
}

// qcow2Magic opens every qcow2 file ("QFI\xfb").
const qcow2Magic = "QFI\xfb"

// checkDisk opens the disk the way QEMU will (read-write unless ReadOnly)
// and compares its first bytes with the stated format.
func checkDisk(d Disk) error {
	st, err := os.Stat(d.Path)
	if err != nil {
		return fmt.Errorf("%w: %v: build the image first or fix Disks", ErrDisk, err)
	}
	if !st.Mode().IsRegular() && st.Mode()&os.ModeDevice == 0 {
		return fmt.Errorf("%w: %s is a %s, not a disk image file", ErrDisk, d.Path, st.Mode().Type())
	}
	flag := os.O_RDWR
	if d.ReadOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(d.Path, flag, 0)
	if err != nil {
		return fmt.Errorf("%w: %v (QEMU opens it %s)", ErrDisk, err, map[bool]string{true: "read-only", false: "read-write"}[d.ReadOnly])
	}
	defer f.Close()
	magic := make([]byte, 4)
	n, _ := io.ReadFull(f, magic)
	isQcow2 := n == 4 && string(magic) == qcow2Magic
	switch {
	case d.Format == "qcow2" && !isQcow2:
		return fmt.Errorf("%w: %s is not a qcow2 image (no QFI\\xfb magic): set Format to raw or convert it with qemu-img", ErrDisk, d.Path)
	case d.Format != "qcow2" && isQcow2:
		return fmt.Errorf("%w: %s is a qcow2 image but Format says raw: set Format to qcow2", ErrDisk, d.Path)
	}
	return nil
}

// openRegular opens path for reading and insists on a regular file.
func openRegular(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return f, nil
}

// checkRealm makes sure the realm firmware and its table are readable
// files; what is in them the firmware checks itself, and says so on the
// console.
func checkRealm(firmware, table string) error {
	for _, f := range []struct{ what, path string }{{"realm firmware", firmware}, {"RSI table", table}} {
		info, err := os.Stat(f.path)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrFirmware, f.what, err)
		}
		if !info.Mode().IsRegular() || info.Size() == 0 {
			return fmt.Errorf("%w: %s %s is not a non-empty file", ErrFirmware, f.what, f.path)
		}
	}
	return nil
}
