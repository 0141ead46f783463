package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"cca-testbed/rmi"
)

// Roots are the sysfs directories a snapshot covers (relative to /sys).
var Roots = []string{
	"class/tsm",
	"bus/platform/devices",
	"bus/faux/devices",
	"bus/auxiliary/devices",
	"bus/arm_smccc/devices",
	"devices/platform/arm-smccc",
	"devices/virtual/tsm",
	"firmware/cca",
	"kernel/config/tsm",
	"module",
}

// Relevant reports whether a bus device or module name concerns CCA. Bus
// lists and loaded modules on a
// real machine hold many unrelated ones (serial ports, RTC; virtio and
// ext4 modules on a distribution kernel); keeping
// only these makes real and emulated snapshots comparable.
func Relevant(name string) bool {
	if strings.HasPrefix(name, "arm-") || strings.HasPrefix(name, "arm_") {
		return true
	}
	for _, s := range []string{"cca", "rmi", "rsi", "smccc", "tsm"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// maxDepth bounds the walk under device roots; CCA devices nest at most
// platform device → auxiliary/bus device → tsm class dir → tsm0.
const maxDepth = 5

// Take walks fsys, a tree shaped like /sys (os.DirFS("/sys") inside a guest,
// the emulated tree elsewhere), and returns its snapshot. fsys must
// implement fs.ReadLinkFS. A missing root is a fact ("absent"), not an
// error; an unreadable one is an error.
func Take(fsys fs.FS, meta Meta) (*Snapshot, error) {
	w := walker{fsys: fsys, devices: map[string]bool{}}
	for _, root := range Roots {
		if err := w.root(root); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", root, err)
		}
	}
	devs := make([]string, 0, len(w.devices))
	for d := range w.devices {
		devs = append(devs, d)
	}
	slices.Sort(devs)
	for _, d := range devs {
		if err := w.device(d); err != nil {
			return nil, fmt.Errorf("snapshot device %s: %w", d, err)
		}
	}
	s := &Snapshot{Meta: meta, Facts: w.facts}
	s.normalize()
	return s, nil
}

type walker struct {
	fsys    fs.FS
	facts   []Fact
	devices map[string]bool
}

func (w *walker) add(kind, p, v string) { w.facts = append(w.facts, Fact{kind, p, v}) }

func (w *walker) root(root string) error {
	ents, err := fs.ReadDir(w.fsys, root)
	if errors.Is(err, fs.ErrNotExist) {
		w.add(KindAbsent, root, "")
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(root, "class/"), strings.HasPrefix(root, "bus/"):
		return w.links(root, ents)
	case strings.HasPrefix(root, "devices/"):
		return w.deviceTree(root, 0)
	case root == "module":
		for _, e := range ents {
			if !Relevant(e.Name()) {
				// A distribution kernel loads dozens of modules
				// (virtio, ext4, crc32c, ...) that are not the CCA
				// drivers under test; like bus lists, only those are kept.
				continue
			}
			st, err := readAttr(w.fsys, path.Join(root, e.Name(), "initstate"))
			if err != nil {
				continue // built-in modules have no initstate
			}
			w.add(KindModule, path.Join(root, e.Name()), st)
		}
		return w.answers()
	case root == "firmware/cca":
		w.add(KindDir, root, "")
		for _, e := range ents {
			p := path.Join(root, e.Name())
			if e.IsDir() {
				w.add(KindDir, p, "")
				continue
			}
			v, err := readAttr(w.fsys, p)
			if err != nil {
				return err
			}
			w.add(KindFile, p, v)
		}
	default: // configfs: directory names are the interface
		w.add(KindDir, root, "")
		for _, e := range ents {
			if e.IsDir() {
				w.add(KindDir, path.Join(root, e.Name()), "")
			}
		}
	}
	return nil
}

// links records each class or bus entry and queues the device it points to.
func (w *walker) links(root string, ents []fs.DirEntry) error {
	for _, e := range ents {
		if strings.HasPrefix(root, "bus/") && !Relevant(e.Name()) {
			continue
		}
		p := path.Join(root, e.Name())
		target, err := fs.ReadLink(w.fsys, p)
		if err != nil {
			return err
		}
		w.add(KindLink, p, target)
		w.devices[path.Join(path.Dir(p), target)] = true
	}
	return nil
}

func (w *walker) deviceTree(dir string, depth int) error {
	if depth > maxDepth {
		return nil
	}
	if _, err := fs.Stat(w.fsys, path.Join(dir, "uevent")); err == nil {
		w.devices[dir] = true
	}
	ents, err := fs.ReadDir(w.fsys, dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		// Only real directories: links (subsystem, driver) lead back up.
		if e.Type()&fs.ModeSymlink != 0 || !e.IsDir() || e.Name() == "power" {
			continue
		}
		if err := w.deviceTree(path.Join(dir, e.Name()), depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) device(d string) error {
	if _, err := fs.Stat(w.fsys, d); err != nil {
		return err // a dangling class or bus link is worth failing on
	}
	w.add(KindDevice, d, "")
	for kind, link := range map[string]string{KindSubsystem: "subsystem", KindDriver: "driver"} {
		if t, err := fs.ReadLink(w.fsys, path.Join(d, link)); err == nil {
			w.add(kind, d, path.Base(t))
		}
	}
	if v, err := readAttr(w.fsys, path.Join(d, "modalias")); err == nil {
		w.add(KindModalias, d, v)
	}
	ue, err := fs.ReadFile(w.fsys, path.Join(d, "uevent"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, l := range strings.Split(string(ue), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			w.add(KindUevent, d, l)
		}
	}
	return nil
}

func readAttr(fsys fs.FS, p string) (string, error) {
	b, err := fs.ReadFile(fsys, p)
	if err != nil {
		return "", err
	}
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", " "), nil
}

// AnswersParam is where the kernel glue lists every firmware call it made
// and the raw answer (kernel-configs/README.md), relative to /sys.
const AnswersParam = "module/cca_testbed/parameters/answers"

// answers adds one fact per call the glue made, keyed by the call, so two
// snapshots compare answer for answer. Kernels without the parameter add
// nothing.
func (w *walker) answers() error {
	v, err := readAttr(w.fsys, AnswersParam)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	t, err := rmi.ParseCmdline(v)
	if err != nil {
		return fmt.Errorf("%s: %w", AnswersParam, err)
	}
	for _, a := range t {
		w.add(KindAnswer, AnswerPath(a.FID, a.Arg),
			fmt.Sprintf("x0=%#x x1=%#x x2=%#x x3=%#x", a.Ret[0], a.Ret[1], a.Ret[2], a.Ret[3]))
	}
	return nil
}

// AnswerPath is the fact path of call fid(arg), e.g.
// "module/cca_testbed/parameters/answers/RMI_VERSION(0x10000)".
func AnswerPath(fid uint32, arg uint64) string {
	return fmt.Sprintf("%s/%s(%#x)", AnswersParam, rmi.FIDName(fid), arg)
}
