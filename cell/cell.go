// Package cell names what the testbed measures: a registration variant, a
// role, the firmware that answers and a guest userspace. A cell is written
// "variant/role", then "@firmware" when real Arm firmware answers instead
// of the rmi model, then "@userspace" when it is not the default (forky):
// "faux/realm", "platform/realm@trixie", "platform/host@tf-rmm-0.9".
// Firmware and userspace names never overlap, so each "@" qualifier says
// which axis it sets; both may be given, in either order, and String
// writes them firmware first. Every name is safe in a file name (letters,
// digits, '-', '.', '@' and the '/' FileName replaces). Every other package
// takes its names from here, so the CLI, files and reports agree.
//
// Tests: go test ./cell
package cell

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrUnknown is wrapped by every parse error of this package.
var ErrUnknown = errors.New("unknown name")

// Variant is one way of registering the CCA devices (DESIGN.md's table).
type Variant string

const (
	Platform Variant = "platform"
	// Faux is the posted guest-side faux device patch, built from its
	// recipe (variants/faux) with the guest driver as a module, as
	// distros build it; FauxBuiltin is the same patch built in.
	Faux             Variant = "faux"
	FauxBuiltin      Variant = "faux-builtin"
	SMCCCAux         Variant = "smccc-aux"
	SMCCCAuxNoLegacy Variant = "smccc-aux-nolegacy"
	// SMCCCBus is the SMCCC bus as posted in v7 (2026-06-11), built from
	// its recipe (variants/smccc-bus).
	SMCCCBus   Variant = "smccc-bus"
	Virtual    Variant = "virtual"
	ModuleFaux Variant = "module-faux"
	// Stock is Debian's linux-source-7.3 with no project patches or
	// glue: upstream rsi.c and arm_cca_guest, as a distro would ship them;
	// built from its empty recipe (variants/stock).
	Stock Variant = "stock"
	// SMCCCBusNext is the SMCCC bus as queued in the arm64 tree for the
	// next merge window, built from its recipe (variants/smccc-bus-next).
	SMCCCBusNext Variant = "smccc-bus-next"
	// SMCCCAuxV5 is v5 of the auxiliary-device series as posted
	// (2026-05-14), built from its recipe (variants/smccc-aux-v5).
	SMCCCAuxV5 Variant = "smccc-aux-v5"
	// SMCCCAuxV4 is v4 of the auxiliary-device series as posted
	// (2026-04-27) with arm-cca-dev kept (1/2), with the host device of
	// the host DA series built on it; SMCCCAuxV4NoLegacy adds 2/2, which
	// drops arm-cca-dev. Built from their recipes (variants/smccc-aux-v4,
	// variants/smccc-aux-v4-nolegacy).
	SMCCCAuxV4         Variant = "smccc-aux-v4"
	SMCCCAuxV4NoLegacy Variant = "smccc-aux-v4-nolegacy"
	// DebianKernel is Debian's own prebuilt arm64 kernel package for 7.3
	// (trixie-backports linux-image-7.3*-arm64), booted with its modules
	// and the initramfs its installation generates: what a distro user
	// runs, not built by the testbed at all.
	DebianKernel Variant = "debian-kernel"
	// FauxTree is the faux tree Catalin Marinas proposed (2026-05-14; no
	// patch posted), built from its recipe (variants/faux-tree) with its
	// udev rule as the userspace part.
	FauxTree Variant = "faux-tree"
	// TSMNull is the "no device" position of July 2025 (Jason Gunthorpe,
	// Dan Williams; no patch posted): a host module calls
	// tsm_register(NULL), built from its recipe (variants/tsm-null).
	TSMNull Variant = "tsm-null"
	// RFC is the platform-device position as posted in RFC v1 of "ARM CCA
	// Device Assignment support" (2025-07-28, patches 11, 12, 23, 24 of
	// 38), built from its recipe (variants/rfc). Platform is the
	// project's glue for the same position.
	RFC Variant = "rfc"
)

// VariantInfo describes a variant in one line for `testbed variants`.
type VariantInfo struct {
	Name        Variant
	Description string
	// DACheck is how the variant's host side decides Device Assignment;
	// "" when a user's series does not say (its recipe has no da-check).
	DACheck DACheck
}

// DACheck names the test a variant's host side makes for Device
// Assignment. The RFC reads RMI feature register 0 bit 42 (RMM
// 1.1-alpha); RMM 2.0 (TF-RMM v0.9) keeps DA in register 2 bit 0, so a
// reg0-bit42 host never sees DA there.
type DACheck string

const (
	DAReg0Bit42 DACheck = "reg0-bit42" // the RFC's check, the project glue's
	DAReg2Bit0  DACheck = "reg2-bit0"  // RMM 2.0's layout
	DANone      DACheck = "none"       // no host side: nothing checks DA
)

// DAChecks lists the DA checks a recipe may name.
var DAChecks = []DACheck{DAReg0Bit42, DAReg2Bit0, DANone}

// ParseDACheck checks s against DAChecks.
func ParseDACheck(s string) (DACheck, error) {
	if slices.Contains(DAChecks, DACheck(s)) {
		return DACheck(s), nil
	}
	return "", fmt.Errorf("%w: da-check %q (known: %s)", ErrUnknown, s, DACheckNames())
}

// DACheckNames lists DAChecks for messages: "reg0-bit42, reg2-bit0, none".
func DACheckNames() string { return join(DAChecks) }

// String is the check's name, or "not stated" for a series that gives none.
func (d DACheck) String() string {
	if d == "" {
		return "not stated"
	}
	return string(d)
}

// fromSeries holds the variants Register added.
var fromSeries = map[Variant]bool{}

// fromRecipe holds the built-in variants whose kernel is a recipe in
// variants/ (linux-source-7.3 plus a patch series, possibly empty; no glue).
var fromRecipe = map[Variant]bool{Faux: true, FauxBuiltin: true, Stock: true, SMCCCBus: true, SMCCCBusNext: true, SMCCCAuxV5: true, SMCCCAuxV4: true, SMCCCAuxV4NoLegacy: true, FauxTree: true, TSMNull: true, RFC: true}

// FromRecipe reports whether built-in variant v is built from a recipe
// in variants/ rather than from kernel-configs.
func FromRecipe(v Variant) bool { return fromRecipe[v] }

// prebuilt holds the built-in variants whose kernel is a distribution's
// binary package rather than a build of ours (images/kernel.BuildDebian).
var prebuilt = map[Variant]bool{DebianKernel: true}

// Prebuilt reports whether built-in variant v boots a distribution's
// prebuilt kernel package rather than a kernel the testbed builds.
func Prebuilt(v Variant) bool { return prebuilt[v] }

// Unglued reports whether v's kernel has none of the project's glue (no
// cca_testbed module reading answers from the command line): the
// recipes (stock among them) and the prebuilt packages. Only the realm
// firmware or real firmware can answer such a kernel.
func Unglued(v Variant) bool { return fromRecipe[v] || prebuilt[v] }

// FromSeries reports whether v was read at run time from a user's patch
// series (testbed --variant-from) rather than built into the testbed.
func FromSeries(v Variant) bool { return fromSeries[v] }

// Variants lists every variant in the design's order.
var Variants = []VariantInfo{
	{Platform, "project glue for RFC v1 11/38 (the posted series is variant rfc): platform_device arm-rmi-dev (host) and upstream arm-cca-dev (realm)", DAReg0Bit42},
	// Recipes' descriptions are their Summary (variants' tests keep the two equal).
	{Faux, "recipe: posted guest-side faux device: rsi.c drops arm-cca-dev; arm_cca_guest (m, no device table) would create faux arm-rsi-dev in its own init, but as a module nothing loads it: no device, no report, systemd finds nothing; no host device (1 patch); by Aneesh Kumar K.V (Arm); version [PATCH] coco: guest: arm64: Update ARM CCA guest driver (single patch, not taken); date 2025-10-08; message-id 20251008132758.784275-1-aneesh.kumar@kernel.org; quilt variants/faux", DANone},
	{FauxBuiltin, "recipe: the posted faux patch built in (ARM_CCA_GUEST=y): in a realm arm_cca_guest's init creates faux arm-rsi-dev under /sys/devices/faux, bound to faux_driver, and registers the report; no MODALIAS, no arm-cca-dev, so systemd finds nothing; tsm_report built in gives every VM an empty report interface; no host device (1 patch); by Aneesh Kumar K.V (Arm); version [PATCH] coco: guest: arm64: Update ARM CCA guest driver (single patch, not taken), built in; date 2025-10-08; message-id 20251008132758.784275-1-aneesh.kumar@kernel.org; quilt variants/faux-builtin", DANone},
	{SMCCCAux, "project glue (not a posted series; smccc-aux-v4 is v4 as posted): arm-smccc platform device with auxiliary arm_cca_host/arm_cca_guest devices from the model's answers, RMI_VERSION(1.0) and DA in register 0 bit 42 as the RFC checked, legacy arm-cca-dev kept", DAReg0Bit42},
	{SMCCCAuxNoLegacy, "project glue (not a posted series; smccc-aux-v4-nolegacy is v4 as posted): as smccc-aux without the legacy arm-cca-dev platform device", DAReg0Bit42},
	// The recipe's Summary (variants' tests keep the two equal).
	{SMCCCBus, "recipe: v7 as posted: arm_smccc bus matched by name; arm-rsi-dev-<id> (ids from 1, no parent) when RSI_VERSION answers over SMC, MODALIAS arm_smccc:arm-rsi-dev autoloads arm_cca_guest, which binds it; TRNG as arm-smccc-trng; /sys/firmware/cca/realm_guest; no arm-cca-dev; no host device (4 patches); by Aneesh Kumar K.V (Arm); version v7; date 2026-06-11; quilt variants/smccc-bus", DANone},
	{Virtual, "project glue (kernel-configs), not a posted patch: tsm_register(NULL) from the glue's answers, no device, tsm0 under /sys/devices/virtual/tsm; tsm-null is the position as a recipe", DAReg0Bit42},
	{ModuleFaux, "hypothetical, never posted for CCA (asked for 2025-10-10, answered: not without a hwcap): tdx-host pattern, a module loaded by a CPU-feature alias creates its own faux device", DAReg0Bit42},
	{Stock, "recipe: Debian's linux-source-7.3 unpatched: upstream rsi.c registers arm-cca-dev in a realm, arm_cca_guest (m) autoloads; no host side (no patches); by Debian Kernel Team (upload by Ben Hutchings); version linux-source-7.3 7.3.4-1~bpo13+1 (trixie-backports), as shipped; date 2026-11-15; quilt variants/stock", DANone},
	{SMCCCBusNext, "recipe: queued for-next/smccc-bus: arm_smccc bus matched by SMCCC function ID; arm-rsi (no suffix, no parent) when RSI_VERSION answers over SMC, MODALIAS arm_smccc:fC4000190 autoloads arm_cca_guest, which binds it; /sys/firmware/cca/realm_guest; no arm-cca-dev; no host device (5 patches); by Aneesh Kumar K.V (Arm), queued by Catalin Marinas; version arm64 for-next/smccc-bus (for-next/core, next merge window); date 2026-09-24; commit bce57945f5e7207960b2bd567a6e880f90258ffb; quilt variants/smccc-bus-next", DANone},
	{SMCCCAuxV5, "recipe: v5 as posted: platform arm-smccc when SMCCC has a conduit; auxiliary arm_cca_guest.arm-rsi-dev.0 below it when RSI_VERSION answers over SMC, alias auxiliary:arm_cca_guest.arm-rsi-dev autoloads arm_cca_guest, which binds it; /sys/firmware/cca/realm_guest; no arm-cca-dev; no host device (3 patches); by Aneesh Kumar K.V (Arm); version v5; date 2026-05-14; message-id 20260514094030.42495-1-aneesh.kumar@kernel.org; quilt variants/smccc-aux-v5", DANone},
	{SMCCCAuxV4, "recipe: v4 as posted, arm-cca-dev kept (1/2) with the host DA series' arm-rmi-dev: platform arm-smccc always; auxiliary arm_cca_guest.arm-rsi-dev.0 when RSI_VERSION answers over SMC, aliased to arm_cca_guest, which binds it; arm_cca_host.arm-rmi-dev.0 when RMI_VERSION(2.0) succeeds, aliased to arm_cca_host, whose probe registers tsm0 only with DA in RMI feature register 2; upstream's arm-cca-dev still in a realm, unaliased (2 patches); by Aneesh Kumar K.V (Arm); version v4 1/2 (+ RFC v4 01/14 of the host DA series); date 2026-04-27; message-id 20260427061615.905018-1-aneesh.kumar@kernel.org; quilt variants/smccc-aux-v4", DAReg2Bit0},
	{SMCCCAuxV4NoLegacy, "recipe: v4 as posted with 2/2 (arm-cca-dev dropped) and the host DA series' arm-rmi-dev: platform arm-smccc always; auxiliary arm_cca_guest.arm-rsi-dev.0 when RSI_VERSION answers over SMC, aliased to arm_cca_guest, which binds it; arm_cca_host.arm-rmi-dev.0 when RMI_VERSION(2.0) succeeds, whose probe registers tsm0 only with DA in RMI feature register 2; no arm-cca-dev and no realm_guest, so systemd finds no realm (3 patches); by Aneesh Kumar K.V (Arm); version v4 1/2 and 2/2 (+ RFC v4 01/14 of the host DA series); date 2026-04-27; message-id 20260427061615.905018-1-aneesh.kumar@kernel.org; quilt variants/smccc-aux-v4-nolegacy", DAReg2Bit0},
	{DebianKernel, "Debian's prebuilt trixie-backports linux-image-7.3*-arm64 (measured: linux-image-7.3.4+deb13-arm64 7.3.4-1~bpo13+1) with its modules and the initramfs-tools initramfs its installation generates: upstream rsi.c and arm_cca_guest (m), virtio and ext4 as modules; no host side", DANone},
	{FauxTree, `recipe: proposal without a posted patch (Catalin Marinas, Greg KH "seems sane"): faux arm-smccc when SMCCC has a conduit; arm_cca_guest, loaded by a udev rule when /sys/firmware/cca/realm_guest reads 1, creates faux arm-rsi-dev below it with tsm/tsm0; no modalias; no arm-cca-dev; no host device (3 patches); userspace part: /etc/udev/rules.d/60-cca-realm-guest.rules; by Catalin Marinas (proposal, no patch); version proposal in the v5 thread; date 2026-05-14; message-id 20260514094030.42495-1-aneesh.kumar@kernel.org; quilt variants/faux-tree`, DANone},
	{TSMNull, "recipe: proposal without a posted patch (Jason Gunthorpe, Dan Williams; Jonathan Cameron objecting): built-in arm_cca_host asks RMI_VERSION(1.0) and RMI_FEATURES(0) bit 42 over SMC and, with DA, calls tsm_register(NULL): tsm0 under /sys/devices/virtual/tsm, no device, no modalias; realm side as stock 7.3 (arm-cca-dev) (1 patch); by Jason Gunthorpe, Dan Williams (proposal, no patch); version proposal in the RFC v1 11/38 thread; date 2025-07-31; message-id 20250731121133.GP26511@ziepe.ca; quilt variants/tsm-null", DAReg0Bit42},
	{RFC, "recipe: RFC v1 as posted (11, 12, 23, 24 of 38): platform arm-rmi-dev when the kernel runs at EL2, RMI_VERSION(1.0) succeeds and RMI feature register 0 has bit 42 (DA), bound by cca_tsm (arm_cca_host, alias platform:arm-rmi-dev) with tsm0 below it; realm: arm-cca-dev renamed platform arm-rsi-dev, bound by arm-cca-guest (alias platform:arm-rsi-dev), with tsm0 below it when RSI reports DA; no arm-cca-dev (4 patches); by Aneesh Kumar K.V (Arm); version RFC v1; date 2025-07-28; message-id 20250728135216.48084-1-aneesh.kumar@kernel.org; quilt variants/rfc", DAReg0Bit42},
}

// Register adds a variant read at run time from a patch series, so cell
// names, the matrix and the report know it like a built-in one, until
// the returned func removes it again (a command's end: tests run many
// commands in one process). A name taken by any known variant is refused.
// Not safe for concurrent use: the CLI registers before it runs cells.
func Register(info VariantInfo) (unregister func(), err error) {
	if !validVariantName(string(info.Name)) {
		return nil, fmt.Errorf("%w: variant name %q: use 1-40 of a-z 0-9 . _ -", ErrUnknown, info.Name)
	}
	for _, v := range Variants {
		if v.Name == info.Name {
			what := "a built-in variant's"
			if fromSeries[v.Name] {
				what = "another series' in this run"
			}
			return nil, fmt.Errorf("variant name %q is %s: name the series otherwise (name: in its recipe file)", info.Name, what)
		}
	}
	Variants = append(Variants, info)
	fromSeries[info.Name] = true
	return func() {
		Variants = slices.DeleteFunc(Variants, func(v VariantInfo) bool { return v.Name == info.Name })
		delete(fromSeries, info.Name)
	}, nil
}

func validVariantName(s string) bool {
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

// Role is what the VM is from the firmware's point of view.
type Role string

const (
	HostDA   Role = "host-da"   // KVM host whose RMM has Device Assignment
	HostNoDA Role = "host-noda" // KVM host whose RMM lacks it
	Realm    Role = "realm"     // realm guest (RSI answers)
	Plain    Role = "plain"     // ordinary guest, no RMM, no RSI
	// Host is a KVM host on real firmware: the RMM itself says whether it
	// has Device Assignment, so the model's DA/no-DA split does not exist.
	Host Role = "host"
)

// Roles lists the roles the rmi model answers, in report order.
var Roles = []Role{HostDA, HostNoDA, Realm, Plain}

// FirmwareRoles lists the roles real firmware answers.
var FirmwareRoles = []Role{Host}

// Firmware names a real Arm firmware build (TF-A + TF-RMM, images/firmware)
// that answers a cell's calls; "" means the rmi model answers.
type Firmware string

const (
	TFRMM09 Firmware = "tf-rmm-0.9" // TF-A v2.15 + TF-RMM v0.9: RMM 2.0
	TFRMM08 Firmware = "tf-rmm-0.8" // TF-A v2.14 + TF-RMM v0.8: RMM 1.x
)

// FirmwareInfo describes a firmware build in one line.
type FirmwareInfo struct {
	Name        Firmware
	Description string
}

// Firmwares lists the real firmware builds, newest first.
var Firmwares = []FirmwareInfo{
	{TFRMM09, "TF-A v2.15.0 + TF-RMM v0.9.0 (RMM 2.0) on QEMU's RME machine"},
	{TFRMM08, "TF-A v2.14.0 + TF-RMM v0.8.0 (RMM 1.0/1.1) on QEMU's RME machine"},
}

// Userspace is the Debian release inside the guest.
type Userspace string

const (
	Forky  Userspace = "forky"  // testing, systemd 262: detects CCA by arm-cca-dev
	Trixie Userspace = "trixie" // Debian 13, systemd 257: no CCA detection
)

// DefaultUserspace is the userspace a cell name without "@..." means.
const DefaultUserspace = Forky

// Userspaces lists the guest userspaces.
var Userspaces = []Userspace{Forky, Trixie}

// SystemdVersion is the major version of systemd each userspace ships.
func (u Userspace) SystemdVersion() int {
	switch u {
	case Trixie:
		return 257
	default:
		return 262
	}
}

// Cell is one point of the matrix. Firmware is "" for the model's cells.
type Cell struct {
	Variant   Variant
	Role      Role
	Userspace Userspace
	Firmware  Firmware
}

// String gives the canonical name, e.g. "faux/realm", "faux/realm@trixie"
// or "faux/host@tf-rmm-0.9".
func (c Cell) String() string {
	s := string(c.Variant) + "/" + string(c.Role)
	if c.Firmware != "" {
		s += "@" + string(c.Firmware)
	}
	if c.Userspace != "" && c.Userspace != DefaultUserspace {
		s += "@" + string(c.Userspace)
	}
	return s
}

// Real reports whether real firmware, not the rmi model, answers the cell.
func (c Cell) Real() bool { return c.Firmware != "" }

// Check reports a cell that cannot be booted: real firmware answers only
// the host role, and the model never answers it.
func (c Cell) Check() error {
	switch {
	case c.Firmware != "" && c.Role != Host:
		hint := "use role host"
		if c.Role == Realm || c.Role == Plain {
			hint = "real firmware answers only host cells; drop @" + string(c.Firmware)
		}
		return fmt.Errorf("%w: cell %s: on real firmware the RMM decides Device Assignment and only the host role exists (%s, e.g. %s/host@%s)",
			ErrUnknown, c, hint, c.Variant, c.Firmware)
	case c.Firmware == "" && c.Role == Host:
		return fmt.Errorf("%w: cell %s: role host needs real firmware (%s/host@%s); the model's host roles are host-da and host-noda",
			ErrUnknown, c, c.Variant, TFRMM09)
	}
	return nil
}

// FirmwareProfile is the rmi profile that answers as this cell's firmware
// does: the profile named after the real firmware build, else the role's.
func (c Cell) FirmwareProfile() string {
	if c.Firmware != "" {
		return string(c.Firmware)
	}
	return c.Role.FirmwareProfile()
}

// OnHostFirmware reports whether cell c boots on the testbed's own
// firmware in host mode (firmware/realm README, "Host mode"): the model's
// host roles (host-da, host-noda) of a kernel built from a recipe or a
// user's series. Such a kernel has none of the project's glue to read the
// model's answers from the command line, so the firmware below it
// answers its real SMCs (RMI_VERSION, RMI_FEATURES) from the model. The
// glue variants keep the command line; a prebuilt package keeps QEMU's
// own PSCI (nothing answers its RMI calls).
func (c Cell) OnHostFirmware() bool {
	return c.modelHost() && (FromRecipe(c.Variant) || FromSeries(c.Variant))
}

// modelHost reports whether c is a host the model answers (host-da,
// host-noda), not one on real firmware.
func (c Cell) modelHost() bool {
	return c.Firmware == "" && (c.Role == HostDA || c.Role == HostNoDA)
}

// NoRMIAnswerer says why nothing answers cell c's RMI calls, or "" when
// something may. The model's host roles (host-da, host-noda) reach the
// project's glue through the command line (cca_testbed.smc=) and a
// recipe's or series' kernel through the testbed's firmware in host mode
// (OnHostFirmware); a distribution's package has no glue and boots on
// QEMU's own PSCI, so on those cells nothing answers RMI and DA is never
// asked. Real firmware (host@tf-rmm-*) answers any kernel over SMC. Keep
// this in step with vm's machine and Cmdline, which pick what answers
// each cell.
func (c Cell) NoRMIAnswerer() string {
	if c.modelHost() && Prebuilt(c.Variant) {
		return "no RMI answerer (prebuilt kernel: model answers reach only the project glue)"
	}
	return ""
}

// FileName is String with characters safe in a file name ("faux_realm").
func (c Cell) FileName() string {
	return strings.ReplaceAll(c.String(), "/", "_")
}

// FirmwareProfile is the rmi profile a role boots with unless told otherwise.
func (r Role) FirmwareProfile() string {
	switch r {
	case HostDA:
		return "rmm-1.1"
	case HostNoDA:
		return "rmm-1.0"
	case Realm:
		return "realm"
	default:
		return "none"
	}
}

// ParseVariant checks s against the known variants.
func ParseVariant(s string) (Variant, error) {
	for _, v := range Variants {
		if string(v.Name) == s {
			return v.Name, nil
		}
	}
	return "", fmt.Errorf("%w: variant %q (known: %s)", ErrUnknown, s, VariantNames())
}

// ParseRole checks s against the known roles, the model's and real
// firmware's.
func ParseRole(s string) (Role, error) {
	all := append(append([]Role{}, Roles...), FirmwareRoles...)
	for _, r := range all {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("%w: role %q (known: %s)", ErrUnknown, s, join(all))
}

// ParseFirmware checks s against the known firmware builds.
func ParseFirmware(s string) (Firmware, error) {
	for _, f := range Firmwares {
		if string(f.Name) == s {
			return f.Name, nil
		}
	}
	return "", fmt.Errorf("%w: firmware %q (known: %s)", ErrUnknown, s, FirmwareNames())
}

// FirmwareNames lists the known firmware builds, comma separated.
func FirmwareNames() string {
	names := make([]Firmware, len(Firmwares))
	for i, f := range Firmwares {
		names[i] = f.Name
	}
	return join(names)
}

// ParseUserspace checks s against the known userspaces.
func ParseUserspace(s string) (Userspace, error) {
	for _, u := range Userspaces {
		if string(u) == s {
			return u, nil
		}
	}
	return "", fmt.Errorf("%w: userspace %q (known: %s)", ErrUnknown, s, join(Userspaces))
}

// Parse reads "variant/role[@firmware][@userspace]" and checks the
// combination (Check).
func Parse(s string) (Cell, error) {
	name, quals, _ := strings.Cut(s, "@")
	v, r, ok := strings.Cut(name, "/")
	if !ok {
		return Cell{}, fmt.Errorf("%w: cell %q: want variant/role[@firmware][@userspace], e.g. faux/realm or faux/host@%s", ErrUnknown, s, TFRMM09)
	}
	c := Cell{Userspace: DefaultUserspace}
	var err error
	if c.Variant, err = ParseVariant(v); err != nil {
		return Cell{}, err
	}
	if c.Role, err = ParseRole(r); err != nil {
		return Cell{}, err
	}
	if quals != "" || strings.HasSuffix(s, "@") {
		var seenFW, seenUS bool
		for _, q := range strings.Split(quals, "@") {
			if fw, err := ParseFirmware(q); err == nil && !seenFW {
				c.Firmware, seenFW = fw, true
				continue
			}
			if us, err := ParseUserspace(q); err == nil && !seenUS {
				c.Userspace, seenUS = us, true
				continue
			}
			return Cell{}, fmt.Errorf("%w: cell %q: qualifier %q is not a firmware (%s) or userspace (%s), or repeats one",
				ErrUnknown, s, q, FirmwareNames(), join(Userspaces))
		}
	}
	if err := c.Check(); err != nil {
		return Cell{}, err
	}
	return c, nil
}

// VariantNames lists the known variant names, comma separated.
func VariantNames() string {
	names := make([]Variant, len(Variants))
	for i, v := range Variants {
		names[i] = v.Name
	}
	return join(names)
}

func join[T ~string](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = string(x)
	}
	return strings.Join(s, ", ")
}

// Matrix is the default set of cells: every variant in every model role on
// the default userspace, every realm cell on trixie (whose systemd never
// detects CCA, which is the point of measuring it), and every variant's
// host on each real firmware build.
func Matrix() []Cell {
	var cells []Cell
	for _, v := range Variants {
		for _, r := range Roles {
			cells = append(cells, Cell{Variant: v.Name, Role: r, Userspace: DefaultUserspace})
		}
	}
	for _, v := range Variants {
		cells = append(cells, Cell{Variant: v.Name, Role: Realm, Userspace: Trixie})
	}
	for _, f := range Firmwares {
		for _, v := range Variants {
			cells = append(cells, Cell{Variant: v.Name, Role: Host, Userspace: DefaultUserspace, Firmware: f.Name})
		}
	}
	return cells
}
