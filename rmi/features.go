package rmi

// Field is one field of a feature register: Width bits starting at Shift.
// The layouts below are those of TF-RMM's smc-rmi.h
// (RMI_FEATURE_REGISTER_<n>_<NAME>_SHIFT/_WIDTH) at the named revisions.
type Field struct {
	Name         string
	Shift, Width uint
}

// Bits extracts width bits of reg starting at shift: the generic field
// extractor (EXTRACT() in TF-RMM, FIELD_GET() in Linux).
func Bits(reg uint64, shift, width uint) uint64 {
	if width == 0 || shift >= 64 {
		return 0
	}
	if width >= 64 {
		return reg >> shift
	}
	return (reg >> shift) & (1<<width - 1)
}

// Get reads the field from reg.
func (f Field) Get(reg uint64) uint64 { return Bits(reg, f.Shift, f.Width) }

// Set returns reg with the field replaced by v (truncated to the width).
func (f Field) Set(reg, v uint64) uint64 {
	mask := uint64(1<<f.Width-1) << f.Shift
	if f.Width >= 64 {
		mask = ^uint64(0)
	}
	return reg&^mask | (v<<f.Shift)&mask
}

// Feature register 0 as RMM 1.0 defines it ([63:42] reserved), plus the DA
// bit that the RMM 1.1-alpha layout (TF-RMM v0.7.0..v0.8.0) put at bit 42.
// The hash, GIC and MAX_RECS fields live here only up to RMM 1.1.
var (
	Reg0S2SZ         = Field{"S2SZ", 0, 8}
	Reg0LPA2         = Field{"LPA2", 8, 1}
	Reg0SVEEn        = Field{"SVE_EN", 9, 1}
	Reg0SVEVL        = Field{"SVE_VL", 10, 4}
	Reg0NumBPs       = Field{"NUM_BPS", 14, 6}
	Reg0NumWPs       = Field{"NUM_WPS", 20, 6}
	Reg0PMUEn        = Field{"PMU_EN", 26, 1}
	Reg0PMUNumCtrs   = Field{"PMU_NUM_CTRS", 27, 5}
	Reg0HashSHA256   = Field{"HASH_SHA_256", 32, 1}
	Reg0HashSHA512   = Field{"HASH_SHA_512", 33, 1}
	Reg0GICv3NumLRs  = Field{"GICV3_NUM_LRS", 34, 4}
	Reg0MaxRecsOrder = Field{"MAX_RECS_ORDER", 38, 4}
	Reg0DA           = Field{"DA_EN", 42, 1} // RMM 1.1-alpha only
)

// Registers 1 and 2 as the RMM 2.0 code base (TF-RMM v0.9.0) lays them out:
// the granule sizes, hash algorithms and MAX_RECS_ORDER moved to register 1,
// and Device Assignment moved to register 2 bit 0.
var (
	Reg1GranSz4K     = Field{"RMI_GRAN_SZ_4K", 0, 1}
	Reg1GranSz16K    = Field{"RMI_GRAN_SZ_16K", 1, 1}
	Reg1GranSz64K    = Field{"RMI_GRAN_SZ_64K", 2, 1}
	Reg1HashSHA256   = Field{"HASH_SHA_256", 3, 1}
	Reg1HashSHA384   = Field{"HASH_SHA_384", 4, 1}
	Reg1HashSHA512   = Field{"HASH_SHA_512", 5, 1}
	Reg1MaxRecsOrder = Field{"MAX_RECS_ORDER", 6, 4}
	Reg2DA           = Field{"DA_EN", 0, 1}
	Reg2DACoh        = Field{"DA_COH", 1, 1}
)

// RSIReg0DA is Device Assignment in RSI feature register 0 as the RFC's
// realm side (v1 24/38, RSI_FEATURE_REGISTER_0_DA) reads it.
var RSIReg0DA = Field{"DA", 0, 1}

// DA reports the Device Assignment bit where the RFC host code looks for
// it: feature register 0, bit 42 (RMM 1.1-alpha layout). Against an RMM
// 2.0 this is always false, because DA moved to register 2 (see DA2).
func DA(reg0 uint64) bool { return Reg0DA.Get(reg0) == 1 }

// DA2 reports the Device Assignment bit of the RMM 2.0 layout: feature
// register 2, bit 0.
func DA2(reg2 uint64) bool { return Reg2DA.Get(reg2) == 1 }

// Reg0Fields lists the RMM 1.0 fields of register 0 in bit order, for
// printing a register.
var Reg0Fields = []Field{
	Reg0S2SZ, Reg0LPA2, Reg0SVEEn, Reg0SVEVL, Reg0NumBPs, Reg0NumWPs,
	Reg0PMUEn, Reg0PMUNumCtrs, Reg0HashSHA256, Reg0HashSHA512,
	Reg0GICv3NumLRs, Reg0MaxRecsOrder,
}
