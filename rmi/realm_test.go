package rmi

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
)

func realmModel(t testing.TB) *Model {
	t.Helper()
	p, err := LookupProfile("realm")
	if err != nil {
		t.Fatal(err)
	}
	return New(p)
}

func TestRealmConfig(t *testing.T) {
	m := realmModel(t)
	tests := []struct {
		ipa  uint64
		want uint64
	}{
		{0x40001000, 0},         // aligned, protected
		{0x40001008, 1},         // not granule aligned
		{0x80000000, 1},         // bit 31 set: unprotected half of a 32-bit IPA space
		{0x7FFFF000, 0},         // last protected granule
		{0xFFFFFFFFFFFFF000, 1}, // beyond the IPA space
	}
	for _, tt := range tests {
		if got := m.SMC(0xC4000196, tt.ipa); got[0] != tt.want {
			t.Errorf("RSI_REALM_CONFIG(%#x) = %#x, want status %d", tt.ipa, got, tt.want)
		}
	}
	raw, err := m.ReadRealmMemory(0x40001000, GranuleSize)
	if err != nil {
		t.Fatal(err)
	}
	// ipa_width 32 at offset 0, hash_algo SHA-256 (0) at offset 8.
	if !bytes.Equal(raw[:16], []byte{0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("config head = % x, want ipa_width 0x20, hash_algo 0", raw[:16])
	}
	cfg, err := m.RealmConfigAt(0x40001000)
	if err != nil || cfg.IPAWidth != 32 || cfg.HashAlgo != HashSHA256 {
		t.Errorf("RealmConfigAt = %+v, %v; want IPA width 32, sha-256", cfg, err)
	}
	if _, err := m.RealmConfigAt(0x40002000); !errors.Is(err, ErrNotWritten) {
		t.Errorf("unwritten granule: err = %v, want ErrNotWritten", err)
	}
	// A read spanning two written granules.
	m.SMC(0xC4000196, 0x40002000)
	b, err := m.ReadRealmMemory(0x40001FF8, 16)
	if err != nil || len(b) != 16 || b[8] != 0x20 {
		t.Errorf("cross-granule read = % x, %v", b, err)
	}
	if _, err := m.ReadRealmMemory(0x40002FF8, 16); !errors.Is(err, ErrNotWritten) {
		t.Errorf("read running off the written granules: err = %v, want ErrNotWritten", err)
	}
}

// TestReadRealmMemoryBounded: a read larger than MaxRealmRead, or larger
// than all the memory the firmware wrote, is an error before anything is
// allocated (a huge length used to panic in make).
func TestReadRealmMemoryBounded(t *testing.T) {
	m := realmModel(t)
	m.SMC(0xC4000196, 0x40001000)
	for _, n := range []int{MaxRealmRead + 1, 1 << 40, math.MaxInt - 1} {
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v", p)
				}
			}()
			_, err = m.ReadRealmMemory(0x40001000, n)
		}()
		if err == nil || !strings.Contains(err.Error(), "over the limit") {
			t.Errorf("ReadRealmMemory(%d bytes) = %v, want an over-the-limit error", n, err)
		}
	}
	if _, err := m.ReadRealmMemory(0x40001000, 3*GranuleSize); !errors.Is(err, ErrNotWritten) {
		t.Errorf("read past the one written granule: %v, want ErrNotWritten", err)
	}
}

// extendArgs lays value out as RSI_MEASUREMENT_EXTEND's x1..x10.
func extendArgs(index int, value []byte) []uint64 {
	var buf [64]byte
	copy(buf[:], value)
	args := []uint64{uint64(index), uint64(len(value))}
	for i := 0; i < 8; i++ {
		args = append(args, binary.LittleEndian.Uint64(buf[8*i:]))
	}
	return args
}

func TestMeasurementExtendSHA256(t *testing.T) {
	m := realmModel(t)
	// RIM: SHA-256 of the model's documented seed string.
	wantRIM := sha256.Sum256([]byte("cca-testbed rmi model: no realm contents were measured"))
	rim, err := m.Measurement(0)
	if err != nil || !bytes.Equal(rim, wantRIM[:]) {
		t.Fatalf("RIM = %x, %v; want %x", rim, err, wantRIM)
	}

	data1 := []byte("kernel command line")
	data2 := bytes.Repeat([]byte{0xEE}, 64)
	// Independent computation: REM = SHA-256(REM || data), REM starting at 32 zero bytes.
	step1 := sha256.Sum256(append(make([]byte, 32), data1...))
	step2 := sha256.Sum256(append(step1[:], data2...))

	if got := m.SMC(0xC4000193, extendArgs(2, data1)...); got[0] != 0 {
		t.Fatalf("extend 1 = %#x, want success", got)
	}
	if got := m.SMC(0xC4000193, extendArgs(2, data2)...); got[0] != 0 {
		t.Fatalf("extend 2 = %#x, want success", got)
	}
	rem, _ := m.Measurement(2)
	if !bytes.Equal(rem, step2[:]) {
		t.Errorf("REM[2] = %x, want %x", rem, step2)
	}
	// Other slots untouched.
	if rem1, _ := m.Measurement(1); !bytes.Equal(rem1, make([]byte, 32)) {
		t.Errorf("REM[1] = %x, want zeros", rem1)
	}
	// RSI_MEASUREMENT_READ returns the value in memory order from x1.
	got := m.SMC(0xC4000192, 2)
	want := [4]uint64{0, binary.LittleEndian.Uint64(step2[0:]), binary.LittleEndian.Uint64(step2[8:]), binary.LittleEndian.Uint64(step2[16:])}
	if got != want {
		t.Errorf("MEASUREMENT_READ(2) = %#x, want %#x", got, want)
	}
}

func TestMeasurementExtendSHA512(t *testing.T) {
	p, _ := LookupProfile("realm")
	p.Realm.HashAlgo = HashSHA512
	m := New(p)
	data := []byte{1, 2, 3}
	want := sha512.Sum512(append(make([]byte, 64), data...))
	if got := m.SMC(0xC4000193, extendArgs(4, data)...); got[0] != 0 {
		t.Fatalf("extend = %#x, want success", got)
	}
	if rem, _ := m.Measurement(4); !bytes.Equal(rem, want[:]) {
		t.Errorf("REM[4] = %x, want %x", rem, want)
	}
	wantRIM := sha512.Sum512([]byte("cca-testbed rmi model: no realm contents were measured"))
	if rim, _ := m.Measurement(0); !bytes.Equal(rim, wantRIM[:]) {
		t.Errorf("RIM = %x, want %x", rim, wantRIM)
	}
}

func TestMeasurementErrors(t *testing.T) {
	m := realmModel(t)
	tests := []struct {
		name string
		fid  uint32
		args []uint64
		want uint64
	}{
		{"extend RIM", 0xC4000193, extendArgs(0, []byte{1}), 1},
		{"extend slot 5", 0xC4000193, extendArgs(5, []byte{1}), 1},
		{"extend 65 bytes", 0xC4000193, []uint64{1, 65}, 1},
		{"extend 0 bytes", 0xC4000193, []uint64{1, 0}, 0},
		{"read slot 5", 0xC4000192, []uint64{5}, 1},
		{"read RIM", 0xC4000192, []uint64{0}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.SMC(tt.fid, tt.args...); got[0] != tt.want {
				t.Errorf("got %#x, want status %d", got, tt.want)
			}
		})
	}
	if _, err := m.Measurement(5); err == nil {
		t.Error("Measurement(5) succeeded")
	}
	p, _ := LookupProfile("realm")
	p.Realm.HashAlgo = 7
	if got := New(p).SMC(0xC4000193, extendArgs(1, []byte{1})...); got[0] != 4 {
		t.Errorf("unknown hash algorithm: extend = %#x, want RSI_ERROR_UNKNOWN", got)
	}
}

func TestAttestationToken(t *testing.T) {
	m := realmModel(t)
	var challenge [64]byte
	for i := range challenge {
		challenge[i] = byte(0xA0 + i%16)
	}
	var words []uint64
	for i := 0; i < 8; i++ {
		words = append(words, binary.LittleEndian.Uint64(challenge[8*i:]))
	}

	if got := m.SMC(0xC4000195, 0x40000000, 0, 4096); got[0] != 2 {
		t.Errorf("CONTINUE before INIT = %#x, want RSI_ERROR_STATE", got)
	}
	init := m.SMC(0xC4000194, words...)
	if init[0] != 0 || init[1] == 0 {
		t.Fatalf("INIT = %#x, want success and a size", init)
	}

	// The guest's loop, with a small chunk so the token spans several
	// calls and two granules: copy until SUCCESS, moving to the next
	// granule when one is full.
	const chunk = 96
	base, offset := uint64(0x40000000), uint64(0)
	var got []byte
	incomplete := 0
	for calls := 0; ; calls++ {
		if calls > 100 {
			t.Fatal("token never completed")
		}
		size := min(chunk, GranuleSize-offset)
		r := m.SMC(0xC4000195, base, offset, size)
		b, err := m.ReadRealmMemory(base+offset, int(r[1]))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
		offset += r[1]
		if r[0] == 0 {
			break
		}
		if r[0] != 3 {
			t.Fatalf("CONTINUE = %#x, want INCOMPLETE or SUCCESS", r)
		}
		incomplete++
		if offset == GranuleSize {
			base, offset = base+GranuleSize, 0
		}
	}
	if incomplete < 2 {
		t.Errorf("%d INCOMPLETE answers, want several with %d-byte chunks", incomplete, chunk)
	}
	if uint64(len(got)) != init[1] {
		t.Errorf("token is %d bytes, INIT promised at most %d", len(got), init[1])
	}
	want, _ := m.Token(challenge)
	if !bytes.Equal(got, want) {
		t.Errorf("token via CONTINUE differs from Token()")
	}
	tok, err := ParseToken(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tok.Challenge, challenge[:]) || tok.RealmProfile != RealmProfile || tok.HashAlgo != "sha-256" ||
		tok.PlatformProfile != PlatformProfile || tok.VerificationService != ModelLabel || !tok.Model {
		t.Errorf("parsed token %+v: want the challenge, the realm and platform profiles, sha-256, the model label and signatures", tok)
	}
	rim, _ := m.Measurement(RIMIndex)
	if !bytes.Equal(tok.RIM, rim) || len(tok.REMs) != 4 || !bytes.Equal(tok.REMs[0], make([]byte, 32)) {
		t.Errorf("token measurements RIM %x REMs %x, want the model's", tok.RIM, tok.REMs)
	}
	// The token is a CBOR tag-399 collection (d9 01 8f).
	if !bytes.HasPrefix(got, []byte{0xd9, 0x01, 0x8f}) {
		t.Errorf("token starts % x, want tag 399", got[:3])
	}
	if r := m.SMC(0xC4000195, base, 0, 4096); r[0] != 2 {
		t.Errorf("CONTINUE after completion = %#x, want RSI_ERROR_STATE", r)
	}

	// Deterministic: the same challenge and measurements give the same
	// token; an extend changes it.
	again, _ := m.Token(challenge)
	if !bytes.Equal(again, want) {
		t.Error("token not deterministic")
	}
	m.SMC(0xC4000193, extendArgs(1, []byte("x"))...)
	if changed, _ := m.Token(challenge); bytes.Equal(changed, want) {
		t.Error("extending a REM did not change the token")
	}
}

func TestTokenContinueErrors(t *testing.T) {
	m := realmModel(t)
	m.SMC(0xC4000194)
	tests := []struct {
		name              string
		ipa, offset, size uint64
	}{
		{"unaligned", 0x40000010, 0, 16},
		{"offset past granule", 0x40000000, 4096, 1},
		{"size past granule", 0x40000000, 4000, 97},
		{"unprotected", 0x800000000000, 0, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.SMC(0xC4000195, tt.ipa, tt.offset, tt.size); got[0] != 1 {
				t.Errorf("got %#x, want RSI_ERROR_INPUT", got)
			}
		})
	}
	// The errors did not consume the token.
	if got := m.SMC(0xC4000195, 0x40000000, 0, 4096); got[0] != 0 {
		t.Errorf("after errors = %#x, want the whole token with SUCCESS", got)
	}
}

func TestHostHasNoRealm(t *testing.T) {
	for _, name := range []string{"none", "rmm-1.0", "rmm-1.1", "rmm-2.0"} {
		p, _ := LookupProfile(name)
		m := New(p)
		for _, fid := range []uint32{0xC4000192, 0xC4000193, 0xC4000194, 0xC4000195, 0xC4000196} {
			if got := m.SMC(fid, 0x40000000); got != Unknown(0x40000000) {
				t.Errorf("%s: %s = %#x, want NotSupported", name, FIDName(fid), got)
			}
		}
		if _, err := m.Measurement(0); !errors.Is(err, ErrNotRealm) {
			t.Errorf("%s: Measurement err = %v, want ErrNotRealm", name, err)
		}
		if _, err := m.ReadRealmMemory(0, 1); !errors.Is(err, ErrNotRealm) {
			t.Errorf("%s: ReadRealmMemory err = %v, want ErrNotRealm", name, err)
		}
	}
}

func TestRealmConfigBytesRoundTrip(t *testing.T) {
	c := RealmConfig{IPAWidth: 40, HashAlgo: HashSHA512}
	c.RPV[0], c.RPV[63] = 1, 2
	b := c.Bytes()
	if b[0x200] != 1 || b[0x23F] != 2 || b[8] != 1 {
		t.Errorf("layout wrong: rpv at 0x200, hash_algo at 0x8")
	}
	back, err := DecodeRealmConfig(b)
	if err != nil || back != c {
		t.Errorf("DecodeRealmConfig = %+v, %v; want %+v", back, err, c)
	}
	if _, err := DecodeRealmConfig(b[:100]); err == nil {
		t.Error("short buffer accepted")
	}
}

// Concurrent extends of one slot with the same data commute, so the result
// must equal the sequential one whatever the interleaving; run with -race
// to check the locking too.
func TestConcurrentCalls(t *testing.T) {
	m := realmModel(t)
	args := extendArgs(3, []byte("same"))
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				m.SMC(0xC4000193, args...)
				m.SMC(0xC4000192, 3)
				Probe(m)
			}
		}()
	}
	wg.Wait()
	want := make([]byte, 32)
	for i := 0; i < workers*each; i++ {
		s := sha256.Sum256(append(want, []byte("same")...))
		want = s[:]
	}
	if got, _ := m.Measurement(3); !bytes.Equal(got, want) {
		t.Errorf("REM[3] after %d concurrent extends = %x, want %x", workers*each, got, want)
	}
}

func FuzzReadRealmMemory(f *testing.F) {
	f.Add(uint64(0x40001000), 4096)
	f.Add(uint64(0x40001FF8), 16)
	f.Add(uint64(0xFFFFFFFFFFFFFFFF), 2)
	f.Fuzz(func(t *testing.T, ipa uint64, n int) {
		m := realmModel(t)
		m.SMC(0xC4000196, 0x40001000)
		b, err := m.ReadRealmMemory(ipa, n)
		if err == nil && len(b) != n {
			t.Fatalf("ReadRealmMemory(%#x, %d) returned %d bytes", ipa, n, len(b))
		}
	})
}
