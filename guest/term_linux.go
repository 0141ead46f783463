package guest

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// terminalSize asks the kernel for r's window size when r is a terminal,
// so a remote pty starts with the right geometry; 24x80 otherwise.
func terminalSize(r io.Reader) (rows, cols int) {
	f, ok := r.(*os.File)
	if !ok {
		return 24, 80
	}
	var ws struct{ Row, Col, X, Y uint16 }
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws)))
	if errno != 0 || ws.Row == 0 || ws.Col == 0 {
		return 24, 80
	}
	return int(ws.Row), int(ws.Col)
}
