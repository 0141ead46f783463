package series

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// UserspaceDir is a recipe's userspace part when its recipe names none:
// a tree laid out as the guest's root (userspace/etc/udev/rules.d/...).
const UserspaceDir = "userspace"

// Bounds on a userspace part: a position needs a rule or two, not a
// distribution.
const (
	MaxUserspaceFiles = 64
	MaxUserspaceFile  = 64 << 10
)

// guestDirs are where a userspace part may install, with the endings a
// file there must have. Only places udev, systemd and kmod read at boot:
// the part is installed before udev's coldplug (images: the modules
// disk's unit copies it into /etc before systemd-udevd starts), so a rule
// acts on the devices the kernel registered before userspace ran.
var guestDirs = []struct {
	dir  string
	exts []string
}{
	{"etc/udev/rules.d", []string{".rules"}},
	{"etc/systemd/system", []string{".service", ".socket", ".target", ".path", ".timer"}},
	{"etc/modules-load.d", []string{".conf"}},
	{"etc/modprobe.d", []string{".conf"}},
}

// GuestPlaces says where a userspace part may install, for messages and
// the README.
func GuestPlaces() string {
	var s []string
	for _, d := range guestDirs {
		s = append(s, d.dir+"/*{"+strings.Join(d.exts, ",")+"}")
	}
	return strings.Join(s, ", ")
}

// CheckGuestPath checks rel, a slash-separated path relative to the
// guest's root, as a place a userspace part may install a file: one of
// guestDirs, a plain file name with its ending, nothing absolute, no "..".
func CheckGuestPath(rel string) error {
	if rel == "" || path.IsAbs(rel) || strings.Contains(rel, "\\") {
		return fmt.Errorf("want a path relative to the guest's root")
	}
	for _, el := range strings.Split(rel, "/") {
		if el == ".." || el == "." || el == "" {
			return fmt.Errorf("%q is not allowed in a path", el)
		}
	}
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	for _, d := range guestDirs {
		if d.dir != dir {
			continue
		}
		if !validFileName(base) || !slices.ContainsFunc(d.exts, func(e string) bool { return strings.HasSuffix(base, e) && len(base) > len(e) }) {
			return fmt.Errorf("want a plain file name (a-z A-Z 0-9 - . _ @) ending in %s", strings.Join(d.exts, " or "))
		}
		return nil
	}
	return fmt.Errorf("a userspace part installs only to %s", GuestPlaces())
}

// guestDirPrefix reports whether rel (a directory of the tree) is one of
// guestDirs or leads to one.
func guestDirPrefix(rel string) bool {
	for _, d := range guestDirs {
		if d.dir == rel || strings.HasPrefix(d.dir, rel+"/") {
			return true
		}
	}
	return false
}

// readUserspaceTree reads a userspace part laid out as the guest's root.
// Every error names the file and says why in one line.
func readUserspaceTree(root string) ([]UserspaceFile, error) {
	var out []UserspaceFile
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		name := filepath.Join(filepath.Base(root), filepath.FromSlash(rel))
		switch {
		case d.IsDir():
			if !guestDirPrefix(rel) {
				return fmt.Errorf("%w: userspace %s: a userspace part installs only to %s", ErrFormat, name, GuestPlaces())
			}
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%w: userspace %s: not a regular file (links and devices are refused)", ErrFormat, name)
		}
		if err := CheckGuestPath(rel); err != nil {
			return fmt.Errorf("%w: userspace %s: %v", ErrFormat, name, err)
		}
		if len(out) >= MaxUserspaceFiles {
			return fmt.Errorf("%w: userspace %s: more than %d files", ErrFormat, filepath.Base(root), MaxUserspaceFiles)
		}
		data, err := readBounded(p, MaxUserspaceFile)
		if err != nil {
			return err
		}
		out = append(out, UserspaceFile{GuestPath: "/" + rel, Data: data})
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: userspace %s: %v", ErrFormat, root, err)
	}
	return out, err
}

// addUserspace appends files to r's userspace part, refusing a guest path
// given twice, and keeps the part sorted by guest path (a stable cache key
// and listing).
func addUserspace(r *Recipe, files ...UserspaceFile) error {
	for _, f := range files {
		if slices.ContainsFunc(r.Userspace, func(u UserspaceFile) bool { return u.GuestPath == f.GuestPath }) {
			return fmt.Errorf("%w: userspace file %s given twice", ErrFormat, f.GuestPath)
		}
		r.Userspace = append(r.Userspace, f)
	}
	if len(r.Userspace) > MaxUserspaceFiles {
		return fmt.Errorf("%w: userspace part: more than %d files", ErrFormat, MaxUserspaceFiles)
	}
	slices.SortFunc(r.Userspace, func(a, b UserspaceFile) int { return strings.Compare(a.GuestPath, b.GuestPath) })
	return nil
}

// isDir reports whether p is a directory (not following a final link is
// not needed: WalkDir refuses links inside).
func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
