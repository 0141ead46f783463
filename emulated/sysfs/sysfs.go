// Package sysfs is an in-memory tree shaped like /sys: directories, small
// attribute files and real symlinks, served as an fs.FS that also
// implements fs.ReadLinkFS, fs.ReadDirFS and fs.StatFS. Open and Stat
// follow symlinks the way os.DirFS does on a real /sys, so code written for
// a guest's /sys (snapshot.Take) reads the emulated tree unchanged.
//
// Tests: go test ./emulated/sysfs
package sysfs

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// maxLinks bounds symlink resolution, as the kernel's ELOOP limit does.
const maxLinks = 40

type node struct {
	mode     fs.FileMode // fs.ModeDir, fs.ModeSymlink or 0
	data     []byte      // file contents or link target
	children map[string]*node
}

// Tree is a mutable in-memory tree. Its zero value is not usable; use New.
// A Tree is not safe for concurrent mutation; reads may run concurrently
// once it is built.
type Tree struct{ root *node }

// New returns an empty tree holding only its root directory.
func New() *Tree { return &Tree{root: &node{mode: fs.ModeDir, children: map[string]*node{}}} }

var (
	_ fs.ReadLinkFS = (*Tree)(nil)
	_ fs.ReadDirFS  = (*Tree)(nil)
	_ fs.StatFS     = (*Tree)(nil)
)

// Mkdir creates dir and its parents (like mkdir -p).
func (t *Tree) Mkdir(dir string) error {
	_, err := t.mkdirAll(dir)
	return err
}

func (t *Tree) mkdirAll(dir string) (*node, error) {
	if !fs.ValidPath(dir) {
		return nil, &fs.PathError{Op: "mkdir", Path: dir, Err: fs.ErrInvalid}
	}
	n := t.root
	if dir == "." {
		return n, nil
	}
	for _, name := range strings.Split(dir, "/") {
		c, ok := n.children[name]
		if !ok {
			c = &node{mode: fs.ModeDir, children: map[string]*node{}}
			n.children[name] = c
		}
		if c.mode != fs.ModeDir {
			return nil, &fs.PathError{Op: "mkdir", Path: dir, Err: fs.ErrExist}
		}
		n = c
	}
	return n, nil
}

func (t *Tree) put(op, p string, n *node) error {
	if !fs.ValidPath(p) || p == "." {
		return &fs.PathError{Op: op, Path: p, Err: fs.ErrInvalid}
	}
	dir, err := t.mkdirAll(path.Dir(p))
	if err != nil {
		return err
	}
	if _, ok := dir.children[path.Base(p)]; ok {
		return &fs.PathError{Op: op, Path: p, Err: fs.ErrExist}
	}
	dir.children[path.Base(p)] = n
	return nil
}

// WriteFile creates the attribute file p (and its parents).
func (t *Tree) WriteFile(p, content string) error {
	return t.put("write", p, &node{data: []byte(content)})
}

// Symlink creates p pointing at target, a path relative to p's directory
// as sysfs writes them ("../../bus/platform").
func (t *Tree) Symlink(target, p string) error {
	return t.put("symlink", p, &node{mode: fs.ModeSymlink, data: []byte(target)})
}

// Remove deletes p and everything under it.
func (t *Tree) Remove(p string) error {
	dir, _, err := t.lookup(path.Dir(p), true)
	if err != nil {
		return err
	}
	if _, ok := dir.children[path.Base(p)]; !ok {
		return &fs.PathError{Op: "remove", Path: p, Err: fs.ErrNotExist}
	}
	delete(dir.children, path.Base(p))
	return nil
}

// lookup finds p; follow says whether a final symlink is followed.
// Intermediate symlinks are always followed. It returns the node and its
// resolved path.
func (t *Tree) lookup(p string, follow bool) (*node, string, error) {
	if !fs.ValidPath(p) {
		return nil, "", fs.ErrInvalid
	}
	hops := 0
	var walk func(p string, follow bool) (*node, string, error)
	walk = func(p string, follow bool) (*node, string, error) {
		n, cur := t.root, "."
		if p == "." {
			return n, cur, nil
		}
		parts := strings.Split(p, "/")
		for i, name := range parts {
			if n.mode != fs.ModeDir {
				return nil, "", fs.ErrNotExist
			}
			c, ok := n.children[name]
			if !ok {
				return nil, "", fs.ErrNotExist
			}
			next := path.Join(cur, name)
			last := i == len(parts)-1
			if c.mode == fs.ModeSymlink && (!last || follow) {
				if hops++; hops > maxLinks {
					return nil, "", errors.New("too many levels of symbolic links")
				}
				target := path.Join(cur, string(c.data))
				if strings.HasPrefix(target, "../") || target == ".." {
					return nil, "", fs.ErrNotExist // escapes the tree
				}
				rn, rp, err := walk(target, true)
				if err != nil {
					return nil, "", err
				}
				c, next = rn, rp
			}
			n, cur = c, next
		}
		return n, cur, nil
	}
	return walk(p, follow)
}

func (t *Tree) get(op, p string, follow bool) (*node, error) {
	n, _, err := t.lookup(p, follow)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: p, Err: err}
	}
	return n, nil
}

// Open implements fs.FS, following symlinks.
func (t *Tree) Open(name string) (fs.File, error) {
	n, err := t.get("open", name, true)
	if err != nil {
		return nil, err
	}
	f := &file{info: info{name: path.Base(name), n: n}}
	if n.mode == fs.ModeDir {
		f.entries = entries(n)
	} else {
		f.r = strings.NewReader(string(n.data))
	}
	return f, nil
}

// ReadDir implements fs.ReadDirFS: entries sorted by name, symlinks
// reported as symlinks (not followed), as os.ReadDir does.
func (t *Tree) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := t.get("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if n.mode != fs.ModeDir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return entries(n), nil
}

// ReadLink implements fs.ReadLinkFS.
func (t *Tree) ReadLink(name string) (string, error) {
	n, err := t.get("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.mode != fs.ModeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return string(n.data), nil
}

// Stat implements fs.StatFS, following symlinks.
func (t *Tree) Stat(name string) (fs.FileInfo, error) {
	n, err := t.get("stat", name, true)
	if err != nil {
		return nil, err
	}
	return info{name: path.Base(name), n: n}, nil
}

// Lstat implements fs.ReadLinkFS.
func (t *Tree) Lstat(name string) (fs.FileInfo, error) {
	n, err := t.get("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return info{name: path.Base(name), n: n}, nil
}

func entries(n *node) []fs.DirEntry {
	out := make([]fs.DirEntry, 0, len(n.children))
	for name, c := range n.children {
		out = append(out, fs.FileInfoToDirEntry(info{name: name, n: c}))
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out
}

type info struct {
	name string
	n    *node
}

func (i info) Name() string       { return i.name }
func (i info) Size() int64        { return int64(len(i.n.data)) }
func (i info) Mode() fs.FileMode  { return i.n.mode | modePerm(i.n.mode) }
func (i info) ModTime() time.Time { return time.Time{} }
func (i info) IsDir() bool        { return i.n.mode == fs.ModeDir }
func (i info) Sys() any           { return nil }

func modePerm(m fs.FileMode) fs.FileMode {
	switch m {
	case fs.ModeDir, fs.ModeSymlink:
		return 0o777 &^ 0o022
	}
	return 0o444
}

type file struct {
	info
	r       *strings.Reader
	entries []fs.DirEntry
	off     int
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *file) Close() error               { return nil }

func (f *file) Read(b []byte) (int, error) {
	if f.r == nil {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: errors.New("is a directory")}
	}
	return f.r.Read(b)
}

// ReadDir implements fs.ReadDirFile.
func (f *file) ReadDir(n int) ([]fs.DirEntry, error) {
	if f.r != nil {
		return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: errors.New("not a directory")}
	}
	rest := f.entries[f.off:]
	if n <= 0 {
		f.off = len(f.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	f.off += len(rest)
	return rest, nil
}

// Graft makes sub's tree appear at p (a bind mount): both trees share the
// nodes, so a guest root can hold a sysfs tree at "sys".
func (t *Tree) Graft(p string, sub *Tree) error {
	return t.put("graft", p, sub.root)
}
