package guest

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ErrRelativePath is returned when a Guest is given a path that is not
// absolute. Guest paths are always absolute ("/sys/class/tsm"): a relative
// one would depend on the remote shell's working directory.
var ErrRelativePath = errors.New("guest path is not absolute")

// cleanPath validates an absolute guest path and returns it cleaned. NUL
// cannot travel in a command line or a file name, so it is refused too.
func cleanPath(op, p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%s %q: %w: pass it from the root, like /sys/class/tsm", op, p, ErrRelativePath)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("%s %q: path contains a NUL byte", op, p)
	}
	return path.Clean(p), nil
}

// fsPath turns an absolute guest path into an fs.FS name ("/sys/x" →
// "sys/x", "/" → ".").
func fsPath(op, p string) (string, error) {
	c, err := cleanPath(op, p)
	if err != nil {
		return "", err
	}
	if c == "/" {
		return ".", nil
	}
	return c[1:], nil
}
