package rmi

import (
	"slices"
	"sync"
)

// Model answers firmware calls the way the RMM described by its Profile
// would. It is safe for concurrent use: the realm state it keeps
// (measurements, an attestation token in progress, what it wrote into realm
// memory) is behind one mutex, as the RMM serialises calls per REC.
type Model struct {
	p Profile

	mu    sync.Mutex
	realm realmState
}

var _ Caller = (*Model)(nil)

// New returns a model of the firmware p describes. The profile is copied,
// so later changes to p do not affect the model.
func New(p Profile) *Model {
	m := &Model{p: p.clone()}
	m.realm.init(m.p.Realm, len(m.p.RSIRevisions) > 0)
	return m
}

// Profile returns a copy of the profile the model was built from.
func (m *Model) Profile() Profile { return m.p.clone() }

// SMC answers one call. RMI calls on a profile without RMI, RSI calls on a
// profile without RSI, and function IDs outside both ranges answer
// NotSupported with the arguments left in x1..x3 (Unknown). RMI and RSI functions the model does not implement (all RMI
// functions except VERSION and FEATURES; RSI IPA_STATE_* and HOST_CALL)
// answer NotSupported too: the testbed never needs them, and a made-up
// success would be a lie the snapshot could not expose.
func (m *Model) SMC(fid uint32, args ...uint64) [4]uint64 {
	arg := func(i int) uint64 {
		if i < len(args) {
			return args[i]
		}
		return 0
	}
	switch {
	case isRMI(fid) && len(m.p.RMIRevisions) > 0:
		switch fid {
		case RMIVersion:
			return version(arg(0), m.p.RMIRevisions, RMISuccess, RMIErrorInput)
		case RMIFeatures:
			return [4]uint64{RMISuccess, regAt(m.p.RMIFeatures, arg(0))}
		}
	case isRSI(fid) && len(m.p.RSIRevisions) > 0:
		switch fid {
		case RSIVersion:
			return version(arg(0), m.p.RSIRevisions, RSISuccess, RSIErrorInput)
		case RSIFeatures:
			return [4]uint64{RSISuccess, regAt(m.p.RSIFeatures, arg(0))}
		default:
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.realm.call(fid, args)
		}
	}
	return Unknown(args...)
}

func regAt(regs []uint64, i uint64) uint64 {
	if i < uint64(len(regs)) {
		return regs[i]
	}
	return 0
}

// version implements RMI_VERSION and RSI_VERSION as the RMM specification
// (DEN0137, the RMI_VERSION and RSI_VERSION command descriptions) and
// TF-RMM's smc_version() define them: when the requested revision is
// implemented, status is SUCCESS and lower is the requested revision;
// otherwise status is ERROR_INPUT and lower is the highest implemented
// revision below the requested one. higher is always the highest
// implemented revision. When nothing implemented is below the request
// (asking an RMI-2.0-only RMM for 1.0) the spec leaves lower without a
// candidate; TF-RMM answers its highest revision there, and so do we, which
// keeps lower <= higher.
func version(req uint64, revs []uint64, success, errInput uint64) [4]uint64 {
	higher := revs[len(revs)-1]
	if slices.Contains(revs, req) {
		return [4]uint64{success, req, higher}
	}
	lower := higher
	for i := len(revs) - 1; i >= 0; i-- {
		if revs[i] < req {
			lower = revs[i]
			break
		}
	}
	return [4]uint64{errInput, lower, higher}
}
