// Package series reads a kernel variant as a recipe: a base kernel source,
// an ordered patch series, a config fragment and optionally a userspace
// part, with the provenance of each patch (who, which version, date,
// message-id or commit). A series comes as a quilt directory, an mbox such
// as `b4 am` writes, a `git format-patch` directory, or a commit range of a
// local git tree (README.md, "Bring your own series"). Check applies a
// series to a scratch copy of the files it touches, so a series that does
// not apply is refused, naming the patch and the hunk, before any shared
// tree is touched; images/kernel builds what applies.
//
// Every reader bounds what it reads (MaxFile, MaxPatches, MaxTotal).
//
// Tests: go test ./series (parsers, and Check against the unpacked
// linux-source-7.3 of scripts/setup-host); fuzz targets FuzzParseMbox,
// FuzzParseDiff, FuzzParseRecipe and FuzzParseQuiltSeries.
package series

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"cca-testbed/cell"
)

// Bounds on what a series may hold. A real series is a few dozen patches
// of some kilobytes; these leave a wide margin and keep a wrong path (a
// kernel image, a whole mail archive) from being read into memory.
const (
	MaxFile    = 8 << 20  // one patch file, recipe, config fragment or mbox
	MaxTotal   = 32 << 20 // all patches of one series together
	MaxPatches = 1000
)

// ErrFormat is wrapped by every error about the content of a series or
// recipe (as opposed to a file that cannot be read).
var ErrFormat = errors.New("bad series")

// ErrApply is wrapped by ApplyError.
var ErrApply = errors.New("series does not apply")

// Patch is one patch of a series.
type Patch struct {
	Index     int    // 1-based position in the series
	Name      string // file name, or "message N" in an mbox
	Subject   string // without the "[PATCH v2 3/6]" tag
	Tag       string // the bracketed tag as posted ("PATCH v2 3/6"), if any
	Author    string // From:
	Date      string // Date:
	MessageID string // Message-ID: without <>
	Commit    string // the commit it came from (format-patch's "From <sha>" line)
	// Diff is the patch as patch(1) reads it: headers, message and diff.
	Diff  []byte
	Files []FileDiff
}

// ID is a short content hash of the patch's diff: what identifies an
// applied patch in a shared tree.
func (p *Patch) ID() string {
	h := sha256.Sum256(p.Diff)
	return hex.EncodeToString(h[:8])
}

// Label names the patch in messages: `3/6 "arm64: rsi: ..."`.
func (p *Patch) Label(total int) string {
	return fmt.Sprintf("%d/%d %q", p.Index, total, p.Subject)
}

// Provenance says where a recipe's code comes from.
type Provenance struct {
	Who       string // author(s)
	Version   string // "v7", a branch, a tag
	Date      string
	MessageID string
	Commit    string
	Source    string // what was read: a path, "PATH:A..B"
	Format    string // quilt, mbox, format-patch, git-range, none
}

// String is one line for `testbed variants` and the report.
func (p Provenance) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+" "+v)
		}
	}
	add("by", p.Who)
	add("version", p.Version)
	add("date", p.Date)
	add("message-id", p.MessageID)
	add("commit", p.Commit)
	add(p.Format, p.Source)
	return strings.Join(parts, "; ")
}

// UserspaceFile is a file installed in the guest for a variant: a udev
// rule, systemd unit, modules-load.d or modprobe.d file its position
// relies on (CheckGuestPath says where). It is in the guest before udev's
// coldplug: images/kernel ships it in the kernel's modules disk and the
// rootfs copies it into place before systemd-udevd starts.
type UserspaceFile struct {
	GuestPath string // absolute: "/etc/udev/rules.d/60-x.rules"
	Data      []byte
}

// Recipe is everything a variant's kernel and guest are made from.
type Recipe struct {
	Name        string // the variant name it runs under
	Description string
	// Base is the kernel tree the series applies to; "" means Debian's
	// linux-source-7.3 unpacked in the cache.
	Base       string
	Patches    []Patch
	Fragment   []byte // Kconfig fragment, applied after the project's base.config
	Userspace  []UserspaceFile
	Provenance Provenance
	// DACheck is the recipe's da-check: "" when it gives none.
	DACheck cell.DACheck
}

// Prefix is the recipe with only its first n patches (bisect's steps).
func (r *Recipe) Prefix(n int) *Recipe {
	c := *r
	c.Patches = r.Patches[:n]
	return &c
}

// Summary is one line: description, patch count, provenance.
func (r *Recipe) Summary() string {
	s := r.Description
	if s == "" && len(r.Patches) > 0 {
		s = r.Patches[len(r.Patches)-1].Subject
	}
	n := fmt.Sprintf("%d patches", len(r.Patches))
	switch len(r.Patches) {
	case 0:
		n = "no patches"
	case 1:
		n = "1 patch"
	}
	out := strings.TrimSpace(s + " (" + n + ")")
	if len(r.Userspace) > 0 {
		var names []string
		for _, u := range r.Userspace {
			names = append(names, u.GuestPath)
		}
		out += "; userspace part: " + strings.Join(names, ", ")
	}
	if p := r.Provenance.String(); p != "" {
		out += "; " + p
	}
	return out
}

// validName is what a variant name may be: it becomes part of file
// names, cache keys and CONFIG_LOCALVERSION.
func validName(s string) bool {
	if s == "" || len(s) > 40 || s[0] == '-' || s[0] == '.' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// nameFrom makes a variant name out of a path's last element.
func nameFrom(s string) string {
	s = strings.ToLower(s)
	for _, ext := range []string{".mbox", ".mbx", ".patches", ".series"} {
		s = strings.TrimSuffix(s, ext)
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
	}
	n := strings.Trim(b.String(), "-.")
	if len(n) > 40 {
		n = strings.Trim(n[:40], "-.")
	}
	if n == "" {
		n = "series"
	}
	return n
}
