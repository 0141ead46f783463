package emulated

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"cca-testbed/emulated/kmod"
	"cca-testbed/emulated/sysfs"
)

// core is a small model of the Linux driver core (drivers/base): buses,
// classes, devices with parents, drivers that match and probe, and the
// sysfs each of these writes. It follows the 7.3 source:
//   - device_add: the device directory under its parent (or
//     devices/<bus-root>), a "subsystem" link, a "uevent" file whose
//     contents are dev_uevent's (DRIVER= when bound, then the bus's uevent
//     callback), and the bus/<bus>/devices/<name> link;
//   - class devices (tsm_register): with a parent, a "<class>" glue
//     directory under the parent; without one, devices/virtual/<class>;
//   - really_probe: on success the "driver" link and the driver's link
//     back to the device; a probe error leaves the device unbound.
//
// Errors are sticky: the first one is kept and later calls do nothing, so
// builders read straight through and check once.
type core struct {
	t       *sysfs.Tree
	err     error
	buses   map[string]*bus
	devices []*device
	drivers []*driver
	modules []string // loaded (live) modules, in load order
	index   *kmod.Index
	// modInit runs a module's init; it returns false when init fails
	// (the module does not stay loaded).
	modInit func(name string) bool
	// rules, when set, are a variant's own udev rules (a recipe's
	// userspace part), run on each device's add event at coldplug.
	rules func(c *core, d *device)
}

type bus struct {
	name string
	// uevent returns the bus callback's variables (platform_uevent etc.).
	uevent func(d *device) []string
	// modalias, when set, is the bus's "modalias" device attribute.
	modalias func(d *device) string
}

type device struct {
	name, dir string // dir is relative to /sys
	bus       *bus
	class     string
	driver    *driver
	parent    *device
	// funcID is an arm_smccc device's SMCCC function ID (struct
	// arm_smccc_device as queued), what that bus matches and aliases on.
	funcID uint32
	// service is an arm_smccc device's service name (struct
	// arm_smccc_device as posted in v7): its name without "-<id>", what
	// that bus matches and aliases on.
	service string
}

type driver struct {
	name   string
	bus    *bus
	match  func(d *device) bool
	probe  func(d *device) error
	module string
}

func newCore(idx *kmod.Index) *core {
	c := &core{t: sysfs.New(), buses: map[string]*bus{}, index: idx}
	for _, d := range []string{"devices/platform", "devices/system/cpu", "devices/virtual", "class", "bus", "firmware", "kernel/config", "module"} {
		c.do(c.t.Mkdir(d))
	}
	return c
}

func (c *core) do(err error) {
	if c.err == nil && err != nil {
		c.err = err
	}
}

// rel is the relative symlink target from directory from to target, both
// relative to /sys, as sysfs_create_link writes it.
func rel(from, target string) string {
	return strings.Repeat("../", strings.Count(from, "/")+1) + target
}

func (c *core) busRegister(b *bus) *bus {
	c.buses[b.name] = b
	for _, d := range []string{"devices", "drivers"} {
		c.do(c.t.Mkdir(path.Join("bus", b.name, d)))
	}
	return b
}

func (c *core) classRegister(name string) { c.do(c.t.Mkdir(path.Join("class", name))) }

// deviceAdd registers a bus device named name under parent (nil: the
// bus's root directory, rootDir) and offers it to the registered drivers.
func (c *core) deviceAdd(b *bus, name string, parent *device, rootDir string) *device {
	return c.add(&device{name: name, bus: b, parent: parent}, rootDir)
}

// add is deviceAdd for a device whose bus-specific fields are set.
func (c *core) add(d *device, rootDir string) *device {
	b, name, dir := d.bus, d.name, path.Join(rootDir, d.name)
	if d.parent != nil {
		dir = path.Join(d.parent.dir, name)
	}
	d.dir = dir
	c.do(c.t.Mkdir(path.Join(dir, "power")))
	c.do(c.t.Symlink(rel(dir, "bus/"+b.name), path.Join(dir, "subsystem")))
	if b.modalias != nil {
		c.do(c.t.WriteFile(path.Join(dir, "modalias"), b.modalias(d)+"\n"))
	}
	link := path.Join("bus", b.name, "devices", name)
	c.do(c.t.Symlink(rel(path.Dir(link), dir), link))
	c.devices = append(c.devices, d)
	for _, drv := range c.drivers {
		if d.driver == nil && drv.bus == b && drv.match(d) {
			c.probe(drv, d)
		}
	}
	return d
}

// classDeviceAdd is device_add for a class device without a bus, as
// tsm_register does; parent nil puts it under devices/virtual/<class>.
func (c *core) classDeviceAdd(class, name string, parent *device) *device {
	dir := path.Join("devices/virtual", class, name)
	if parent != nil {
		dir = path.Join(parent.dir, class, name)
	}
	d := &device{name: name, dir: dir, class: class, parent: parent}
	c.do(c.t.Mkdir(path.Join(dir, "power")))
	c.do(c.t.Symlink(rel(dir, "class/"+class), path.Join(dir, "subsystem")))
	if parent != nil {
		c.do(c.t.Symlink(rel(dir, parent.dir), path.Join(dir, "device")))
	}
	link := path.Join("class", class, name)
	c.do(c.t.Symlink(rel(path.Dir(link), dir), link))
	c.devices = append(c.devices, d)
	return d
}

// driverRegister adds a driver and binds it to matching unbound devices.
func (c *core) driverRegister(drv *driver) {
	c.do(c.t.Mkdir(path.Join("bus", drv.bus.name, "drivers", drv.name)))
	c.drivers = append(c.drivers, drv)
	for _, d := range c.devices {
		if d.driver == nil && d.bus == drv.bus && drv.match(d) {
			c.probe(drv, d)
		}
	}
}

func (c *core) probe(drv *driver, d *device) {
	if drv.probe != nil && drv.probe(d) != nil {
		return // really_probe: an error leaves the device unbound
	}
	d.driver = drv
	drvDir := path.Join("bus", drv.bus.name, "drivers", drv.name)
	c.do(c.t.Symlink(rel(d.dir, drvDir), path.Join(d.dir, "driver")))
	c.do(c.t.Symlink(rel(drvDir, d.dir), path.Join(drvDir, d.name)))
}

// uevent is what reading the device's uevent file returns (dev_uevent).
func (d *device) uevent() string {
	var vars []string
	if d.driver != nil {
		vars = append(vars, "DRIVER="+d.driver.name)
	}
	if d.bus != nil && d.bus.uevent != nil {
		vars = append(vars, d.bus.uevent(d)...)
	}
	if len(vars) == 0 {
		return ""
	}
	return strings.Join(vars, "\n") + "\n"
}

// modalias is the MODALIAS a uevent of d carries, if any.
func (d *device) modalias() string {
	for _, v := range strings.Split(d.uevent(), "\n") {
		if m, ok := strings.CutPrefix(v, "MODALIAS="); ok {
			return m
		}
	}
	return ""
}

// coldplug is `udevadm trigger` followed by udev's "kmod load $MODALIAS"
// for each device (80-drivers.rules), in device order, including devices
// that appear while modules load.
func (c *core) coldplug(extra ...string) {
	for _, m := range extra {
		c.kmodLoad(m)
	}
	for i := 0; i < len(c.devices); i++ {
		if m := c.devices[i].modalias(); m != "" && c.devices[i].driver == nil {
			c.kmodLoad(m)
		}
		if c.rules != nil {
			c.rules(c, c.devices[i])
		}
	}
}

// modprobe loads module name and its dependencies, as a rule's
// "kmod load NAME" does.
func (c *core) modprobe(name string) {
	for _, dep := range c.index.Load(name) {
		c.insmod(dep)
	}
}

func (c *core) kmodLoad(modalias string) {
	for _, m := range c.index.Lookup(modalias) {
		for _, dep := range c.index.Load(m) {
			c.insmod(dep)
		}
	}
}

// insmod loads a module once; its init decides whether it stays.
func (c *core) insmod(name string) {
	if slices.Contains(c.modules, name) {
		return
	}
	if c.modInit != nil && !c.modInit(name) {
		return
	}
	c.modules = append(c.modules, name)
	c.do(c.t.WriteFile(path.Join("module", name, "initstate"), "live\n"))
}

// finish writes the files whose contents depend on the final state
// (uevent reflects binding).
func (c *core) finish() error {
	for _, d := range c.devices {
		c.do(c.t.WriteFile(path.Join(d.dir, "uevent"), d.uevent()))
	}
	if c.err != nil {
		return fmt.Errorf("emulated driver core: %w", c.err)
	}
	return nil
}
