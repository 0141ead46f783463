package realm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"

	"cca-testbed/rmi"
)

// The memory map the firmware builds (README.md): QEMU virt with
// highmem=off and MachineMemoryMB of RAM from 0x40000000. The kernel owns
// the protected RAM; the unprotected view of it (IPA | 1<<31) is the RAM
// at 3-4 GiB; the firmware keeps 2-3 GiB, where TableAddr is.
const (
	IPAWidth         = 32
	ProtectedRAMBase = 0x40000000
	ProtectedRAMSize = 1 << 30
	MachineMemoryMB  = 3072
	KernelAddr       = 0x40200000
	TableAddr        = 0x80000000
)

// Layout of the table (table.h; keep both in step).
const (
	tableVersion = 1
	tableMagic   = "CCARSITB"
	entriesOff   = 0x200
	entrySize    = 48
	maxTable     = 1 << 20
	maxToken     = 0x10000
)

// Kind says how the firmware answers an entry's function.
type Kind uint32

const (
	// Answer: the entry's Ret for a call whose x1 equals Arg.
	Answer Kind = 1
	// Firmware: the firmware computes the answer from the table's state
	// (realm config, RIPAS, measurements, the token template).
	Firmware Kind = 2
	// Otherwise: the entry's Ret for a call whose x1 no Answer entry of
	// the function matches (Arg unused).
	Otherwise Kind = 3
)

// Mode is what the firmware stands in for below the kernel.
type Mode uint32

const (
	// ModeRealm: the RMM as a realm sees it. The firmware builds the
	// realm's memory view (stage 2, the protected/unprotected split) and
	// answers RSI from the table; RMI is NOT_SUPPORTED.
	ModeRealm Mode = 0
	// ModeHost: the RMM as a KVM host sees it. No stage 2 and no split:
	// the kernel gets its RAM identity-mapped; RMI is answered from the
	// table and RSI is NOT_SUPPORTED (a host is not a realm).
	ModeHost Mode = 1
)

func (m Mode) String() string {
	switch m {
	case ModeRealm:
		return "realm"
	case ModeHost:
		return "host"
	}
	return fmt.Sprintf("mode %d", uint32(m))
}

// Entry is one function the firmware answers.
type Entry struct {
	FID  uint32
	Kind Kind
	Arg  uint64
	Ret  [4]uint64
}

// Table is what the firmware answers RSI (realm mode) or RMI (host mode)
// calls from.
type Table struct {
	Mode             Mode
	IPAWidth         uint64
	HashAlgo         rmi.HashAlgo
	RAMBase, RAMSize uint64
	RPV              [64]byte
	// Measurements are the RIM and the four REMs, each the digest size's
	// prefix used, zero-padded to 64 bytes.
	Measurements [rmi.NumMeasurements][rmi.MaxMeasurement]byte
	Entries      []Entry
	// Token is the model's token for an all-zero challenge; the firmware
	// writes the real challenge at ChallengeOff and the current REMs at
	// REMOffs (0: that REM is not in the token) before handing it out.
	Token        []byte
	ChallengeOff uint32
	REMOffs      [4]uint32
}

// ErrTable is wrapped by every ParseTable and Bytes error.
var ErrTable = errors.New("bad RSI table")

// firmwareCalls are the RSI functions the firmware computes itself.
var firmwareCalls = []uint32{
	rmi.RSIRealmConfig, rmi.RSIIPAStateSet, rmi.RSIIPAStateGet,
	rmi.RSIMeasurementRead, rmi.RSIMeasurementExtend,
	rmi.RSIAttestationTokenInit, rmi.RSIAttestationTokenContinue, rmi.RSIHostCall,
}

// versionRequests are the revisions a kernel may ask RSI_VERSION for:
// 1.0 (Linux 7.3) and the later ones the DA series asks for, and 0: the
// queued SMCCC bus (variants/smccc-bus-next) discovers RSI by calling
// RSI_VERSION with zero arguments and takes any answer but NOT_SUPPORTED.
// Any other request gets the Otherwise entry, as an RMM answers every
// revision: v7's SMCCC bus as posted (variants/smccc-bus) makes the call
// with no arguments at all, so x1 is whatever the register held.
var versionRequests = []uint64{0, rmi.Revision(1, 0), rmi.Revision(1, 1), rmi.Revision(2, 0)}

// otherVersion is the model's answer to the version call fid (RSI_VERSION
// or RMI_VERSION, revs its implemented revisions) for any request the
// table does not list: one answer, or an error when the model's answer
// depends on where the request falls between implemented revisions.
func otherVersion(p rmi.Profile, m *rmi.Model, fid uint32, revs []uint64) ([4]uint64, error) {
	other := m.SMC(fid, math.MaxUint64)
	probes := []uint64{0}
	for _, r := range revs {
		probes = append(probes, r+1)
	}
	for _, req := range probes {
		if slices.Contains(revs, req) || slices.Contains(versionRequests, req) {
			continue
		}
		if got := m.SMC(fid, req); got != other {
			return other, fmt.Errorf("%w: profile %s answers %s(%#x) %#x but %#x above every revision: one Otherwise entry cannot hold both", ErrTable, p.Name, rmi.FIDName(fid), req, got, other)
		}
	}
	return other, nil
}

// versionEntries are the table's answers to the version call fid: one per
// request a kernel is known to make, and the answer to any other.
func versionEntries(p rmi.Profile, m *rmi.Model, fid uint32, revs []uint64) ([]Entry, error) {
	var es []Entry
	for _, rev := range versionRequests {
		es = append(es, Entry{FID: fid, Kind: Answer, Arg: rev, Ret: m.SMC(fid, rev)})
	}
	other, err := otherVersion(p, m, fid, revs)
	if err != nil {
		return nil, err
	}
	return append(es, Entry{FID: fid, Kind: Otherwise, Ret: other}), nil
}

// NewTable writes the table for the cell whose firmware profile p
// describes: a realm table (ModeRealm) when p answers RSI, which must be
// with the firmware's IPA width, else a host table (ModeHost) when p
// answers RMI.
func NewTable(p rmi.Profile) (*Table, error) {
	if len(p.RSIRevisions) == 0 {
		if len(p.RMIRevisions) > 0 {
			return newHostTable(p)
		}
		return nil, fmt.Errorf("%w: profile %s has no RSI and no RMI: nothing for the firmware to answer", ErrTable, p.Name)
	}
	if p.Realm.IPAWidth != IPAWidth {
		return nil, fmt.Errorf("%w: profile %s reports IPA width %d; the firmware's memory map needs %d", ErrTable, p.Name, p.Realm.IPAWidth, IPAWidth)
	}
	m := rmi.New(p)
	t := &Table{
		IPAWidth: p.Realm.IPAWidth, HashAlgo: p.Realm.HashAlgo,
		RAMBase: ProtectedRAMBase, RAMSize: ProtectedRAMSize, RPV: p.Realm.RPV,
	}
	for i := range t.Measurements {
		v, err := m.Measurement(i)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrTable, err)
		}
		copy(t.Measurements[i][:], v)
	}
	es, err := versionEntries(p, m, rmi.RSIVersion, p.RSIRevisions)
	if err != nil {
		return nil, err
	}
	t.Entries = es
	for i := 0; i < max(1, len(p.RSIFeatures)); i++ {
		t.Entries = append(t.Entries, Entry{FID: rmi.RSIFeatures, Kind: Answer, Arg: uint64(i), Ret: m.SMC(rmi.RSIFeatures, uint64(i))})
	}
	for _, fid := range firmwareCalls {
		t.Entries = append(t.Entries, Entry{FID: fid, Kind: Firmware})
	}
	if err := t.setToken(p); err != nil {
		return nil, err
	}
	return t, nil
}

// newHostTable writes the table for a KVM host below which p's RMM
// stands: RMI_VERSION for every request and RMI_FEATURES for every
// register, with the model's answer past the last one. The kernel's RAM is
// the same range a realm's protected RAM is (1 GiB at 1 GiB, what the virt
// machine gives a host cell); the realm fields are unused and left at
// values ParseTable accepts.
func newHostTable(p rmi.Profile) (*Table, error) {
	m := rmi.New(p)
	t := &Table{Mode: ModeHost, IPAWidth: IPAWidth, HashAlgo: rmi.HashSHA256,
		RAMBase: ProtectedRAMBase, RAMSize: ProtectedRAMSize}
	es, err := versionEntries(p, m, rmi.RMIVersion, p.RMIRevisions)
	if err != nil {
		return nil, err
	}
	t.Entries = es
	for i := range max(1, len(p.RMIFeatures)) {
		t.Entries = append(t.Entries, Entry{FID: rmi.RMIFeatures, Kind: Answer, Arg: uint64(i), Ret: m.SMC(rmi.RMIFeatures, uint64(i))})
	}
	t.Entries = append(t.Entries, Entry{FID: rmi.RMIFeatures, Kind: Otherwise, Ret: m.SMC(rmi.RMIFeatures, math.MaxUint64)})
	return t, nil
}

// setToken finds where the challenge and the REMs sit in the model's
// token: the model signs its realm claims with those fields zeroed
// (rmi/token.go), so the firmware can write them into this template and
// hand out exactly the model's token.
func (t *Table) setToken(p rmi.Profile) error {
	var zero, mark [64]byte
	for i := range mark {
		mark[i] = byte(0xC0 ^ i)
	}
	a, err := rmi.New(p).Token(zero)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTable, err)
	}
	b, _ := rmi.New(p).Token(mark)
	off := bytes.Index(b, mark[:])
	if off < 0 || len(a) != len(b) || !bytes.Equal(a[:off], b[:off]) || !bytes.Equal(a[off+64:], b[off+64:]) {
		return fmt.Errorf("%w: the model's token does not carry the challenge as one 64-byte field", ErrTable)
	}
	t.Token, t.ChallengeOff = a, uint32(off)
	size := p.Realm.HashAlgo.Size()
	for i := range t.REMOffs {
		m := rmi.New(p)
		if r := m.SMC(rmi.RSIMeasurementExtend, uint64(i+1), 8, 0x1122334455667788); r[0] != rmi.RSISuccess {
			return fmt.Errorf("%w: the model refused to extend REM %d", ErrTable, i)
		}
		c, _ := m.Token(zero)
		rem, _ := m.Measurement(i + 1)
		found := bytes.Index(c, rem)
		if found < 0 {
			continue // this REM is not in the token
		}
		if len(rem) != size || len(c) != len(a) || !bytes.Equal(c[:found], a[:found]) || !bytes.Equal(c[found+size:], a[found+size:]) {
			return fmt.Errorf("%w: REM %d is not one %d-byte field of the model's token", ErrTable, i, size)
		}
		t.REMOffs[i] = uint32(found)
	}
	return nil
}

// Bytes lays the table out for the firmware.
func (t *Table) Bytes() ([]byte, error) {
	if len(t.Token) > maxToken {
		return nil, fmt.Errorf("%w: token of %d bytes, the firmware holds %d", ErrTable, len(t.Token), maxToken)
	}
	size := entriesOff + len(t.Entries)*entrySize + len(t.Token)
	if size > maxTable {
		return nil, fmt.Errorf("%w: %d bytes, the firmware reads at most %d", ErrTable, size, maxTable)
	}
	b := make([]byte, size)
	le := binary.LittleEndian
	copy(b, tableMagic)
	le.PutUint32(b[0x8:], tableVersion)
	le.PutUint32(b[0xc:], uint32(size))
	le.PutUint32(b[0x14:], uint32(len(t.Entries)))
	le.PutUint64(b[0x18:], t.IPAWidth)
	le.PutUint64(b[0x20:], uint64(t.HashAlgo))
	le.PutUint64(b[0x28:], t.RAMBase)
	le.PutUint64(b[0x30:], t.RAMSize)
	tokOff := entriesOff + len(t.Entries)*entrySize
	if len(t.Token) > 0 {
		le.PutUint32(b[0x38:], uint32(tokOff))
	}
	le.PutUint32(b[0x3c:], uint32(len(t.Token)))
	le.PutUint32(b[0x40:], t.ChallengeOff)
	le.PutUint32(b[0x44:], uint32(t.Mode))
	for i, o := range t.REMOffs {
		le.PutUint32(b[0x48+4*i:], o)
	}
	copy(b[0x58:], t.RPV[:])
	for i, m := range t.Measurements {
		copy(b[0x98+64*i:], m[:])
	}
	for i, e := range t.Entries {
		p := b[entriesOff+i*entrySize:]
		le.PutUint32(p, e.FID)
		le.PutUint32(p[4:], uint32(e.Kind))
		le.PutUint64(p[8:], e.Arg)
		for j, r := range e.Ret {
			le.PutUint64(p[16+8*j:], r)
		}
	}
	copy(b[tokOff:], t.Token)
	le.PutUint32(b[0x10:], checksum(b))
	if _, err := ParseTable(b); err != nil {
		return nil, err
	}
	return b, nil
}

// checksum is FNV-1a 32 over b with the checksum field as zero.
func checksum(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b[:0x10])
	h.Write(make([]byte, 4))
	h.Write(b[0x14:])
	return h.Sum32()
}

// ParseTable reads a table back, refusing what the firmware refuses, with
// the same reasons.
func ParseTable(b []byte) (*Table, error) {
	le := binary.LittleEndian
	if len(b) < entriesOff || string(b[:8]) != tableMagic {
		return nil, fmt.Errorf("%w: no table (bad magic or shorter than %d bytes)", ErrTable, entriesOff)
	}
	if v := le.Uint32(b[0x8:]); v != tableVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrTable, v, tableVersion)
	}
	size := int(le.Uint32(b[0xc:]))
	if size < entriesOff || size > maxTable || size != len(b) {
		return nil, fmt.Errorf("%w: size field %d for %d bytes (at most %d)", ErrTable, size, len(b), maxTable)
	}
	if got, want := checksum(b), le.Uint32(b[0x10:]); got != want {
		return nil, fmt.Errorf("%w: checksum %#x, stored %#x", ErrTable, got, want)
	}
	n := int(le.Uint32(b[0x14:]))
	if n > (size-entriesOff)/entrySize {
		return nil, fmt.Errorf("%w: %d entries run past the table", ErrTable, n)
	}
	t := &Table{
		IPAWidth: le.Uint64(b[0x18:]), HashAlgo: rmi.HashAlgo(le.Uint64(b[0x20:])),
		RAMBase: le.Uint64(b[0x28:]), RAMSize: le.Uint64(b[0x30:]),
		ChallengeOff: le.Uint32(b[0x40:]), Mode: Mode(le.Uint32(b[0x44:])),
	}
	if t.Mode != ModeRealm && t.Mode != ModeHost {
		return nil, fmt.Errorf("%w: unknown %s", ErrTable, t.Mode)
	}
	if t.IPAWidth != IPAWidth {
		return nil, fmt.Errorf("%w: IPA width %d, the memory map needs %d", ErrTable, t.IPAWidth, IPAWidth)
	}
	if t.HashAlgo.Size() == 0 {
		return nil, fmt.Errorf("%w: unknown hash algorithm %d", ErrTable, t.HashAlgo)
	}
	if t.RAMBase != ProtectedRAMBase || t.RAMSize == 0 || t.RAMSize > ProtectedRAMSize {
		return nil, fmt.Errorf("%w: protected RAM %#x+%#x, want base %#x and at most %#x bytes", ErrTable, t.RAMBase, t.RAMSize, ProtectedRAMBase, ProtectedRAMSize)
	}
	toff, tlen := uint64(le.Uint32(b[0x38:])), uint64(le.Uint32(b[0x3c:]))
	if toff+tlen > uint64(size) || tlen > maxToken || (tlen > 0 && uint64(t.ChallengeOff)+64 > tlen) {
		return nil, fmt.Errorf("%w: token template at %d+%d out of bounds", ErrTable, toff, tlen)
	}
	t.Token = bytes.Clone(b[toff : toff+tlen])
	for i := range t.REMOffs {
		o := le.Uint32(b[0x48+4*i:])
		if o != 0 && uint64(o)+uint64(t.HashAlgo.Size()) > tlen {
			return nil, fmt.Errorf("%w: REM %d offset %d past the token", ErrTable, i, o)
		}
		t.REMOffs[i] = o
	}
	copy(t.RPV[:], b[0x58:])
	for i := range t.Measurements {
		copy(t.Measurements[i][:], b[0x98+64*i:])
	}
	for i := 0; i < n; i++ {
		p := b[entriesOff+i*entrySize:]
		e := Entry{FID: le.Uint32(p), Kind: Kind(le.Uint32(p[4:])), Arg: le.Uint64(p[8:])}
		if e.Kind != Answer && e.Kind != Firmware && e.Kind != Otherwise {
			return nil, fmt.Errorf("%w: entry %d (%s) has unknown kind %d", ErrTable, i, rmi.FIDName(e.FID), e.Kind)
		}
		for j := range e.Ret {
			e.Ret[j] = le.Uint64(p[16+8*j:])
		}
		t.Entries = append(t.Entries, e)
	}
	return t, nil
}
