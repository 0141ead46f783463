// Package input reads the files a user hands the testbed (snapshots,
// report.json, expectations, patch series) with a size bound: a file past
// the bound, a FIFO, a device, a socket or a directory is refused with an
// error naming the file, instead of filling memory or waiting forever for
// a writer that never comes.
//
// Tests: go test ./internal/input
package input

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"unicode/utf8"
)

// ErrTooLarge is wrapped when a file holds more than its bound.
var ErrTooLarge = errors.New("file too large")

// ErrNotRegular is wrapped when the name is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// Bounds for the kinds of file the CLI reads. Each is far above what the
// testbed writes (a snapshot is about 5 KiB, a 35-cell report.json about
// 400 KiB), and low enough that a wrong file fails at once.
const (
	MaxSnapshot     = 4 << 20
	MaxReport       = 64 << 20
	MaxExpectations = 1 << 20
)

// ReadFile returns the contents of the regular file name, or an error when
// it cannot be opened, is not a regular file (symbolic links to one are
// followed), or holds more than limit bytes. what names the kind of file in
// errors ("snapshot", "report"); every error names the file.
func ReadFile(name, what string, limit int64) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer before the type check below could refuse it. Regular files
	// ignore the flag.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, name, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s: %w (it is %s); name a file", what, name, ErrNotRegular, kind(st.Mode()))
	}
	if st.Size() > limit {
		return nil, tooLarge(name, what, limit)
	}
	// The file can grow after Stat: read one byte past the bound to tell.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, name, err)
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(name, what, limit)
	}
	return b, nil
}

func tooLarge(name, what string, limit int64) error {
	return fmt.Errorf("%s %s: %w: over the limit of %s; is it the right file?", what, name, ErrTooLarge, Size(limit))
}

// Size prints a byte count the way the limits are chosen: in KiB or MiB
// when exact.
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}

// Position turns a byte offset into data into "line L:C" (both counted from
// 1, the column in bytes), for errors about a place in a file.
func Position(data []byte, off int64) string {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := off - int64(bytes.LastIndexByte(before, '\n'))
	return fmt.Sprintf("line %d:%d", line, col)
}

// InvalidUTF8 returns the offset of the first byte of data that is not
// valid UTF-8, or -1.
func InvalidUTF8(data []byte) int64 {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return int64(i)
		}
		i += size
	}
	return -1
}
