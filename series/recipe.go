package series

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"cca-testbed/cell"
)

// RecipeFields is a parsed recipe file: "key: value" lines, "#" comments.
//
//	name:        the variant name (a-z 0-9 . _ -)
//	description: one line for `testbed variants` and the report
//	base:        a kernel tree to apply to (default: linux-source-7.3)
//	series:      the patches: a directory, an mbox, or PATH:A..B
//	             (relative paths are relative to the recipe's directory;
//	             default: the recipe's directory itself)
//	config:      the config fragment (default: kernel.config if present)
//	udev:        a udev rule file, installed in /etc/udev/rules.d
//	unit:        a systemd unit file, installed in /etc/systemd/system
//	userspace:   a directory laid out as the guest's root whose files are
//	             installed (default: userspace/ beside the recipe, if
//	             present); see CheckGuestPath for where files may go
//	da-check:    how the host side decides Device Assignment: reg0-bit42
//	             (RMI feature register 0 bit 42, the RFC's check),
//	             reg2-bit0 (RMM 2.0's register 2 bit 0) or none (no host
//	             side); shown by `testbed variants` and the report
//	who, version, date, message-id, commit: provenance
//
// udev and unit may repeat; every other key appears at most once.
type RecipeFields map[string][]string

var recipeKeys = []string{"name", "description", "base", "series", "config", "udev", "unit", "userspace", "da-check",
	"who", "version", "date", "message-id", "commit"}

// ParseRecipe reads a recipe file.
func ParseRecipe(data []byte) (RecipeFields, error) {
	if len(data) > 64<<10 {
		return nil, fmt.Errorf("%w: recipe larger than 64 KiB", ErrFormat)
	}
	f := RecipeFields{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok || !slices.Contains(recipeKeys, k) {
			return nil, fmt.Errorf("%w: recipe line %d: %q: want KEY: VALUE with KEY one of %s", ErrFormat, i+1, clip(line), strings.Join(recipeKeys, ", "))
		}
		if v == "" {
			return nil, fmt.Errorf("%w: recipe line %d: %s has no value", ErrFormat, i+1, k)
		}
		if len(f[k]) > 0 && k != "udev" && k != "unit" {
			return nil, fmt.Errorf("%w: recipe line %d: %s given twice", ErrFormat, i+1, k)
		}
		if k == "da-check" {
			if _, err := cell.ParseDACheck(v); err != nil {
				return nil, fmt.Errorf("%w: recipe line %d: da-check %q: want one of %s", ErrFormat, i+1, clip(v), cell.DACheckNames())
			}
		}
		f[k] = append(f[k], v)
	}
	return f, nil
}

func (f RecipeFields) get(k string) string {
	if v := f[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func readRecipeDir(ctx context.Context, dir string) (*Recipe, error) {
	data, err := readBounded(filepath.Join(dir, RecipeFile), 64<<10)
	if err != nil {
		return nil, err
	}
	f, err := ParseRecipe(data)
	if err != nil {
		return nil, err
	}
	rel := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	var r *Recipe
	switch s := f.get("series"); {
	case s == "" || s == ".":
		r, err = readSeriesDir(dir, true)
	default:
		if m := gitRangeRE.FindStringSubmatch(s); m != nil {
			r, err = read(ctx, rel(m[1])+":"+m[2])
		} else {
			r, err = read(ctx, rel(s))
		}
	}
	if err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(dir)
	r.Name = nameFrom(filepath.Base(abs))
	if n := f.get("name"); n != "" {
		r.Name = n
	}
	r.Description = f.get("description")
	r.DACheck = cell.DACheck(f.get("da-check")) // checked by ParseRecipe
	if b := f.get("base"); b != "" {
		r.Base = rel(b)
		if st, err := os.Stat(filepath.Join(r.Base, "Makefile")); err != nil || !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: base %s is not a kernel tree (no Makefile)", ErrFormat, r.Base)
		}
	}
	frag := f.get("config")
	if frag == "" {
		frag = FragmentFile
		r.Fragment, err = readOptional(rel(frag))
	} else {
		r.Fragment, err = readBounded(rel(frag), 1<<20)
	}
	if err != nil {
		return nil, err
	}
	// udev: and unit: name single files; userspace: (or a userspace/
	// directory beside the recipe) a tree laid out as the guest's root.
	for _, k := range []struct{ key, dir string }{{"udev", "etc/udev/rules.d"}, {"unit", "etc/systemd/system"}} {
		for _, p := range f[k.key] {
			gp := k.dir + "/" + filepath.Base(p)
			if err := CheckGuestPath(gp); err != nil {
				return nil, fmt.Errorf("%w: %s file %s: %v", ErrFormat, k.key, p, err)
			}
			data, err := readBounded(rel(p), MaxUserspaceFile)
			if err != nil {
				return nil, err
			}
			if err := addUserspace(r, UserspaceFile{GuestPath: "/" + gp, Data: data}); err != nil {
				return nil, err
			}
		}
	}
	if u := f.get("userspace"); u != "" || isDir(filepath.Join(dir, UserspaceDir)) {
		if u == "" {
			u = UserspaceDir
		}
		files, err := readUserspaceTree(rel(u))
		if err != nil {
			return nil, err
		}
		if err := addUserspace(r, files...); err != nil {
			return nil, err
		}
	}
	pv := &r.Provenance
	for k, dst := range map[string]*string{"who": &pv.Who, "version": &pv.Version, "date": &pv.Date, "message-id": &pv.MessageID, "commit": &pv.Commit} {
		if v := f.get(k); v != "" {
			*dst = v
		}
	}
	return finish(r)
}

func validFileName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._@", c)) {
			return false
		}
	}
	return s != "" && s[0] != '.'
}
