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

// The RMM 1.0 register 0 the host profiles share: values as TF-RMM reports
// them on QEMU's "max" CPU (48-bit stage 2, PMU with 6 counters, SHA-256
// and SHA-512, a GICv3 with 4 list registers, reported as "number minus
// one"). Only DA and the hash bits matter to the testbed's decisions.
var rmm10Reg0 = reg(map[Field]uint64{
	Reg0S2SZ:         48,
	Reg0NumBPs:       5,
	Reg0NumWPs:       3,
	Reg0PMUEn:        1,
	Reg0PMUNumCtrs:   6,
	Reg0HashSHA256:   1,
	Reg0HashSHA512:   1,
	Reg0GICv3NumLRs:  3,
	Reg0MaxRecsOrder: 6,
})

func builtinProfiles() []Profile {
	return []Profile{
		{
			Name:        "none",
			Description: "no RMM and not a realm: every RMI and RSI call answers SMCCC NOT_SUPPORTED",
		},
		{
			Name:         "rmm-1.0",
			Description:  "RMM 1.0 (TF-RMM v0.4..v0.6): RMI 1.0, feature register 0 without DA",
			RMIRevisions: []uint64{Revision(1, 0)},
			RMIFeatures:  []uint64{rmm10Reg0},
			Numbering:    Numbering10,
		},
		{
			Name:         "rmm-1.1",
			Description:  "RMM 1.1-alpha (TF-RMM v0.8): RMI 1.0 and 1.1, DA in feature register 0 bit 42, NOT_SUPPORTED=5",
			RMIRevisions: []uint64{Revision(1, 0), Revision(1, 1)},
			RMIFeatures:  []uint64{Reg0DA.Set(rmm10Reg0, 1)},
			Numbering:    NumberingTFRMM08,
		},
		{
			Name:         "rmm-2.0",
			Description:  "RMM 2.0 (TF-RMM v0.9): RMI 2.0 only, hash bits in register 1, DA in register 2 bit 0",
			RMIRevisions: []uint64{Revision(2, 0)},
			RMIFeatures: []uint64{
				// Register 0 keeps only bits 31:0 of the 1.0 layout.
				rmm10Reg0 & 0xFFFFFFFF,
				reg(map[Field]uint64{Reg1GranSz4K: 1, Reg1HashSHA256: 1, Reg1HashSHA512: 1, Reg1MaxRecsOrder: 6}),
				Reg2DA.Set(0, 1),
			},
			Numbering: NumberingTFRMM08,
		},
		{
			Name:         "realm",
			Description:  "a realm guest's view of an RMM 1.0: RSI 1.0 answers, RMI calls NOT_SUPPORTED",
			RSIRevisions: []uint64{Revision(1, 0)},
			RSIFeatures:  []uint64{0},
			// IPA width 32: the memory map the realm firmware builds on
			// QEMU virt (firmware/realm/README.md); shared bit 31.
			Realm: RealmConfig{IPAWidth: 32, HashAlgo: HashSHA256},
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
// rmm-2.0, realm.
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
