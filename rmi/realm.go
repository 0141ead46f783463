package rmi

// realmState is what an RMM keeps per realm for the RSI calls that have
// state. Filled in by the realm half of the model.
type realmState struct {
	cfg RealmConfig
}

func (r *realmState) init(cfg RealmConfig) { r.cfg = cfg }

func (r *realmState) call(fid uint32, args []uint64) [4]uint64 {
	return [4]uint64{NotSupported}
}
