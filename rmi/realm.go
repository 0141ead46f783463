package rmi

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// GranuleSize is the RMM's granule: 4 KiB. RSI calls that take a buffer
// take the IPA of one granule.
const GranuleSize = 4096

// The measurement slots (TF-RMM measurement.h): slot 0 is the Realm
// Initial Measurement, 1..4 the Realm Extensible Measurements.
const (
	RIMIndex        = 0
	NumMeasurements = 5
	MaxMeasurement  = 64 // bytes, the SHA-512 digest size
)

// MaxRealmRead bounds one ReadRealmMemory: 256 granules, far more than
// the firmware ever writes (a realm config granule, a token of a few KiB).
const MaxRealmRead = 256 * GranuleSize

// ErrNotWritten is wrapped by ReadRealmMemory when asked for memory the
// firmware never wrote: the model keeps no other realm memory.
var ErrNotWritten = errors.New("realm memory not written by the firmware")

// ErrNotRealm is wrapped by the realm accessors on a profile without RSI.
var ErrNotRealm = errors.New("profile has no RSI (not a realm)")

// RealmProfile is the token's EAT profile claim value for the realm token
// (TF-RMM attestation defs, CCA_REALM_PROFILE_STR).
const RealmProfile = "tag:arm.com,2023:realm#1.0.0"

// CCA token claim keys (TF-RMM attestation_defs_priv.h; Arm DEN0137 A7.2).
const (
	tokenTagCollection   = 399
	claimPlatformToken   = 44234
	claimRealmToken      = 44241
	claimProfile         = 265
	claimChallenge       = 10
	claimPersonalization = 44235
	claimHashAlgo        = 44236
	claimRIM             = 44238
	claimREMs            = 44239
)

// realmState is what an RMM keeps per realm for the RSI calls that have
// state. The model has no guest memory; what the firmware writes into realm
// memory (the config granule, the token) lands in mem, a sparse map from
// granule IPA to contents, where the Go-level accessors read it back.
type realmState struct {
	cfg  RealmConfig
	meas [NumMeasurements][]byte
	mem  map[uint64]*[GranuleSize]byte

	// token is the attestation token being handed out, nil when no
	// RSI_ATTESTATION_TOKEN_INIT is outstanding; tokenOff is how much of
	// it RSI_ATTESTATION_TOKEN_CONTINUE has copied so far.
	token    []byte
	tokenOff int
}

// rimSeed is what the model's Realm Initial Measurement is a hash of. A
// real RIM chains hashes of the realm's initial contents and parameters;
// the model loads no contents, so it says so in the value it measures.
const rimSeed = "cca-testbed rmi model: no realm contents were measured"

// init sets the realm up; rsi is false for profiles that are not realms,
// which then keep no state at all.
func (r *realmState) init(cfg RealmConfig, rsi bool) {
	if !rsi {
		return
	}
	r.cfg = cfg
	r.mem = make(map[uint64]*[GranuleSize]byte)
	size := cfg.HashAlgo.Size()
	if size == 0 {
		return // an algorithm the model lacks: measurement calls fail
	}
	h := newHash(cfg.HashAlgo)
	h.Write([]byte(rimSeed))
	r.meas[RIMIndex] = h.Sum(nil)
	for i := 1; i < NumMeasurements; i++ {
		r.meas[i] = make([]byte, size)
	}
}

func newHash(a HashAlgo) hash.Hash {
	if a == HashSHA512 {
		return sha512.New()
	}
	return sha256.New()
}

func (r *realmState) call(fid uint32, args []uint64) [4]uint64 {
	arg := func(i int) uint64 {
		if i < len(args) {
			return args[i]
		}
		return 0
	}
	hashing := fid >= RSIMeasurementRead && fid <= RSIAttestationTokenContinue
	if hashing && r.meas[RIMIndex] == nil {
		// A profile naming a hash algorithm the model cannot compute:
		// say so rather than hash with another one.
		return [4]uint64{RSIErrorUnknown}
	}
	switch fid {
	case RSIRealmConfig:
		return r.realmConfig(arg(0))
	case RSIMeasurementRead:
		return r.measurementRead(arg(0))
	case RSIMeasurementExtend:
		var words [8]uint64
		for i := range words {
			words[i] = arg(2 + i)
		}
		return r.measurementExtend(arg(0), arg(1), words)
	case RSIAttestationTokenInit:
		var words [8]uint64
		for i := range words {
			words[i] = arg(i)
		}
		return r.tokenInit(words)
	case RSIAttestationTokenContinue:
		return r.tokenContinue(arg(0), arg(1), arg(2))
	}
	return [4]uint64{NotSupported}
}

// validGranule: aligned to a granule and inside the protected half of the
// realm's IPA space (the top IPA bit selects unprotected memory, which the
// RMM refuses to write into).
func (r *realmState) validGranule(ipa uint64) bool {
	if ipa%GranuleSize != 0 {
		return false
	}
	if w := r.cfg.IPAWidth; w > 0 && w <= 64 && ipa >= 1<<(w-1) {
		return false
	}
	return true
}

func (r *realmState) granule(ipa uint64) *[GranuleSize]byte {
	g := r.mem[ipa]
	if g == nil {
		g = new([GranuleSize]byte)
		r.mem[ipa] = g
	}
	return g
}

// realmConfig: RSI_REALM_CONFIG(x1 = IPA of a granule) fills the granule
// with the RsiRealmConfig structure.
func (r *realmState) realmConfig(ipa uint64) [4]uint64 {
	if !r.validGranule(ipa) {
		return [4]uint64{RSIErrorInput}
	}
	*r.granule(ipa) = [GranuleSize]byte(r.cfg.Bytes())
	return [4]uint64{RSISuccess}
}

// measurementRead: RSI_MEASUREMENT_READ(x1 = slot) returns the value in
// x1..x8, zero-padded to 64 bytes. Only x1..x3 fit a Caller's return; use
// Model.Measurement for the whole value.
func (r *realmState) measurementRead(index uint64) [4]uint64 {
	if index >= NumMeasurements {
		return [4]uint64{RSIErrorInput}
	}
	var buf [MaxMeasurement]byte
	copy(buf[:], r.meas[index])
	return [4]uint64{
		RSISuccess,
		binary.LittleEndian.Uint64(buf[0:]),
		binary.LittleEndian.Uint64(buf[8:]),
		binary.LittleEndian.Uint64(buf[16:]),
	}
}

// measurementExtend: RSI_MEASUREMENT_EXTEND(x1 = slot 1..4, x2 = size in
// bytes <= 64, x3..x10 = value in memory order) sets
// REM = H(REM || value[:size]), the hash over the current digest followed
// by the new bytes (TF-RMM measurement_extend). The RIM cannot be extended.
func (r *realmState) measurementExtend(index, size uint64, words [8]uint64) [4]uint64 {
	if index == RIMIndex || index >= NumMeasurements || size > MaxMeasurement {
		return [4]uint64{RSIErrorInput}
	}
	var value [MaxMeasurement]byte
	for i, w := range words {
		binary.LittleEndian.PutUint64(value[8*i:], w)
	}
	h := newHash(r.cfg.HashAlgo)
	h.Write(r.meas[index])
	h.Write(value[:size])
	r.meas[index] = h.Sum(nil)
	return [4]uint64{RSISuccess}
}

// tokenInit: RSI_ATTESTATION_TOKEN_INIT(x1..x8 = 64-byte challenge) starts
// a token and returns an upper bound of its size in x1. The model builds
// the whole token here, so the bound is exact. A new INIT abandons any
// token in progress, as in RSI 1.0.
func (r *realmState) tokenInit(words [8]uint64) [4]uint64 {
	var challenge [64]byte
	for i, w := range words {
		binary.LittleEndian.PutUint64(challenge[8*i:], w)
	}
	r.token = r.buildToken(challenge)
	r.tokenOff = 0
	return [4]uint64{RSISuccess, uint64(len(r.token))}
}

// tokenContinue: RSI_ATTESTATION_TOKEN_CONTINUE(x1 = granule IPA, x2 =
// offset in the granule, x3 = bytes available) copies the next part of the
// token to ipa+offset and returns the count in x1, with RSI_INCOMPLETE
// while more remains and RSI_SUCCESS with the last part.
func (r *realmState) tokenContinue(ipa, offset, size uint64) [4]uint64 {
	if r.token == nil {
		return [4]uint64{RSIErrorState}
	}
	if !r.validGranule(ipa) || offset >= GranuleSize || size > GranuleSize-offset {
		return [4]uint64{RSIErrorInput}
	}
	n := copy(r.granule(ipa)[offset:offset+size], r.token[r.tokenOff:])
	r.tokenOff += n
	if r.tokenOff < len(r.token) {
		return [4]uint64{RSIIncomplete, uint64(n)}
	}
	r.token, r.tokenOff = nil, 0
	return [4]uint64{RSISuccess, uint64(n)}
}

// Bytes lays the config out as the RsiRealmConfig granule: ipa_width at
// 0x0 and hash_algo at 0x8 (little-endian), rpv at 0x200, the rest zero.
func (c RealmConfig) Bytes() []byte {
	b := make([]byte, GranuleSize)
	binary.LittleEndian.PutUint64(b[0x0:], c.IPAWidth)
	binary.LittleEndian.PutUint64(b[0x8:], uint64(c.HashAlgo))
	copy(b[0x200:], c.RPV[:])
	return b
}

// DecodeRealmConfig reads an RsiRealmConfig granule back.
func DecodeRealmConfig(b []byte) (RealmConfig, error) {
	if len(b) != GranuleSize {
		return RealmConfig{}, fmt.Errorf("realm config is %d bytes, want one %d-byte granule", len(b), GranuleSize)
	}
	var c RealmConfig
	c.IPAWidth = binary.LittleEndian.Uint64(b[0x0:])
	c.HashAlgo = HashAlgo(binary.LittleEndian.Uint64(b[0x8:]))
	copy(c.RPV[:], b[0x200:])
	return c, nil
}

// ReadRealmMemory returns n bytes at ipa as the firmware left them in realm
// memory: the RSI_REALM_CONFIG granule, the token granules. The model keeps
// no other memory, so a range touching a granule the firmware never wrote
// is an error wrapping ErrNotWritten. n is at most MaxRealmRead.
func (m *Model) ReadRealmMemory(ipa uint64, n int) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.realm.mem == nil {
		return nil, fmt.Errorf("read realm memory: %w", ErrNotRealm)
	}
	if n < 0 || ipa+uint64(n) < ipa {
		return nil, fmt.Errorf("read realm memory at %#x: bad length %d", ipa, n)
	}
	if n > MaxRealmRead {
		return nil, fmt.Errorf("read %d bytes of realm memory at %#x: over the limit of %d bytes (MaxRealmRead); read less at a time", n, ipa, MaxRealmRead)
	}
	out := make([]byte, 0, n)
	for addr := ipa; len(out) < n; {
		base := addr &^ (GranuleSize - 1)
		g := m.realm.mem[base]
		if g == nil {
			return nil, fmt.Errorf("read %d bytes at %#x: granule %#x: %w; make the RSI call that fills it first", n, ipa, base, ErrNotWritten)
		}
		take := min(n-len(out), int(base+GranuleSize-addr))
		out = append(out, g[addr-base:addr-base+uint64(take)]...)
		addr += uint64(take)
	}
	return out, nil
}

// RealmConfigAt decodes the RsiRealmConfig that RSI_REALM_CONFIG wrote at
// ipa.
func (m *Model) RealmConfigAt(ipa uint64) (RealmConfig, error) {
	b, err := m.ReadRealmMemory(ipa, GranuleSize)
	if err != nil {
		return RealmConfig{}, err
	}
	return DecodeRealmConfig(b)
}

// Measurement returns the whole value of a measurement slot (0 is the RIM,
// 1..4 the REMs), as long as the realm's hash algorithm's digest.
func (m *Model) Measurement(index int) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.realm.mem == nil {
		return nil, fmt.Errorf("measurement %d: %w", index, ErrNotRealm)
	}
	if index < 0 || index >= NumMeasurements {
		return nil, fmt.Errorf("measurement %d: out of range, want 0 (RIM) to %d", index, NumMeasurements-1)
	}
	return append([]byte(nil), m.realm.meas[index]...), nil
}

// Token returns the token the model would hand out now for this challenge,
// without starting or disturbing a token in progress.
func (m *Model) Token(challenge [64]byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.realm.mem == nil {
		return nil, fmt.Errorf("attestation token: %w", ErrNotRealm)
	}
	return m.realm.buildToken(challenge), nil
}
