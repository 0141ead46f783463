package emulated

import (
	"errors"
	"fmt"
	"strings"

	"cca-testbed/cell"
	"cca-testbed/emulated/kmod"
	"cca-testbed/rmi"
)

// The names kernel-configs/README.md fixes for every variant's kernel.
const (
	hostModule  = "cca_host_tsm"
	guestModule = "cca_guest_tsm"
	fauxModule  = "cca_faux"
	reportMod   = "tsm_report"
	fauxDriver  = "faux_driver"
)

// cpuModalias is the arm64 cpu device's MODALIAS (GENERIC_CPU_AUTOPROBE):
// feature numbers are KERNEL_HWCAP_* in "%04X"; ASIMD is 0001, which is
// what module_cpu_feature_match(ASIMD, ...) aliases to.
const cpuModalias = "cpu:type:aarch64:feature:,0000,0001,0002,0003,0004,0005,0006,0007"

var errNoDev = errors.New("ENODEV")

// modulesFor is the variant kernel's modules.alias and modules.dep, as
// file2alias and depmod write them for our MODULE_DEVICE_TABLEs.
func modulesFor(v cell.Variant) *kmod.Index {
	x := &kmod.Index{Deps: map[string][]string{reportMod: nil}}
	alias := func(p, m string) { x.Aliases = append(x.Aliases, kmod.Alias{Pattern: p, Module: m}) }
	drivers := true
	switch v {
	case cell.Platform:
		alias("platform:arm-rmi-dev", hostModule)
		alias("platform:arm-cca-dev", guestModule)
	case cell.SMCCCAux, cell.SMCCCAuxNoLegacy:
		alias("auxiliary:arm_cca_host.arm-rmi-dev", hostModule)
		alias("auxiliary:arm_cca_guest.arm-rsi-dev", guestModule)
	case cell.SMCCCBus:
		alias("arm_smccc:arm-rmi", hostModule)
		alias("arm_smccc:arm-rsi", guestModule)
	case cell.Faux: // built, but faux has no device table to alias
	case cell.Virtual, cell.ModuleFaux:
		drivers = false
	}
	if drivers {
		x.Deps[hostModule] = nil
		x.Deps[guestModule] = []string{reportMod}
	}
	if v == cell.ModuleFaux {
		alias("cpu:type:*:feature:*0001*", fauxModule)
		x.Deps[fauxModule] = []string{reportMod}
	}
	return x
}

// boot builds the sysfs of variant v's kernel after the firmware answered
// d and udev finished coldplug.
func boot(v cell.Variant, d rmi.Decisions) (*core, error) {
	c := newCore(modulesFor(v))
	platform := c.busRegister(&bus{
		name:     "platform",
		uevent:   func(d *device) []string { return []string{"MODALIAS=platform:" + d.name} },
		modalias: func(d *device) string { return "platform:" + d.name },
	})
	faux := c.busRegister(&bus{name: "faux"}) // faux_bus_type has no uevent callback
	aux := c.busRegister(&bus{name: "auxiliary", uevent: func(d *device) []string {
		// auxiliary_uevent: the device name up to its last '.', i.e. without the id.
		return []string{"MODALIAS=auxiliary:" + beforeLast(d.name, '.')}
	}})
	c.classRegister("tsm")
	// faux_driver is built in and binds every faux device at creation.
	c.driverRegister(&driver{name: fauxDriver, bus: faux, match: func(*device) bool { return true }})
	cpu := c.busRegister(&bus{name: "cpu", uevent: func(*device) []string { return []string{"MODALIAS=" + cpuModalias} }})
	c.deviceAdd(cpu, "cpu0", nil, "devices/system/cpu")
	c.do(c.t.WriteFile("module/cca_testbed/parameters/conduit", "emulated-rmi\n"))

	tsmRegister := func(parent *device) { c.classDeviceAdd("tsm", "tsm0", parent) }
	host := d.RMI && d.DA

	// Our driver modules (kernel-configs/src): which bus and id they match.
	var hostBus, guestBus *bus
	hostID, guestID := "", ""
	switch v {
	case cell.Platform:
		hostBus, guestBus, hostID, guestID = platform, platform, "arm-rmi-dev", "arm-cca-dev"
	case cell.SMCCCAux, cell.SMCCCAuxNoLegacy:
		hostBus, guestBus, hostID, guestID = aux, aux, "arm_cca_host.arm-rmi-dev", "arm_cca_guest.arm-rsi-dev"
	}

	// The built-in glue registers the variant's devices.
	switch v {
	case cell.Platform:
		if host {
			c.deviceAdd(platform, "arm-rmi-dev", nil, "devices/platform")
		}
		if d.RSI {
			c.deviceAdd(platform, "arm-cca-dev", nil, "devices/platform")
		}
	case cell.Faux:
		if host {
			c.deviceAdd(faux, "arm-rmi-dev", nil, "devices/faux")
		}
		if d.RSI {
			c.deviceAdd(faux, "arm-rsi-dev", nil, "devices/faux")
		}
	case cell.SMCCCAux, cell.SMCCCAuxNoLegacy:
		smccc := c.deviceAdd(platform, "arm-smccc", nil, "devices/platform")
		if d.RMI {
			c.deviceAdd(aux, "arm_cca_host.arm-rmi-dev.0", smccc, "")
		}
		if d.RSI {
			c.deviceAdd(aux, "arm_cca_guest.arm-rsi-dev.0", smccc, "")
			if v == cell.SMCCCAux {
				c.deviceAdd(platform, "arm-cca-dev", nil, "devices/platform")
			}
		}
	case cell.SMCCCBus:
		sb := c.busRegister(&bus{
			name:     "arm_smccc",
			uevent:   func(d *device) []string { return []string{"MODALIAS=arm_smccc:" + beforeLast(d.name, '-')} },
			modalias: func(d *device) string { return "arm_smccc:" + beforeLast(d.name, '-') },
		})
		hostBus, guestBus, hostID, guestID = sb, sb, "arm-rmi", "arm-rsi"
		smccc := c.deviceAdd(platform, "arm-smccc", nil, "devices/platform")
		if d.RMI {
			c.deviceAdd(sb, "arm-rmi-0", smccc, "")
		}
		if d.RSI {
			c.deviceAdd(sb, "arm-rsi-0", smccc, "")
		}
		c.do(c.t.WriteFile("firmware/cca/realm_guest", map[bool]string{true: "1\n", false: "0\n"}[d.RSI]))
	case cell.Virtual:
		if host {
			tsmRegister(nil)
		}
	}

	c.modInit = func(name string) bool {
		switch name {
		case hostModule:
			if hostBus == nil {
				break // built without a device table: nothing to match
			}
			c.driverRegister(&driver{name: hostModule, bus: hostBus, module: name,
				match: idMatch(hostBus, hostID),
				probe: func(dev *device) error {
					if !d.DA { // the host driver checks DA itself (RMI_FEATURES reg 0)
						return errNoDev
					}
					tsmRegister(dev)
					return nil
				}})
		case guestModule:
			if guestBus == nil {
				break
			}
			c.driverRegister(&driver{name: guestModule, bus: guestBus, module: name,
				match: idMatch(guestBus, guestID)}) // probe: tsm_report_register succeeds
		case fauxModule: // module-faux: init creates the devices or fails
			if !host && !d.RSI {
				return false
			}
			if host {
				tsmRegister(c.deviceAdd(faux, "arm-rmi-dev", nil, "devices/faux"))
			}
			if d.RSI {
				c.deviceAdd(faux, "arm-rsi-dev", nil, "devices/faux")
			}
		case reportMod:
			// tsm_report's init registers the configfs subsystem "tsm" with
			// its default group "report" (drivers/virt/coco/guest/report.c),
			// whether or not a provider ever registers.
			c.do(c.t.Mkdir("kernel/config/tsm/report"))
		}
		return true
	}
	c.coldplug()
	if err := c.finish(); err != nil {
		return nil, fmt.Errorf("%s: %w", v, err)
	}
	return c, nil
}

// idMatch is the bus's match against a one-entry id table: platform
// compares the device name, auxiliary "modname.name" without the id,
// arm_smccc the service name without "-<id>".
func idMatch(b *bus, id string) func(*device) bool {
	return func(d *device) bool {
		switch b.name {
		case "auxiliary":
			return beforeLast(d.name, '.') == id
		case "arm_smccc":
			return beforeLast(d.name, '-') == id
		}
		return d.name == id
	}
}

// beforeLast is s up to the last c ("arm-rmi-0" → "arm-rmi"), or s.
func beforeLast(s string, c byte) string {
	if i := strings.LastIndexByte(s, c); i >= 0 {
		return s[:i]
	}
	return s
}
