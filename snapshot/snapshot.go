// Package snapshot turns a sysfs-shaped tree into a deterministic, diffable
// document: one fact per line ("link class/tsm/tsm0 ../../devices/..."),
// sorted, so plain diff works and two snapshots compare field by field.
//
// The same Take runs on the emulated backend's tree and, inside a real guest,
// on os.DirFS("/sys") (cmd/sysfs-snapshot), so real and emulated snapshots
// come from one piece of code. Facts that do not live in sysfs (systemd's
// verdict, a unit's state) are added by the caller with Add.
//
// Tests: go test ./snapshot (golden-free; the emulated goldens live in
// ./emulated/testdata).
package snapshot

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Version is written in the header of every text snapshot. Version 2
// added the end line.
const Version = 2

// Kinds of fact. A fact's meaning is "kind path value".
const (
	KindAbsent    = "absent"    // a root directory that does not exist
	KindDir       = "dir"       // a plain directory (configfs, firmware)
	KindLink      = "link"      // a symlink; value is its raw target
	KindDevice    = "device"    // a device directory (it has a uevent file)
	KindUevent    = "uevent"    // one KEY=VALUE line of a device's uevent
	KindModalias  = "modalias"  // a device's modalias attribute
	KindDriver    = "driver"    // the driver bound to a device
	KindSubsystem = "subsystem" // the bus or class a device belongs to
	KindFile      = "file"      // a small attribute outside devices (firmware/cca/realm_guest)
	KindModule    = "module"    // a loaded module; value is its initstate
	KindCVM       = "cvm"       // a confidential-VM probe; path is the probe, value the verdict
	KindUnit      = "unit"      // a systemd unit's state
	// KindAnswer is one firmware call the kernel glue made; path is
	// AnswersParam/NAME(ARG), value its x0..x3 ("x0=0x1 x1=0x20000 ...").
	KindAnswer = "answer"
)

// Meta says where a snapshot came from. It is not compared by Diff.
type Meta struct {
	// RealFirmware names the real firmware build that answered
	// (cell.Firmware, "tf-rmm-0.9"), and RMMVersion is the line the RMM
	// printed about itself on the console ("Booting RMM v.0.9.0(release) ...").
	RealFirmware string `json:"real_firmware,omitempty"`
	RMMVersion   string `json:"rmm_version,omitempty"`

	Cell      string `json:"cell"`
	Backend   string `json:"backend"`             // emulated or qemu
	Conduit   string `json:"conduit,omitempty"`   // who answered firmware calls: emulated-rmi:<profile>, smc, none
	Userspace string `json:"userspace,omitempty"` // forky, trixie
	Kernel    string `json:"kernel,omitempty"`    // uname -r or the model's name
	// Firmware is the rmi profile that answered when a run overrode the
	// role's own (--firmware-profile), so the model can be asked the same.
	Firmware string `json:"firmware,omitempty"`
}

// Fact is one line of a snapshot.
type Fact struct {
	Kind  string `json:"kind"`
	Path  string `json:"path"`
	Value string `json:"value,omitempty"`
}

func (f Fact) String() string {
	if f.Value == "" {
		return f.Kind + " " + f.Path
	}
	return f.Kind + " " + f.Path + " " + f.Value
}

// Snapshot is a sorted set of facts plus where they came from.
type Snapshot struct {
	Meta  Meta   `json:"meta"`
	Facts []Fact `json:"facts"`
}

// Add inserts facts, keeping the set sorted and free of duplicates.
func (s *Snapshot) Add(facts ...Fact) {
	s.Facts = append(s.Facts, facts...)
	s.normalize()
}

func (s *Snapshot) normalize() {
	slices.SortFunc(s.Facts, compareFacts)
	s.Facts = slices.Compact(s.Facts)
}

func compareFacts(a, b Fact) int {
	return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)),
		cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Value, b.Value))
}

// kindRank orders the facts about one path so a device reads top-down.
func kindRank(k string) int {
	i := slices.Index(kindOrder, k)
	if i < 0 {
		return len(kindOrder)
	}
	return i
}

var kindOrder = []string{KindAbsent, KindDir, KindLink, KindDevice, KindSubsystem, KindDriver,
	KindModalias, KindUevent, KindFile, KindModule, KindAnswer, KindCVM, KindUnit}

// Get returns the values of every fact with this kind and path.
func (s *Snapshot) Get(kind, path string) []string {
	var vs []string
	for _, f := range s.Facts {
		if f.Kind == kind && f.Path == path {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// Has reports whether a fact with this kind and path exists.
func (s *Snapshot) Has(kind, path string) bool {
	return slices.ContainsFunc(s.Facts, func(f Fact) bool { return f.Kind == kind && f.Path == path })
}

// Lookup returns the single value of kind/path and whether it exists.
func (s *Snapshot) Lookup(kind, path string) (string, bool) {
	vs := s.Get(kind, path)
	if len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// Of returns every fact of one kind.
func (s *Snapshot) Of(kind string) []Fact {
	var fs []Fact
	for _, f := range s.Facts {
		if f.Kind == kind {
			fs = append(fs, f)
		}
	}
	return fs
}

// ErrFormat is wrapped by every parse error.
var ErrFormat = errors.New("malformed snapshot")

func validKind(k string) bool { return slices.Contains(kindOrder, k) }

func checkFact(f Fact) error {
	switch {
	case !validKind(f.Kind):
		return fmt.Errorf("unknown fact kind %q (known: %s)", f.Kind, strings.Join(kindOrder, ", "))
	case f.Path == "" || strings.ContainsAny(f.Path, " \t\r\n"):
		return fmt.Errorf("fact %q: path must be non-empty without blanks", f.Kind)
	case !utf8.ValidString(f.Path):
		return fmt.Errorf("fact %s %q: path is not valid UTF-8", f.Kind, f.Path)
	}
	if err := checkValue(f.Value); err != nil {
		return fmt.Errorf("fact %s %s: %v", f.Kind, f.Path, err)
	}
	return nil
}
