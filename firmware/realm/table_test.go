package realm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"cca-testbed/qemu"
	"cca-testbed/rmi"
)

func realmTable(t testing.TB) (*Table, []byte) {
	t.Helper()
	p, err := rmi.LookupProfile("realm")
	if err != nil {
		t.Fatal(err)
	}
	tab, err := NewTable(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tab.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return tab, b
}

// The Go side, the C side and the qemu profile must agree on the map.
func TestConstantsAgree(t *testing.T) {
	h, err := os.ReadFile("src/table.h")
	if err != nil {
		t.Fatal(err)
	}
	define := func(name string) uint64 {
		m := regexp.MustCompile(`#define\s+` + name + `\s+(\S+?)U?L?\s`).FindSubmatch(h)
		if m == nil {
			t.Fatalf("table.h defines no %s", name)
		}
		v, err := strconv.ParseUint(string(m[1]), 0, 64)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return v
	}
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"TABLE_PA", define("TABLE_PA"), TableAddr},
		{"TABLE_MAX", define("TABLE_MAX"), maxTable},
		{"TABLE_VERSION", define("TABLE_VERSION"), tableVersion},
		{"ENTRIES_OFF", define("ENTRIES_OFF"), entriesOff},
		{"ENTRY_SIZE", define("ENTRY_SIZE"), entrySize},
		{"TOKEN_MAX", define("TOKEN_MAX"), maxToken},
		{"KIND_ANSWER", define("KIND_ANSWER"), uint64(Answer)},
		{"KIND_FIRMWARE", define("KIND_FIRMWARE"), uint64(Firmware)},
		{"KIND_OTHERWISE", define("KIND_OTHERWISE"), uint64(Otherwise)},
		{"qemu.RealmTableAddr", qemu.RealmTableAddr, TableAddr},
		{"qemu.RealmKernelAddr", qemu.RealmKernelAddr, KernelAddr},
		{"qemu.RealmMemoryMB", qemu.RealmMemoryMB, MachineMemoryMB},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestNewTable(t *testing.T) {
	tab, b := realmTable(t)
	back, err := ParseTable(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := back.Bytes()
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("round trip differs (err %v)", err)
	}
	p, _ := rmi.LookupProfile("realm")
	m := rmi.New(p)
	answers := map[uint32]bool{}
	for _, e := range tab.Entries {
		if e.Kind == Answer {
			if got := m.SMC(e.FID, e.Arg); got != e.Ret {
				t.Errorf("%s(%#x): table %#x, model %#x", rmi.FIDName(e.FID), e.Arg, e.Ret, got)
			}
		}
		// Any request the table does not list, as a kernel's stale
		// register would make it: the model's answer, an error status
		// with the implemented revisions, never NOT_SUPPORTED.
		if e.Kind == Otherwise {
			for _, req := range []uint64{0x3, 0xffff800080000000, rmi.Revision(3, 0)} {
				if got := m.SMC(e.FID, req); got != e.Ret {
					t.Errorf("%s(%#x) otherwise: table %#x, model %#x", rmi.FIDName(e.FID), req, e.Ret, got)
				}
			}
		}
		answers[e.FID] = true
	}
	for _, fid := range append([]uint32{rmi.RSIVersion, rmi.RSIFeatures}, firmwareCalls...) {
		if !answers[fid] {
			t.Errorf("table lacks %s", rmi.FIDName(fid))
		}
	}
	rim, _ := m.Measurement(0)
	if !bytes.Equal(tab.Measurements[0][:len(rim)], rim) {
		t.Errorf("RIM %x, model %x", tab.Measurements[0][:len(rim)], rim)
	}
	// What the firmware will hand out for a challenge is the model's token.
	var ch [64]byte
	for i := range ch {
		ch[i] = byte(i + 1)
	}
	want, _ := m.Token(ch)
	got := bytes.Clone(tab.Token)
	copy(got[tab.ChallengeOff:], ch[:])
	if !bytes.Equal(got, want) {
		t.Errorf("token with the challenge patched in differs from the model's")
	}
	// And after an extension, with the REM patched in too.
	m.SMC(rmi.RSIMeasurementExtend, 2, 4, 0xdeadbeef)
	want, _ = m.Token(ch)
	rem, _ := m.Measurement(2)
	if tab.REMOffs[1] == 0 {
		t.Fatal("REM 1 (slot 2) has no offset in the token")
	}
	copy(got[tab.REMOffs[1]:], rem)
	if !bytes.Equal(got, want) {
		t.Errorf("token with the extended REM patched in differs from the model's")
	}
}

// A host's table answers RMI_VERSION and RMI_FEATURES as the model does,
// for the requests listed and any other, and nothing of RSI.
func TestNewHostTable(t *testing.T) {
	for _, name := range []string{"rmm-1.0", "rmm-1.1", "rmm-2.0", "tf-rmm-0.8", "tf-rmm-0.9"} {
		t.Run(name, func(t *testing.T) {
			p, err := rmi.LookupProfile(name)
			if err != nil {
				t.Fatal(err)
			}
			tab, err := NewTable(p)
			if err != nil {
				t.Fatal(err)
			}
			if tab.Mode != ModeHost {
				t.Fatalf("mode %s, want host", tab.Mode)
			}
			b, err := tab.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseTable(b)
			if err != nil || back.Mode != ModeHost {
				t.Fatalf("parsed back: %v, mode %v", err, back)
			}
			m := rmi.New(p)
			// answer is what the firmware's find() picks for (fid, x1).
			answer := func(fid uint32, x1 uint64) ([4]uint64, bool) {
				var other *Entry
				for i, e := range back.Entries {
					if e.FID != fid {
						continue
					}
					if e.Kind == Otherwise {
						other = &back.Entries[i]
					} else if e.Arg == x1 {
						return e.Ret, true
					}
				}
				if other != nil {
					return other.Ret, true
				}
				return [4]uint64{}, false
			}
			for _, fid := range []uint32{rmi.RMIVersion, rmi.RMIFeatures} {
				for _, x1 := range []uint64{0, 1, 2, 3, 4, 9, rmi.Revision(1, 0), rmi.Revision(1, 1), rmi.Revision(2, 0), rmi.Revision(3, 0), 0xffff800080000000} {
					got, ok := answer(fid, x1)
					if want := m.SMC(fid, x1); !ok || got != want {
						t.Errorf("%s(%#x): table %#x (found %v), model %#x", rmi.FIDName(fid), x1, got, ok, want)
					}
				}
			}
			for _, e := range back.Entries {
				if e.FID != rmi.RMIVersion && e.FID != rmi.RMIFeatures {
					t.Errorf("host table answers %s", rmi.FIDName(e.FID))
				}
			}
		})
	}
}

func TestNewTableErrors(t *testing.T) {
	none, _ := rmi.LookupProfile("none")
	wide, _ := rmi.LookupProfile("realm")
	wide.Realm.IPAWidth = 48
	for _, c := range []struct {
		p    rmi.Profile
		want string
	}{
		{none, "has no RSI and no RMI"},
		{wide, "IPA width 48"},
	} {
		_, err := NewTable(c.p)
		if !errors.Is(err, ErrTable) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrTable with %q", c.p.Name, err, c.want)
		}
	}
}

func TestParseTableErrors(t *testing.T) {
	_, good := realmTable(t)
	le := binary.LittleEndian
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		le.PutUint32(b[0x10:], checksum(b))
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "bad magic"},
		{"magic", edit(func(b []byte) { b[0] = 'X' }), "bad magic"},
		{"version", edit(func(b []byte) { le.PutUint32(b[8:], 9) }), "version 9"},
		{"size", edit(func(b []byte) { le.PutUint32(b[0xc:], 7) }), "size field 7"},
		{"checksum", func() []byte { b := bytes.Clone(good); b[0x100] ^= 1; return b }(), "checksum"},
		{"entries", edit(func(b []byte) { le.PutUint32(b[0x14:], 1000) }), "run past"},
		{"ipa width", edit(func(b []byte) { le.PutUint64(b[0x18:], 48) }), "IPA width 48"},
		{"hash", edit(func(b []byte) { le.PutUint64(b[0x20:], 7) }), "unknown hash"},
		{"ram", edit(func(b []byte) { le.PutUint64(b[0x30:], 2<<30) }), "protected RAM"},
		{"token", edit(func(b []byte) { le.PutUint32(b[0x3c:], 1<<20) }), "token template"},
		{"kind", edit(func(b []byte) { le.PutUint32(b[entriesOff+4:], 9) }), "unknown kind 9"},
		{"mode", edit(func(b []byte) { le.PutUint32(b[0x44:], 2) }), "unknown mode 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTable(tc.b)
			if !errors.Is(err, ErrTable) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrTable with %q", err, tc.want)
			}
		})
	}
}

// FuzzParseTable: whatever the bytes, ParseTable returns a table that
// writes back to exactly those bytes, or an ErrTable.
func FuzzParseTable(f *testing.F) {
	_, good := realmTable(f)
	f.Add(good)
	f.Add(good[:entriesOff])
	f.Add([]byte(tableMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := ParseTable(b)
		if err != nil {
			if !errors.Is(err, ErrTable) {
				t.Fatalf("error %v does not wrap ErrTable", err)
			}
			return
		}
		out, err := tab.Bytes()
		if err != nil {
			t.Fatalf("parsed table does not write back: %v", err)
		}
		if _, err := ParseTable(out); err != nil {
			t.Fatalf("written table does not parse: %v", err)
		}
	})
}
