package emulated

import (
	"errors"
	"fmt"
	"io/fs"
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
	// ccaGuest is upstream's realm guest driver (drivers/virt/coco/arm-cca-guest).
	ccaGuest = "arm_cca_guest"
	// ccaHost is the host DA series' host driver (drivers/virt/coco/arm-cca-host).
	ccaHost    = "arm_cca_host"
	fauxDriver = "faux_driver"
	// The RFC's host TSM module (arm-cca-host) and its platform driver,
	// and the name of its guest driver once it is a platform driver.
	rfcHostModule  = "arm_cca_host"
	rfcHostDriver  = "cca_tsm"
	rfcGuestDriver = "arm-cca-guest"
)

// cpuModalias is the arm64 cpu device's MODALIAS (GENERIC_CPU_AUTOPROBE):
// feature numbers are KERNEL_HWCAP_* in "%04X"; ASIMD is 0001, which is
// what module_cpu_feature_match(ASIMD, ...) aliases to.
const cpuModalias = "cpu:type:aarch64:feature:,0000,0001,0002,0003,0004,0005,0006,0007"

var errNoDev = errors.New("ENODEV")

// kernelSpec is one variant's kernel as the model knows it; boot reads
// it and nothing else in the model depends on the variant (one table, as
// syzkaller keeps one config per architecture).
type kernelSpec struct {
	// tsmDrivers: the host and guest TSM modules are built.
	tsmDrivers bool
	// ids are what the TSM drivers' MODULE_DEVICE_TABLEs match; nil
	// means they have none (nothing aliases or binds them).
	ids *idTables
	// fauxModule: the module-faux driver is built, aliased to the CPU
	// feature it is loaded by.
	fauxModule bool
	// glue is the built-in registration code: the devices it adds once
	// the firmware answered d.
	glue func(c *core, b buses, d rmi.Decisions)
	// upstream: Debian's 7.3 as it is: no glue module, no TSM core or
	// auxiliary bus (only our glue selects them), and upstream's
	// arm_cca_guest, autoloaded by rsi.c's arm-cca-dev.
	upstream bool
	// smcccGuest: upstream's guest module as an SMCCC bus series makes
	// it, an arm_smccc driver rather than a module whose init registers;
	// nil for 7.3's.
	smcccGuest *smcccDriver
	// auxGuest: upstream's guest module as v5 of the auxiliary series
	// makes it (variants/smccc-aux-v5): an auxiliary driver matching
	// arm_cca_guest.arm-rsi-dev; the series selects the auxiliary bus.
	auxGuest bool
	// auxHost: the host DA series' arm_cca_host module is built (the v4
	// recipes): an auxiliary driver matching arm_cca_host.arm-rmi-dev,
	// whose probe registers tsm0 only with DA in RMI feature register 2.
	// It selects the TSM core.
	auxHost bool
	// fauxGuest: upstream's guest module as the posted faux patch makes
	// it (variants/faux): no device table, so no alias; its init creates
	// faux arm-rsi-dev, whose probe registers the report in a realm.
	fauxGuest bool
	// builtinGuest: the guest driver is built in (ARM_CCA_GUEST=y), and
	// so is tsm_report, which it selects: both inits run at boot.
	builtinGuest bool
	// auxBus: the auxiliary bus is built in although no CCA code needs
	// it (Debian's config selects it for other drivers), so
	// /sys/bus/auxiliary exists, empty of CCA devices.
	auxBus bool
	// fauxTree: upstream's guest module as the faux tree proposal makes
	// it (variants/faux-tree): no device table; loaded in a realm, its
	// init creates faux arm-rsi-dev below the faux arm-smccc device and
	// registers tsm0 under it. The series selects the TSM core.
	fauxTree bool
	// tsmNull: the series' host module is built in and selects the TSM
	// core (variants/tsm-null); the realm side is stock 7.3's.
	tsmNull bool
	// rfc: the RFC v1 series (variants/rfc): its host module is built and
	// aliased to platform:arm-rmi-dev, upstream's guest module becomes
	// platform driver arm-cca-guest for platform:arm-rsi-dev, and both
	// select the TSM core.
	rfc bool
	// rules is the recipe's userspace part as udev runs it at coldplug:
	// called for each device's add event, after the alias autoload.
	rules func(c *core, dev *device)
}

// smcccDriver is an arm_smccc driver: the alias file2alias writes for its
// MODULE_DEVICE_TABLE(arm_smccc, ...) and what the bus matches it on.
type smcccDriver struct {
	alias string
	match func(*device) bool
}

// idEntry is a one-entry id table: the bus and the id matched on it.
type idEntry struct{ bus, id string }

// idTables are the host and guest TSM drivers' id tables.
type idTables struct{ host, guest idEntry }

var (
	platformIDs = &idTables{host: idEntry{"platform", "arm-rmi-dev"}, guest: idEntry{"platform", "arm-cca-dev"}}
	auxIDs      = &idTables{host: idEntry{"auxiliary", "arm_cca_host.arm-rmi-dev"}, guest: idEntry{"auxiliary", "arm_cca_guest.arm-rsi-dev"}}
)

// fauxFeatureAlias is module-faux's alias: module_cpu_feature_match(ASIMD).
const fauxFeatureAlias = "cpu:type:*:feature:*0001*"

// buses are the buses every variant's kernel registers.
type buses struct{ platform, faux, aux *bus }

// hostDevice is whether the glue registers the host device: the RMM
// answers and has Device Assignment.
func hostDevice(d rmi.Decisions) bool { return d.RMI && d.DA }

// pair is the glue of the platform variant: the host device on bus on
// (when the RMM has DA), the realm device (when RSI answers), both at the
// bus's root directory.
func pair(on func(buses) *bus, root, host, realm string) func(*core, buses, rmi.Decisions) {
	return func(c *core, b buses, d rmi.Decisions) {
		if hostDevice(d) {
			c.deviceAdd(on(b), host, nil, root)
		}
		if d.RSI {
			c.deviceAdd(on(b), realm, nil, root)
		}
	}
}

// smcccAux is the glue of the two smccc-aux variants; legacy keeps the
// arm-cca-dev platform device for systemd.
func smcccAux(legacy bool) func(*core, buses, rmi.Decisions) {
	return func(c *core, b buses, d rmi.Decisions) {
		smccc := c.deviceAdd(b.platform, "arm-smccc", nil, "devices/platform")
		if d.RMI {
			c.deviceAdd(b.aux, "arm_cca_host.arm-rmi-dev.0", smccc, "")
		}
		if d.RSI {
			c.deviceAdd(b.aux, "arm_cca_guest.arm-rsi-dev.0", smccc, "")
			if legacy {
				c.deviceAdd(b.platform, "arm-cca-dev", nil, "devices/platform")
			}
		}
	}
}

// kernels is every variant's kernel; TestKernelsCoverVariants keeps it
// complete.
var kernels = map[cell.Variant]kernelSpec{
	cell.Platform: {
		tsmDrivers: true, ids: platformIDs,
		glue: pair(func(b buses) *bus { return b.platform }, "devices/platform", "arm-rmi-dev", "arm-cca-dev"),
	},
	// The posted faux patch: rsi.c registers nothing, no host side.
	cell.Faux: {
		upstream: true, fauxGuest: true,
		glue: func(*core, buses, rmi.Decisions) {},
	},
	cell.FauxBuiltin: {
		upstream: true, fauxGuest: true, builtinGuest: true,
		glue: func(*core, buses, rmi.Decisions) {},
	},
	cell.SMCCCAux: {
		tsmDrivers: true, ids: auxIDs,
		glue: smcccAux(true),
	},
	cell.SMCCCAuxNoLegacy: {
		tsmDrivers: true, ids: auxIDs,
		glue: smcccAux(false),
	},
	cell.Virtual: {
		glue: func(c *core, _ buses, d rmi.Decisions) {
			if hostDevice(d) {
				c.classDeviceAdd("tsm", "tsm0", nil)
			}
		},
	},
	cell.ModuleFaux: {
		fauxModule: true,
		glue:       func(*core, buses, rmi.Decisions) {}, // the module makes its devices
	},
	cell.SMCCCBus: {
		upstream: true, smcccGuest: v7Guest,
		glue: smcccBusV7,
	},
	cell.SMCCCBusNext: {
		upstream: true, smcccGuest: nextGuest,
		glue: smcccBusNext,
	},
	cell.SMCCCAuxV5: {
		upstream: true, auxGuest: true,
		glue: smcccAuxV5,
	},
	cell.SMCCCAuxV4: {
		upstream: true, auxGuest: true, auxHost: true,
		glue: smcccAuxV4(true),
	},
	cell.SMCCCAuxV4NoLegacy: {
		upstream: true, auxGuest: true, auxHost: true,
		glue: smcccAuxV4(false),
	},
	cell.FauxTree: {
		upstream: true, fauxTree: true,
		glue:  fauxTree,
		rules: fauxTreeRule,
	},
	cell.TSMNull: {
		upstream: true, tsmNull: true,
		glue: tsmNull,
	},
	cell.RFC: {
		upstream: true, rfc: true,
		glue: rfcGlue,
	},
	cell.Stock: {
		upstream: true,
		glue:     upstreamRSI,
	},
	// Debian's prebuilt 7.3 package: the same upstream code (rsi.c built
	// in, arm_cca_guest and tsm_report as modules), so the same devices
	// and aliases. Its other modules (virtio, ext4, ...) are not CCA
	// devices' and snapshots leave them out (snapshot.Relevant).
	cell.DebianKernel: {
		upstream: true,
		auxBus:   true, // measured: AUXILIARY_BUS=y in its config
		glue:     upstreamRSI,
	},
}

// upstreamRSI is 7.3's arch/arm64/kernel/rsi.c: arm-cca-dev when
// is_realm_world(), i.e. RSI_VERSION succeeded over SMC. 7.3 has no host
// side.
func upstreamRSI(c *core, b buses, d rmi.Decisions) {
	if d.RSI {
		c.deviceAdd(b.platform, "arm-cca-dev", nil, "devices/platform")
	}
}

// The SMCCC function IDs the queued bus matches on (include/linux/arm-smccc.h,
// asm/rsi_smc.h), the RSI service's name the v7 bus matches on
// (RSI_DEV_NAME), and the alias prefix of both.
const (
	rsiVersion  uint32 = 0xC4000190 // SMC_RSI_ABI_VERSION
	rsiService         = "arm-rsi-dev"
	smcccPrefix        = "arm_smccc:"
)

// The guest module as each SMCCC bus series makes it.
var (
	// v7: the id table names the service; the bus compares names.
	v7Guest = &smcccDriver{
		alias: smcccPrefix + rsiService,
		match: func(dev *device) bool { return dev.service == rsiService },
	}
	// Queued: the id table names RSI_VERSION; the bus compares IDs.
	nextGuest = &smcccDriver{
		alias: fmt.Sprintf("%sf%08X", smcccPrefix, rsiVersion),
		match: func(dev *device) bool { return dev.funcID == rsiVersion },
	}
)

// smcccBusV7 is v7's registration as posted: the arm_smccc bus at
// subsys_initcall; at device_initcall the SMCCC core makes each service's
// discovery call (TRNG_VERSION, then RSI_VERSION over SMC only) and adds
// a device for each that answers, with no parent (devices/<name>-<id>),
// the id from one allocator for the whole bus starting at 1. Neither
// firmware the testbed boots on answers TRNG_VERSION, so the realm's RSI
// device takes id 1: arm-rsi-dev-1. Its uevent and modalias attribute say
// arm_smccc:<service>. The RSI code adds /sys/firmware/cca/realm_guest on
// every kernel.
func smcccBusV7(c *core, _ buses, d rmi.Decisions) {
	sb := c.busRegister(&bus{
		name:     "arm_smccc",
		uevent:   func(dev *device) []string { return []string{"MODALIAS=" + smcccPrefix + dev.service} },
		modalias: func(dev *device) string { return smcccPrefix + dev.service },
	})
	if d.RSI {
		c.add(&device{name: rsiService + "-1", service: rsiService, bus: sb}, "devices")
	}
	c.do(c.t.WriteFile("firmware/cca/realm_guest", map[bool]string{true: "1\n", false: "0\n"}[d.RSI]))
}

// smcccBusNext is the queued series' registration: the arm_smccc bus at
// subsys_initcall; at device_initcall one device per service whose
// discovery call answered, named without a suffix and with no parent
// (devices/<name>): arm-rsi when RSI_VERSION answered over SMC. The
// TRNG's device (arm-smccc-trng) would join it when TRNG_VERSION
// answers; neither firmware the testbed boots on answers it. The RSI
// code adds /sys/firmware/cca/realm_guest on every kernel.
func smcccBusNext(c *core, _ buses, d rmi.Decisions) {
	sb := c.busRegister(&bus{
		name:     "arm_smccc",
		uevent:   func(dev *device) []string { return []string{fmt.Sprintf("MODALIAS=%sf%08X", smcccPrefix, dev.funcID)} },
		modalias: func(dev *device) string { return fmt.Sprintf("%sf%08X", smcccPrefix, dev.funcID) },
	})
	if d.RSI {
		c.add(&device{name: "arm-rsi", bus: sb, funcID: rsiVersion}, "devices")
	}
	c.do(c.t.WriteFile("firmware/cca/realm_guest", map[bool]string{true: "1\n", false: "0\n"}[d.RSI]))
}

// v5Guest is the auxiliary device name v5's arm_cca_guest matches:
// "modname.name" as auxiliary_device_create gives it (KBUILD_MODNAME "."
// RSI_DEV_NAME), aliased auxiliary:arm_cca_guest.arm-rsi-dev.
const v5Guest = ccaGuest + ".arm-rsi-dev"

// smcccAuxV5 is v5's registration as posted: at device_initcall the SMCCC
// core adds platform device arm-smccc only when PSCI gave it a conduit
// (SMCCC 1.1+), and below it auxiliary device arm_cca_guest.arm-rsi-dev.0
// when RSI_VERSION answered over SMC. No host device, no TRNG device (no
// firmware the testbed boots answers TRNG_VERSION). The RSI code adds
// /sys/firmware/cca/realm_guest on every kernel; arm-cca-dev is gone.
func smcccAuxV5(c *core, b buses, d rmi.Decisions) {
	if d.SMCCC11 {
		smccc := c.deviceAdd(b.platform, "arm-smccc", nil, "devices/platform")
		if d.RSI {
			c.deviceAdd(b.aux, v5Guest+".0", smccc, "")
		}
	}
	c.do(c.t.WriteFile("firmware/cca/realm_guest", map[bool]string{true: "1\n", false: "0\n"}[d.RSI]))
}

// v4Host is the auxiliary device name the host DA series' arm_cca_host
// matches, aliased auxiliary:arm_cca_host.arm-rmi-dev.
const v4Host = ccaHost + ".arm-rmi-dev"

// smcccAuxV4 is v4's registration as posted (variants/smccc-aux-v4):
// at device_initcall the SMCCC core adds platform device arm-smccc on
// every kernel (no conduit check before v5); below it
// arm_cca_guest.arm-rsi-dev.0 when the conduit is SMC (SMCCC 1.1) and
// RSI_VERSION succeeded, and, from the host DA series built on it,
// arm_cca_host.arm-rmi-dev.0 when RMI_VERSION(2.0) succeeded over the
// SMCCC 1.1 conduit. The model's host profiles stand for an RMM the
// glue asks over the command line; this kernel has no glue and asks
// through SMCCC, which QEMU's own PSCI leaves at 1.0 (no conduit), so
// there only real firmware answers. legacy keeps upstream rsi.c's
// arm-cca-dev (1/2 alone); 2/2 drops it. No realm_guest (v5), no TRNG
// device (no firmware the testbed boots answers TRNG_VERSION).
func smcccAuxV4(legacy bool) func(*core, buses, rmi.Decisions) {
	return func(c *core, b buses, d rmi.Decisions) {
		if legacy {
			upstreamRSI(c, b, d) // arch_initcall, before the SMCCC core's
		}
		smccc := c.deviceAdd(b.platform, "arm-smccc", nil, "devices/platform")
		if d.SMCCC11 && d.RSI {
			c.deviceAdd(b.aux, v5Guest+".0", smccc, "")
		}
		if d.SMCCC11 && d.RMI20 {
			c.deviceAdd(b.aux, v4Host+".0", smccc, "")
		}
	}
}

// fauxTree is the faux tree proposal's registration (variants/faux-tree):
// the SMCCC core creates faux device arm-smccc (devices/faux/arm-smccc)
// at device_initcall when PSCI gave it an SMCCC 1.1+ conduit; the RSI
// code adds /sys/firmware/cca/realm_guest on every kernel; no arm-cca-dev,
// no host device, no TRNG device (no firmware the testbed boots answers
// TRNG_VERSION).
func fauxTree(c *core, b buses, d rmi.Decisions) {
	if d.SMCCC11 {
		c.deviceAdd(b.faux, "arm-smccc", nil, "devices/faux")
	}
	c.do(c.t.WriteFile("firmware/cca/realm_guest", map[bool]string{true: "1\n", false: "0\n"}[d.RSI]))
}

// fauxTreeRule is variants/faux-tree/userspace's udev rule: on the add
// of faux device arm-smccc, when /sys/firmware/cca/realm_guest reads 1,
// "kmod load arm_cca_guest" (with its dependencies, as modprobe).
func fauxTreeRule(c *core, dev *device) {
	if dev.bus == nil || dev.bus.name != "faux" || dev.name != "arm-smccc" {
		return
	}
	v, err := fs.ReadFile(c.t, "firmware/cca/realm_guest")
	if err != nil || strings.TrimSpace(string(v)) != "1" {
		return
	}
	c.modprobe(ccaGuest)
}

// tsmNull is the "no device" position (variants/tsm-null): upstream's
// rsi.c for the realm, and the built-in arm_cca_host, whose init asks the
// firmware itself with real SMCs (arm_smccc_1_1_invoke): RMI_VERSION(1.0)
// and RMI_FEATURES(0) bit 42, exactly d.RMI and d.DA. The model's
// host-da and host-noda cells boot on the testbed's firmware in host
// mode, which answers them from the model over SMC (SMCCC 1.2); without
// an SMCCC 1.1 conduit every call would answer NOT_SUPPORTED. With DA it
// registers tsm0 with no parent, under devices/virtual/tsm (host-da);
// otherwise nothing.
func tsmNull(c *core, b buses, d rmi.Decisions) {
	upstreamRSI(c, b, d)
	if d.SMCCC11 && hostDevice(d) {
		c.classDeviceAdd("tsm", "tsm0", nil)
	}
}

// rfcGlue is RFC v1 as posted (variants/rfc): a platform device each
// side. arm-rmi-dev when the kernel, entered at EL2, asked the RMM itself
// (arm_smccc_1_1_invoke) and RMI_VERSION(1.0) succeeded with bit 42 in
// RMI_FEATURES(0), exactly d.RMI and d.DA; only real firmware enters a
// kernel at EL2 (the model's host cells boot at EL1 on the testbed's
// firmware in host mode, which would answer, but is_hyp_mode_available()
// stops the RFC before it asks). In a realm, arm-cca-dev renamed
// arm-rsi-dev.
func rfcGlue(c *core, b buses, d rmi.Decisions) {
	if d.EL2 && d.SMCCC11 && hostDevice(d) {
		c.deviceAdd(b.platform, "arm-rmi-dev", nil, "devices/platform")
	}
	if d.RSI {
		c.deviceAdd(b.platform, "arm-rsi-dev", nil, "devices/platform")
	}
}

// modules is the kernel's modules.alias and modules.dep, as file2alias
// and depmod write them for our MODULE_DEVICE_TABLEs.
func (k kernelSpec) modules() *kmod.Index {
	x := &kmod.Index{Deps: map[string][]string{reportMod: nil}}
	alias := func(p, m string) { x.Aliases = append(x.Aliases, kmod.Alias{Pattern: p, Module: m}) }
	if k.ids != nil {
		alias(k.ids.host.bus+":"+k.ids.host.id, hostModule)
		alias(k.ids.guest.bus+":"+k.ids.guest.id, guestModule)
	}
	if k.tsmDrivers {
		x.Deps[hostModule] = nil
		x.Deps[guestModule] = []string{reportMod}
	}
	if k.fauxModule {
		alias(fauxFeatureAlias, fauxModule)
		x.Deps[fauxModule] = []string{reportMod}
	}
	if k.upstream && !k.builtinGuest {
		// Upstream's platform_device_id table, kept "so userspace can
		// autoload this module when RSI is available".
		a := "platform:arm-cca-dev"
		switch {
		case k.fauxTree: // no device table: nothing aliases it
			a = ""
		case k.rfc: // the renamed device
			a = "platform:arm-rsi-dev"
		case k.smcccGuest != nil: // file2alias of its arm_smccc table
			a = k.smcccGuest.alias
		case k.auxGuest:
			a = "auxiliary:" + v5Guest
		}
		if !k.fauxGuest && a != "" { // the faux patch dropped the table: no alias at all
			alias(a, ccaGuest)
		}
		x.Deps[ccaGuest] = []string{reportMod}
	}
	if k.rfc {
		alias("platform:arm-rmi-dev", rfcHostModule)
		x.Deps[rfcHostModule] = nil
	}
	if k.auxHost {
		alias("auxiliary:"+v4Host, ccaHost)
		x.Deps[ccaHost] = nil // the TSM core is built in
	}
	return x
}

// boot builds the sysfs of variant v's kernel after the firmware answered
// d and udev finished coldplug.
func boot(v cell.Variant, d rmi.Decisions) (*core, error) {
	k, ok := kernels[v]
	if !ok {
		return nil, fmt.Errorf("%s: no kernel in the model: %w", v, cell.ErrUnknown)
	}
	c := newCore(k.modules())
	b := buses{
		platform: c.busRegister(&bus{
			name:     "platform",
			uevent:   func(d *device) []string { return []string{"MODALIAS=platform:" + d.name} },
			modalias: func(d *device) string { return "platform:" + d.name },
		}),
		faux: c.busRegister(&bus{name: "faux"}), // faux_bus_type has no uevent callback
	}
	if !k.upstream || k.auxGuest || k.auxBus {
		b.aux = c.busRegister(&bus{name: "auxiliary", uevent: func(d *device) []string {
			// auxiliary_uevent: the device name up to its last '.', i.e. without the id.
			return []string{"MODALIAS=auxiliary:" + beforeLast(d.name, '.')}
		}})
	}
	if !k.upstream || k.fauxTree || k.tsmNull || k.rfc || k.auxHost { // the TSM core is built in
		c.classRegister("tsm")
	}
	// faux_driver is built in and binds every faux device at creation.
	c.driverRegister(&driver{name: fauxDriver, bus: b.faux, match: func(*device) bool { return true }})
	cpu := c.busRegister(&bus{name: "cpu", uevent: func(*device) []string { return []string{"MODALIAS=" + cpuModalias} }})
	c.deviceAdd(cpu, "cpu0", nil, "devices/system/cpu")
	if !k.upstream { // the glue exposes its conduit
		c.do(c.t.WriteFile("module/cca_testbed/parameters/conduit", "emulated-rmi\n"))
	}

	k.glue(c, b, d)

	// fauxGuestInit is the faux patch's module_init: faux_device_create
	// probes at once, and a failed probe (not a realm) tears the device
	// down and fails the init.
	fauxGuestInit := func() bool {
		if !d.RSI { // is_realm_world()
			return false
		}
		c.deviceAdd(b.faux, "arm-rsi-dev", nil, "devices/faux") // faux_driver binds it
		return true                                             // tsm_report_register(ops, NULL)
	}
	if k.builtinGuest {
		// Built-in initcalls: tsm_report registers configfs tsm/report on
		// every kernel; arm_cca_guest's init runs whether or not udev
		// would ever have loaded it.
		c.do(c.t.Mkdir("kernel/config/tsm/report"))
		fauxGuestInit()
	}

	tsmRegister := func(parent *device) { c.classDeviceAdd("tsm", "tsm0", parent) }
	c.modInit = func(name string) bool {
		switch name {
		case hostModule:
			if k.ids == nil {
				break // built without a device table: nothing to match
			}
			hb := c.buses[k.ids.host.bus]
			if hb == nil {
				c.do(fmt.Errorf("%s: host driver matches on bus %q, which the glue never registered", v, k.ids.host.bus))
				break
			}
			c.driverRegister(&driver{name: hostModule, bus: hb, module: name,
				match: idMatch(hb, k.ids.host.id),
				probe: func(dev *device) error {
					if !d.DA { // the host driver checks DA itself (RMI_FEATURES reg 0)
						return errNoDev
					}
					tsmRegister(dev)
					return nil
				}})
		case guestModule:
			if k.ids == nil {
				break
			}
			gb := c.buses[k.ids.guest.bus]
			if gb == nil {
				c.do(fmt.Errorf("%s: guest driver matches on bus %q, which the glue never registered", v, k.ids.guest.bus))
				break
			}
			c.driverRegister(&driver{name: guestModule, bus: gb, module: name,
				match: idMatch(gb, k.ids.guest.id)}) // probe: tsm_report_register succeeds
		case fauxModule: // module-faux: init creates the devices or fails
			host := hostDevice(d)
			if !host && !d.RSI {
				return false
			}
			if host {
				tsmRegister(c.deviceAdd(b.faux, "arm-rmi-dev", nil, "devices/faux"))
			}
			if d.RSI {
				c.deviceAdd(b.faux, "arm-rsi-dev", nil, "devices/faux")
			}
		case rfcHostModule: // arm_cca_host, the RFC's or the v4 host DA series'
			if k.auxHost {
				// module_auxiliary_driver: no .name, so the driver is
				// named after the module; the probe reads
				// RMI_FEATURES(2) itself.
				c.driverRegister(&driver{name: ccaHost, bus: b.aux, module: name,
					match: idMatch(b.aux, v4Host),
					probe: func(dev *device) error {
						if !d.DAReg2 {
							return errNoDev
						}
						tsmRegister(dev)
						return nil
					}})
				break
			}
			// module_platform_driver: the probe registers tsm0 below
			// the device it binds.
			c.driverRegister(&driver{name: rfcHostDriver, bus: b.platform, module: name,
				match: idMatch(b.platform, "arm-rmi-dev"),
				probe: func(dev *device) error {
					tsmRegister(dev)
					return nil
				}})
		case ccaGuest:
			if k.rfc {
				c.driverRegister(&driver{name: rfcGuestDriver, bus: b.platform, module: name,
					match: idMatch(b.platform, "arm-rsi-dev"),
					probe: func(dev *device) error {
						if !d.RSI { // is_realm_world()
							return errNoDev
						}
						if d.RealmDA { // rsi_has_da_feature()
							tsmRegister(dev)
						}
						return nil // tsm_report_register(ops, NULL)
					}})
				return true
			}
			if k.fauxGuest {
				return fauxGuestInit()
			}
			if k.smcccGuest != nil {
				sb := c.buses["arm_smccc"]
				c.driverRegister(&driver{name: ccaGuest, bus: sb, module: name,
					match: k.smcccGuest.match,
					probe: func(*device) error {
						if !d.RSI { // is_realm_world()
							return errNoDev
						}
						return nil // tsm_report_register(ops, NULL)
					}})
				return true // module_arm_smccc_driver: init is driver_register
			}
			if k.fauxTree {
				// init: -ENODEV outside a realm or without arm-smccc;
				// else faux_device_create, whose probe registers the
				// report provider and tsm0 under the new device.
				var parent *device
				for _, dev := range c.devices {
					if dev.bus == b.faux && dev.name == "arm-smccc" {
						parent = dev
					}
				}
				if !d.RSI || parent == nil {
					return false
				}
				tsmRegister(c.deviceAdd(b.faux, "arm-rsi-dev", parent, ""))
				return true
			}
			if k.auxGuest {
				// module_auxiliary_driver: no .name, so the driver is
				// named after the module.
				c.driverRegister(&driver{name: ccaGuest, bus: b.aux, module: name,
					match: idMatch(b.aux, v5Guest),
					probe: func(*device) error {
						if !d.RSI { // is_realm_world()
							return errNoDev
						}
						return nil // tsm_report_register(ops, NULL)
					}})
				return true
			}
			// Not a platform driver: its init registers the report
			// provider in a realm and fails -ENODEV elsewhere; the
			// device it was autoloaded for stays unbound.
			return d.RSI
		case reportMod:
			// tsm_report's init registers the configfs subsystem "tsm" with
			// its default group "report" (drivers/virt/coco/guest/report.c),
			// whether or not a provider ever registers.
			c.do(c.t.Mkdir("kernel/config/tsm/report"))
		}
		return true
	}
	c.rules = k.rules
	c.coldplug()
	if err := c.finish(); err != nil {
		return nil, fmt.Errorf("%s: %w", v, err)
	}
	return c, nil
}

// idMatch is the bus's match against a one-entry id table: platform
// compares the device name, auxiliary "modname.name" without the id.
func idMatch(b *bus, id string) func(*device) bool {
	return func(d *device) bool {
		if b.name == "auxiliary" {
			return beforeLast(d.name, '.') == id
		}
		return d.name == id
	}
}

// beforeLast is s up to the last c ("arm_cca_guest.arm-rsi-dev.0" →
// "arm_cca_guest.arm-rsi-dev"), or s.
func beforeLast(s string, c byte) string {
	if i := strings.LastIndexByte(s, c); i >= 0 {
		return s[:i]
	}
	return s
}
