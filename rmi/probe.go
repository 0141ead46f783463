package rmi

// Decisions are the three registration questions the testbed's kernel glue
// asks the firmware (kernel-configs/README.md, "Firmware answers").
type Decisions struct {
	// RMI: RMI_VERSION(1.0) returned RMI_SUCCESS; there is an RMM the
	// host can drive.
	RMI bool
	// DA: RMI, and RMI_FEATURES(0) has bit 42 set (the RFC's check). An
	// RMM 2.0 reports DA in register 2 instead, so this stays false there.
	DA bool
	// RSI: RSI_VERSION(1.0) returned RSI_SUCCESS; this is a realm.
	RSI bool
	// RMI20: RMI_VERSION(2.0) returned RMI_SUCCESS: an RMM 2.0, which the
	// host series of 2026 (RMM 2.0, DA in register 2) asks for. Not
	// what the glue decides on; variants/smccc-aux-v4 does.
	RMI20 bool
	// DAReg2: RMI20, and RMI_FEATURES(2) has bit 0 (DA) set, the check
	// of the host DA series of 2026 (RFC v4 01/14).
	DAReg2 bool
	// SMCCC11: the kernel has an SMCCC 1.1+ conduit (Profile.SMCCC11).
	// Probe does not ask it (it records RMI and RSI calls only); the
	// caller copies it from the profile.
	SMCCC11 bool
	// EL2: the kernel was entered at EL2 (is_hyp_mode_available()), as
	// real firmware enters a host; the testbed's own firmware and QEMU's
	// virt machine enter it at EL1. Probe does not ask it; the caller
	// knows how the cell boots.
	EL2 bool
	// RealmDA: RSI, and RSI_FEATURES(0) has bit 0 set, where the RFC's
	// realm side looks for Device Assignment (RSIReg0DA). Probe does not
	// ask it, as for SMCCC11; the caller asks the model.
	RealmDA bool
}

// The revision the glue requests, as Linux does (RSI_ABI_VERSION 1.0, and
// the host series' RMI_ABI_VERSION 1.0).
var probeRevision = Revision(1, 0)

// RecordedRevisions are the RMI revisions the glue asks about after 1.0,
// and RecordedFeatureRegs the feature registers after 0: no decision reads
// their answers, they are asked so a run records what an RMM 1.1 or 2.0
// tells a kernel that asks (RMM 2.0 keeps DA in register 2), and so the
// model is held against real firmware on every one of them.
var (
	RecordedRevisions   = []uint64{Revision(1, 1), Revision(2, 0)}
	RecordedFeatureRegs = []uint64{1, 2, 3, 4}
)

// Probe asks c exactly what the kernel glue asks, in the same order:
// RMI_VERSION(1.0), RMI_VERSION of each RecordedRevisions, RMI_FEATURES(0),
// RMI_FEATURES of each RecordedFeatureRegs, RSI_VERSION(1.0). Every call is
// always asked, so the Table is a complete answer sheet for the glue
// whatever its short-cuts. It returns the decisions, read from the three
// questions the RFC's code asks, and the answers it observed.
//
// RMI_FEATURES returns its status in x0 and the register in x1 (TF-RMM
// smc_read_feature_register; Linux rmi_features() reads res.a1), so DA is
// read from x1.
func Probe(c Caller) (Decisions, Table) {
	t := make(Table, 0, 3+len(RecordedRevisions)+len(RecordedFeatureRegs))
	ask := func(fid uint32, arg uint64) [4]uint64 {
		// The glue passes x2 = x3 = 0, so what comes back is defined.
		r := c.SMC(fid, arg, 0, 0)
		t = append(t, Answer{FID: fid, Arg: arg, Ret: r})
		return r
	}
	v := ask(RMIVersion, probeRevision)
	var v20, f2 [4]uint64
	for _, r := range RecordedRevisions {
		if a := ask(RMIVersion, r); r == Revision(2, 0) {
			v20 = a
		}
	}
	f := ask(RMIFeatures, 0)
	for _, i := range RecordedFeatureRegs {
		if a := ask(RMIFeatures, i); i == 2 {
			f2 = a
		}
	}
	s := ask(RSIVersion, probeRevision)

	var d Decisions
	d.RMI20 = v20[0]&0xFF == RMISuccess
	d.DAReg2 = d.RMI20 && f2[0]&0xFF == RMISuccess && DA2(f2[1])
	// The status is the low byte of x0; NotSupported (all ones) fails it.
	d.RMI = v[0]&0xFF == RMISuccess
	d.DA = d.RMI && f[0]&0xFF == RMISuccess && DA(f[1])
	d.RSI = s[0] == RSISuccess
	return d, t
}
