// Package rmi is a pure-Go model of the two firmware interfaces of the Arm
// Realm Management Monitor (RMM): the Realm Management Interface (RMI) that
// a host kernel calls, and the Realm Services Interface (RSI) that a realm
// guest calls. It stands in for TF-RMM, which cannot run on the testbed's
// machines (no RME hardware, no packaged TF-A/TF-RMM image), so that the
// registration decisions a kernel takes from firmware answers can be
// reproduced, recorded and replayed without firmware.
//
// The numbers come from the RMM specification (Arm DEN0137) as implemented
// by Linux (arch/arm64/include/asm/rsi_smc.h, arch/arm64/include/asm/rmi_smc.h
// of the CCA host series, include/linux/arm-smccc-rmi.h) and TF-RMM
// (lib/smc/include/smc-rmi.h and smc-rsi.h at v0.7, v0.8 and the RMM 2.0
// code base; smc_version() and smc_read_feature_register()). Where the releases disagree (status numbering, the
// place of the DA feature bit) the model has one Profile per firmware
// generation rather than one blended answer.
//
// Everything is in memory: a Model is a Caller, Probe asks a Caller the
// three questions the testbed's kernel glue asks, and a Table of recorded
// answers renders to (and parses from) the kernel command line parameter
// cca_testbed.smc that carries them into a guest.
//
// Tests: go test ./rmi (add -fuzz FuzzParseCmdline for the parser, -bench . for Probe)
package rmi

import (
	"fmt"
	"strconv"
)

// Caller issues one SMCCC firmware call. fid is the SMC function ID, args
// are x1.. in order, and the result is x0..x3. Real calls return more
// registers for a few functions (RSI_MEASUREMENT_READ uses x1..x8); the
// model offers Go methods for those instead of widening this interface.
type Caller interface {
	SMC(fid uint32, args ...uint64) [4]uint64
}

// NotSupported is SMCCC_RET_NOT_SUPPORTED (-1) in x0: the function ID is
// not implemented at all, as on a machine with no RMM, or when a host calls
// an RSI function.
const NotSupported uint64 = 0xFFFFFFFFFFFFFFFF

// Unknown is what a call that nothing implements returns: x0 NotSupported
// and x1..x3 as the caller passed them (missing arguments as 0). TF-A
// (SMC_UNK), QEMU's own PSCI and the realm firmware write only x0, so the
// caller's registers come back as they went in; measured on TF-A v2.15
// with TF-RMM v0.9: RSI_VERSION(0x10000) from the host returns
// x0=-1 x1=0x10000.
func Unknown(args ...uint64) [4]uint64 {
	r := [4]uint64{NotSupported}
	copy(r[1:], args)
	return r
}

// fidBase makes an SMCCC fast call, SMC64, standard-service owner ID:
// bit 31 fast, bit 30 SMC64, owner 4 in bits 29:24 (SMCCC, ARM_SMCCC_CALL_VAL
// in include/linux/arm-smccc.h). RMI and RSI numbers are in the standard
// secure service range 0x150..0x1CF.
const fidBase uint32 = 0xC4000000

// SMC function IDs of the RMI (host side; TF-RMM smc-rmi.h "FID: 0xC4000150",
// "FID: 0xC4000165") and the RSI (realm side; Linux rsi_smc.h SMC_RSI_FID(n)).
const (
	RMIVersion  = fidBase | 0x150
	RMIFeatures = fidBase | 0x165

	RSIVersion                  = fidBase | 0x190
	RSIFeatures                 = fidBase | 0x191
	RSIMeasurementRead          = fidBase | 0x192
	RSIMeasurementExtend        = fidBase | 0x193
	RSIAttestationTokenInit     = fidBase | 0x194
	RSIAttestationTokenContinue = fidBase | 0x195
	RSIRealmConfig              = fidBase | 0x196
	RSIIPAStateSet              = fidBase | 0x197
	RSIIPAStateGet              = fidBase | 0x198
	RSIHostCall                 = fidBase | 0x199
)

// FIDName names a function ID for messages, e.g. "RMI_VERSION"; unknown IDs
// are printed in hex.
func FIDName(fid uint32) string {
	switch fid {
	case RMIVersion:
		return "RMI_VERSION"
	case RMIFeatures:
		return "RMI_FEATURES"
	case RSIVersion:
		return "RSI_VERSION"
	case RSIFeatures:
		return "RSI_FEATURES"
	case RSIMeasurementRead:
		return "RSI_MEASUREMENT_READ"
	case RSIMeasurementExtend:
		return "RSI_MEASUREMENT_EXTEND"
	case RSIAttestationTokenInit:
		return "RSI_ATTESTATION_TOKEN_INIT"
	case RSIAttestationTokenContinue:
		return "RSI_ATTESTATION_TOKEN_CONTINUE"
	case RSIRealmConfig:
		return "RSI_REALM_CONFIG"
	case RSIIPAStateSet:
		return "RSI_IPA_STATE_SET"
	case RSIIPAStateGet:
		return "RSI_IPA_STATE_GET"
	case RSIHostCall:
		return "RSI_HOST_CALL"
	}
	return hex32(fid)
}

func isRMI(fid uint32) bool { return fid >= fidBase|0x150 && fid <= fidBase|0x18F }
func isRSI(fid uint32) bool { return fid >= fidBase|0x190 && fid <= fidBase|0x1AF }

// RMI status codes. An RMI return is status in bits 7:0 and an index in
// bits 15:8 (RmiCommandReturnCode). Codes 0..4 are RMM 1.0 and never moved.
const (
	RMISuccess     uint64 = 0
	RMIErrorInput  uint64 = 1
	RMIErrorRealm  uint64 = 2
	RMIErrorRec    uint64 = 3
	RMIErrorRTT    uint64 = 4
	RMIErrorRTTAux uint64 = 7
)

// The codes TF-RMM added for RMM 1.1 were first numbered DEVICE 5 /
// NOT_SUPPORTED 6 (v0.7.0) and then swapped to NOT_SUPPORTED 5 / DEVICE 6
// (v0.8.0 onwards, kept by the RMM 2.0 code base). Software built against
// one numbering misreads the other, so both are named.
const (
	RMIErrorDeviceV07       uint64 = 5
	RMIErrorNotSupportedV07 uint64 = 6
	RMIErrorNotSupported    uint64 = 5 // TF-RMM v0.8.0 and later
	RMIErrorDevice          uint64 = 6 // TF-RMM v0.8.0 and later
)

// RMIStatus splits an RMI x0 into its status and index fields.
func RMIStatus(x0 uint64) (status, index uint8) {
	return uint8(x0), uint8(x0 >> 8)
}

// RSI status codes (Linux rsi_smc.h RSI_SUCCESS .. RSI_ERROR_UNKNOWN). RSI
// returns the whole of x0 as the status.
const (
	RSISuccess      uint64 = 0
	RSIErrorInput   uint64 = 1
	RSIErrorState   uint64 = 2
	RSIIncomplete   uint64 = 3
	RSIErrorUnknown uint64 = 4
)

// Numbering says which status numbering a firmware uses for the codes
// above 4.
type Numbering int

const (
	// Numbering10 is RMM 1.0: only codes 0..4 exist.
	Numbering10 Numbering = iota
	// NumberingTFRMM07 is TF-RMM v0.7.0: DEVICE 5, NOT_SUPPORTED 6.
	NumberingTFRMM07
	// NumberingTFRMM08 is TF-RMM v0.8.0 and later: NOT_SUPPORTED 5, DEVICE 6.
	NumberingTFRMM08
)

// String names the numbering.
func (n Numbering) String() string {
	switch n {
	case Numbering10:
		return "rmm-1.0"
	case NumberingTFRMM07:
		return "tf-rmm-v0.7"
	case NumberingTFRMM08:
		return "tf-rmm-v0.8"
	}
	return "numbering(" + itoa(int(n)) + ")"
}

// StatusName names an RMI status code under this numbering, e.g.
// "RMI_ERROR_NOT_SUPPORTED"; codes the numbering lacks print as numbers.
func (n Numbering) StatusName(status uint8) string {
	switch uint64(status) {
	case RMISuccess:
		return "RMI_SUCCESS"
	case RMIErrorInput:
		return "RMI_ERROR_INPUT"
	case RMIErrorRealm:
		return "RMI_ERROR_REALM"
	case RMIErrorRec:
		return "RMI_ERROR_REC"
	case RMIErrorRTT:
		return "RMI_ERROR_RTT"
	}
	switch {
	case n == NumberingTFRMM07 && uint64(status) == RMIErrorDeviceV07,
		n == NumberingTFRMM08 && uint64(status) == RMIErrorDevice:
		return "RMI_ERROR_DEVICE"
	case n == NumberingTFRMM07 && uint64(status) == RMIErrorNotSupportedV07,
		n == NumberingTFRMM08 && uint64(status) == RMIErrorNotSupported:
		return "RMI_ERROR_NOT_SUPPORTED"
	case n != Numbering10 && uint64(status) == RMIErrorRTTAux:
		return "RMI_ERROR_RTT_AUX"
	}
	return "RMI_STATUS_" + itoa(int(status))
}

// NotSupportedStatus is this numbering's RMI_ERROR_NOT_SUPPORTED, and false
// under RMM 1.0, which has no such code.
func (n Numbering) NotSupportedStatus() (uint64, bool) {
	switch n {
	case NumberingTFRMM07:
		return RMIErrorNotSupportedV07, true
	case NumberingTFRMM08:
		return RMIErrorNotSupported, true
	}
	return 0, false
}

// Revision encodes an interface revision as RMI_VERSION and RSI_VERSION
// take and return it: major in bits 30:16, minor in bits 15:0
// (MAKE_RMI_REVISION in TF-RMM, RSI_ABI_VERSION in Linux).
func Revision(major, minor uint16) uint64 {
	return uint64(major)<<16 | uint64(minor)
}

// SplitRevision is the inverse of Revision. Bits above 31 are ignored, as
// the spec defines them as zero.
func SplitRevision(r uint64) (major, minor uint16) {
	return uint16(r>>16) & 0x7FFF, uint16(r)
}

// RevisionString prints a revision as "major.minor".
func RevisionString(r uint64) string {
	major, minor := SplitRevision(r)
	return itoa(int(major)) + "." + itoa(int(minor))
}

func itoa(n int) string { return strconv.Itoa(n) }

func hex32(v uint32) string { return fmt.Sprintf("%#08x", v) }
