package rmi

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrUnknownProfile is wrapped by LookupProfile when no profile has the name.
var ErrUnknownProfile = errors.New("unknown firmware profile")

// Profile describes what one kind of firmware answers. The zero value is
// the "none" profile: no RMM at all. Slices are never shared between the
// profiles Profiles returns, so callers may modify their copy.
type Profile struct {
	Name, Description string

	// RMIRevisions are the RMI revisions the RMM implements, ascending.
	// Empty means no RMI: every RMI call answers NotSupported, which is
	// what a host kernel sees without an RMM and what a realm sees.
	RMIRevisions []uint64
	// RMIFeatures[i] answers RMI_FEATURES(i). Indices past the end read
	// as zero with RMI_SUCCESS, as TF-RMM does for unimplemented registers.
	RMIFeatures []uint64
	// Numbering is the RMI status numbering above code 4. The modelled
	// calls only ever answer codes 0..4; the numbering says how to name
	// the others when printing recorded answers.
	Numbering Numbering

	// RSIRevisions are the RSI revisions implemented, ascending. Empty
	// means not in a realm: every RSI call answers NotSupported.
	RSIRevisions []uint64
	// RSIFeatures[i] answers RSI_FEATURES(i); past the end reads as zero.
	RSIFeatures []uint64
	// Realm is what RSI_REALM_CONFIG reports and which hash algorithm
	// the measurements use.
	Realm RealmConfig

	// SMCCC11: the firmware below the kernel reports SMCCC 1.1 or later
	// (PSCI_FEATURES(SMCCC_VERSION), then SMCCC_VERSION), so Linux keeps
	// PSCI's conduit as the SMCCC conduit; with SMCCC 1.0 it has none
	// (psci_init_smccc never calls arm_smccc_version_init). The realm
	// firmware and TF-A do; QEMU's own PSCI, under the model's host and
	// plain cells, answers NOT_SUPPORTED. Only code that keys on the
	// conduit sees it (v5's arm-smccc device).
	SMCCC11 bool
}

// HashAlgo is RsiHashAlgorithm / RmiHashAlgorithm: 0 SHA-256, 1 SHA-512
// (TF-RMM smc-rmi.h RMI_HASH_SHA_256/512, smc-rsi.h RSI_HASH_SHA_256/512;
// Linux rsi_smc.h of the DA series).
type HashAlgo uint64

const (
	HashSHA256 HashAlgo = 0
	HashSHA512 HashAlgo = 1
)

// String names the algorithm the way the CCA token's hash-algo-id claim
// does ("sha-256", "sha-512").
func (h HashAlgo) String() string {
	switch h {
	case HashSHA256:
		return "sha-256"
	case HashSHA512:
		return "sha-512"
	}
	return fmt.Sprintf("hash-algo(%d)", uint64(h))
}

// Size is the digest size in bytes, 0 for an unknown algorithm.
func (h HashAlgo) Size() int {
	switch h {
	case HashSHA256:
		return 32
	case HashSHA512:
		return 64
	}
	return 0
}

// RealmConfig is the part of the RsiRealmConfig structure (one 4 KiB
// granule) that RSI_REALM_CONFIG fills in: ipa_width at offset 0x0,
// hash_algo at 0x8 and the Realm Personalization Value at 0x200 (Linux
// rsi_smc.h struct realm_config).
type RealmConfig struct {
	IPAWidth uint64
	HashAlgo HashAlgo
	RPV      [64]byte
}

// reg builds a register value from field settings.
func reg(fields map[Field]uint64) uint64 {
	var r uint64
	for f, v := range fields {
		r = f.Set(r, v)
	}
	return r
}

// Feature registers as the real firmware answers them on QEMU 10's RME
// machine (-cpu max,x-rme=on,pauth-impdef=on), read by the testbed's glue
// and by a bare probe on 2026-11-28 (kernel-configs/README.md, README.md
// "Real Arm firmware"). Register 0 of TF-RMM v0.8.0: S2SZ 52, LPA2, SVE
// with VL field 15, 6 breakpoints and 4 watchpoints (fields are "number
// minus one"), PMU with 6 counters, SHA-256 and SHA-512, 4 GICv3 list
// registers (field 3), MAX_RECS_ORDER 10, no DA.
const (
	tfrmm08Reg0 uint64 = 0x28f34317f34
	// TF-RMM v0.9.0 (RMM 2.0): register 0 keeps S2SZ, LPA2, SVE and the
	// debug fields (its PMU fields are compiled out); register 1 holds
	// the 4K granule, SHA-256, SHA-512, MAX_RECS_ORDER 10, L0GPTSZ and
	// PPS; register 2 is DA, cleared because the RMM found no SMMU;
	// register 3 the planes; register 4 the MEC count (0 on QEMU).
	tfrmm09Reg0 uint64 = 0x317f34
	tfrmm09Reg1 uint64 = 0x142a9
	tfrmm09Reg3 uint64 = 0x3
)

// rmm10Reg0 is register 0 of the RMM 1.x host profiles: what TF-RMM v0.8.0
// reports on the same QEMU CPU the model's cells boot.
var rmm10Reg0 = tfrmm08Reg0

func builtinProfiles() []Profile {
	return []Profile{
		{
			Name:        "none",
			Description: "no RMM and not a realm: every RMI and RSI call answers SMCCC NOT_SUPPORTED",
		},
		{
			Name:         "rmm-1.0",
			Description:  "RMM 1.0: RMI 1.0 only, feature register 0 without DA (as TF-RMM v0.8.0 built by default answers on QEMU)",
			RMIRevisions: []uint64{Revision(1, 0)},
			RMIFeatures:  []uint64{rmm10Reg0},
			Numbering:    Numbering10,
		},
		{
			Name:         "rmm-1.1",
			Description:  "RMM 1.1-alpha layout: RMI 1.0 and 1.1, DA in feature register 0 bit 42 (TF-RMM v0.8 with RMM_V1_1, which does not boot on QEMU), NOT_SUPPORTED=5",
			RMIRevisions: []uint64{Revision(1, 0), Revision(1, 1)},
			RMIFeatures:  []uint64{Reg0DA.Set(rmm10Reg0, 1)},
			Numbering:    NumberingTFRMM08,
		},
		{
			Name:         "rmm-2.0",
			Description:  "RMM 2.0 layout: RMI 2.0 only, hash bits in register 1, DA set in register 2 bit 0 (TF-RMM v0.9's answers with an SMMU, which QEMU's TF-A does not describe)",
			RMIRevisions: []uint64{Revision(2, 0)},
			RMIFeatures:  []uint64{tfrmm09Reg0, tfrmm09Reg1, Reg2DA.Set(0, 1), tfrmm09Reg3},
			Numbering:    NumberingTFRMM08,
		},
		{
			Name:         "realm",
			Description:  "a realm guest's view of an RMM 1.0: RSI 1.0 answers, RMI calls NOT_SUPPORTED",
			RSIRevisions: []uint64{Revision(1, 0)},
			RSIFeatures:  []uint64{0},
			// IPA width 32: the memory map the realm firmware builds on
			// QEMU virt (firmware/realm/README.md); shared bit 31.
			Realm: RealmConfig{IPAWidth: 32, HashAlgo: HashSHA256},
			// firmware/realm answers SMCCC_VERSION itself (1.1).
			SMCCC11: true,
		},
		{
			Name:         "realm-da",
			Description:  "as realm, with Device Assignment in RSI feature register 0 bit 0, where RFC v1 24/38 looks for it (no released RMM answers a realm so)",
			RSIRevisions: []uint64{Revision(1, 0)},
			RSIFeatures:  []uint64{RSIReg0DA.Set(0, 1)},
			Realm:        RealmConfig{IPAWidth: 32, HashAlgo: HashSHA256},
			SMCCC11:      true,
		},
		{
			Name:         "tf-rmm-0.9",
			Description:  "TF-A v2.15.0 + TF-RMM v0.9.0 on QEMU's RME machine, as measured: RMI 2.0 only, no DA (no SMMU list in the boot manifest)",
			RMIRevisions: []uint64{Revision(2, 0)},
			RMIFeatures:  []uint64{tfrmm09Reg0, tfrmm09Reg1, 0, tfrmm09Reg3},
			Numbering:    NumberingTFRMM08,
			SMCCC11:      true, // TF-A's SMCCC_VERSION
		},
		{
			Name:         "tf-rmm-0.8",
			Description:  "TF-A v2.14.0 + TF-RMM v0.8.0 on QEMU's RME machine, as measured: RMI 1.0 only (RMM_V1_1 off), no DA",
			RMIRevisions: []uint64{Revision(1, 0)},
			RMIFeatures:  []uint64{tfrmm08Reg0},
			Numbering:    NumberingTFRMM08,
			SMCCC11:      true, // TF-A's SMCCC_VERSION
		},
	}
}

func (p Profile) clone() Profile {
	p.RMIRevisions = slices.Clone(p.RMIRevisions)
	p.RMIFeatures = slices.Clone(p.RMIFeatures)
	p.RSIRevisions = slices.Clone(p.RSIRevisions)
	p.RSIFeatures = slices.Clone(p.RSIFeatures)
	return p
}

// Profiles lists the built-in firmware profiles: none, rmm-1.0, rmm-1.1,
// rmm-2.0, realm, realm-da, and the measured tf-rmm-0.9 and tf-rmm-0.8 (named after
// the real firmware builds they stand in for, cell.Firmware).
func Profiles() []Profile {
	return builtinProfiles()
}

// ProfileNames lists the built-in profile names in order.
func ProfileNames() []string {
	var names []string
	for _, p := range builtinProfiles() {
		names = append(names, p.Name)
	}
	return names
}

// LookupProfile returns the built-in profile with this name, or an error
// wrapping ErrUnknownProfile that lists the known names.
func LookupProfile(name string) (Profile, error) {
	for _, p := range builtinProfiles() {
		if p.Name == name {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownProfile, name, strings.Join(ProfileNames(), ", "))
}
