package rmi

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The numbers below are written as literals copied from the sources, never
// computed from the package's constants, so a wrong constant fails here.
func TestSpecNumbers(t *testing.T) {
	tests := []struct {
		name string
		got  uint64
		want uint64
	}{
		// TF-RMM smc-rmi.h: "FID: 0xC4000150" SMC_RMI_VERSION, "FID: 0xC4000165" SMC_RMI_FEATURES.
		{"RMI_VERSION", uint64(RMIVersion), 0xC4000150},
		{"RMI_FEATURES", uint64(RMIFeatures), 0xC4000165},
		// Linux rsi_smc.h SMC_RSI_FID(0x190..0x199) with fast call, SMC64, standard owner.
		{"RSI_VERSION", uint64(RSIVersion), 0xC4000190},
		{"RSI_FEATURES", uint64(RSIFeatures), 0xC4000191},
		{"RSI_MEASUREMENT_READ", uint64(RSIMeasurementRead), 0xC4000192},
		{"RSI_MEASUREMENT_EXTEND", uint64(RSIMeasurementExtend), 0xC4000193},
		{"RSI_ATTESTATION_TOKEN_INIT", uint64(RSIAttestationTokenInit), 0xC4000194},
		{"RSI_ATTESTATION_TOKEN_CONTINUE", uint64(RSIAttestationTokenContinue), 0xC4000195},
		{"RSI_REALM_CONFIG", uint64(RSIRealmConfig), 0xC4000196},
		{"RSI_IPA_STATE_SET", uint64(RSIIPAStateSet), 0xC4000197},
		{"RSI_IPA_STATE_GET", uint64(RSIIPAStateGet), 0xC4000198},
		{"RSI_HOST_CALL", uint64(RSIHostCall), 0xC4000199},
		{"SMCCC_RET_NOT_SUPPORTED", NotSupported, 0xFFFFFFFFFFFFFFFF},
		// RMM 1.0 status codes.
		{"RMI_SUCCESS", RMISuccess, 0},
		{"RMI_ERROR_INPUT", RMIErrorInput, 1},
		{"RMI_ERROR_REALM", RMIErrorRealm, 2},
		{"RMI_ERROR_REC", RMIErrorRec, 3},
		{"RMI_ERROR_RTT", RMIErrorRTT, 4},
		// TF-RMM v0.7.0: DEVICE 5, NOT_SUPPORTED 6; v0.8.0 and later swapped.
		{"RMI_ERROR_DEVICE v0.7", RMIErrorDeviceV07, 5},
		{"RMI_ERROR_NOT_SUPPORTED v0.7", RMIErrorNotSupportedV07, 6},
		{"RMI_ERROR_NOT_SUPPORTED v0.8", RMIErrorNotSupported, 5},
		{"RMI_ERROR_DEVICE v0.8", RMIErrorDevice, 6},
		{"RMI_ERROR_RTT_AUX", RMIErrorRTTAux, 7},
		// Linux rsi_smc.h.
		{"RSI_SUCCESS", RSISuccess, 0},
		{"RSI_ERROR_INPUT", RSIErrorInput, 1},
		{"RSI_ERROR_STATE", RSIErrorState, 2},
		{"RSI_INCOMPLETE", RSIIncomplete, 3},
		{"RSI_ERROR_UNKNOWN", RSIErrorUnknown, 4},
		// RSI_ABI_VERSION 1.0 = (1 << 16) | 0.
		{"Revision(1,0)", Revision(1, 0), 0x10000},
		{"Revision(1,1)", Revision(1, 1), 0x10001},
		{"Revision(2,0)", Revision(2, 0), 0x20000},
		{"HASH_SHA_256", uint64(HashSHA256), 0},
		{"HASH_SHA_512", uint64(HashSHA512), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %#x, want %#x", tt.got, tt.want)
			}
		})
	}
}

// Field positions from TF-RMM smc-rmi.h (RMM 1.0 / 1.1-alpha register 0,
// RMM 2.0 registers 1 and 2), as single-bit or full-field masks.
func TestFeatureFields(t *testing.T) {
	tests := []struct {
		f    Field
		mask uint64
	}{
		{Reg0S2SZ, 0xFF},
		{Reg0LPA2, 0x100},
		{Reg0SVEEn, 0x200},
		{Reg0SVEVL, 0x3C00},
		{Reg0NumBPs, 0xFC000},
		{Reg0NumWPs, 0x3F00000},
		{Reg0PMUEn, 0x4000000},
		{Reg0PMUNumCtrs, 0xF8000000},
		{Reg0HashSHA256, 0x100000000},
		{Reg0HashSHA512, 0x200000000},
		{Reg0GICv3NumLRs, 0x3C00000000},
		{Reg0MaxRecsOrder, 0x3C000000000},
		{Reg0DA, 0x40000000000},
		{Reg1GranSz4K, 0x1},
		{Reg1HashSHA256, 0x8},
		{Reg1HashSHA384, 0x10},
		{Reg1HashSHA512, 0x20},
		{Reg1MaxRecsOrder, 0x3C0},
		{Reg2DA, 0x1},
	}
	for _, tt := range tests {
		t.Run(tt.f.Name, func(t *testing.T) {
			if got := tt.f.Set(0, ^uint64(0)); got != tt.mask {
				t.Errorf("Set(0, all ones) = %#x, want %#x", got, tt.mask)
			}
			if got, want := tt.f.Get(^uint64(0)), tt.mask>>tt.f.Shift; got != want {
				t.Errorf("Get(all ones) = %#x, want %#x", got, want)
			}
			if got := tt.f.Get(^tt.mask); got != 0 {
				t.Errorf("Get(everything else) = %#x, want 0", got)
			}
		})
	}
	if !DA(0x40000000000) || DA(0x3FFFFFFFFFF) || DA(0xFFFFF80000000000) {
		t.Error("DA must test exactly bit 42")
	}
	if !DA2(1) || DA2(0xFFFFFFFFFFFFFFFE) {
		t.Error("DA2 must test exactly bit 0")
	}
	if got := Bits(0xABCD, 4, 8); got != 0xBC {
		t.Errorf("Bits(0xABCD, 4, 8) = %#x, want 0xbc", got)
	}
	if got := Bits(0xABCD, 0, 64); got != 0xABCD {
		t.Errorf("Bits(x, 0, 64) = %#x, want 0xabcd", got)
	}
}

func TestRevision(t *testing.T) {
	for _, r := range []struct{ major, minor uint16 }{{1, 0}, {1, 1}, {2, 0}, {0x7FFF, 0xFFFF}} {
		maj, min := SplitRevision(Revision(r.major, r.minor))
		if maj != r.major || min != r.minor {
			t.Errorf("SplitRevision(Revision(%d, %d)) = %d, %d", r.major, r.minor, maj, min)
		}
	}
	if got := RevisionString(0x10001); got != "1.1" {
		t.Errorf("RevisionString(0x10001) = %q, want 1.1", got)
	}
}

func TestNumbering(t *testing.T) {
	tests := []struct {
		n      Numbering
		status uint8
		want   string
	}{
		{Numbering10, 1, "RMI_ERROR_INPUT"},
		{Numbering10, 5, "RMI_STATUS_5"},
		{NumberingTFRMM07, 5, "RMI_ERROR_DEVICE"},
		{NumberingTFRMM07, 6, "RMI_ERROR_NOT_SUPPORTED"},
		{NumberingTFRMM08, 5, "RMI_ERROR_NOT_SUPPORTED"},
		{NumberingTFRMM08, 6, "RMI_ERROR_DEVICE"},
		{NumberingTFRMM08, 7, "RMI_ERROR_RTT_AUX"},
	}
	for _, tt := range tests {
		t.Run(tt.n.String()+"/"+tt.want, func(t *testing.T) {
			if got := tt.n.StatusName(tt.status); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	if _, ok := Numbering10.NotSupportedStatus(); ok {
		t.Error("RMM 1.0 has no RMI_ERROR_NOT_SUPPORTED")
	}
	if s, _ := NumberingTFRMM07.NotSupportedStatus(); s != 6 {
		t.Errorf("v0.7 NOT_SUPPORTED = %d, want 6", s)
	}
	if st, idx := RMIStatus(0x0304); st != 4 || idx != 3 {
		t.Errorf("RMIStatus(0x304) = %d, %d, want 4, 3", st, idx)
	}
}

func TestLookupProfile(t *testing.T) {
	for _, name := range []string{"none", "rmm-1.0", "rmm-1.1", "rmm-2.0", "realm"} {
		p, err := LookupProfile(name)
		if err != nil || p.Name != name || p.Description == "" {
			t.Errorf("LookupProfile(%q) = %+v, %v", name, p, err)
		}
	}
	_, err := LookupProfile("rmm-3")
	if !errors.Is(err, ErrUnknownProfile) {
		t.Fatalf("err = %v, want ErrUnknownProfile", err)
	}
	want := `unknown firmware profile "rmm-3" (known: none, rmm-1.0, rmm-1.1, rmm-2.0, realm, realm-da, tf-rmm-0.9, tf-rmm-0.8)`
	if err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	// Profiles hands out copies: changing one must not change the next.
	ps := Profiles()
	ps[1].RMIFeatures[0] = 0
	if p, _ := LookupProfile("rmm-1.0"); p.RMIFeatures[0] == 0 {
		t.Error("Profiles shares slices with the built-in table")
	}
}

func TestProbeDecisions(t *testing.T) {
	tests := []struct {
		profile string
		want    Decisions
	}{
		{"none", Decisions{}},
		{"rmm-1.0", Decisions{RMI: true}},
		{"rmm-1.1", Decisions{RMI: true, DA: true}},
		// RMI 2.0 only: VERSION(1.0) fails, so the glue sees no RMM and no
		// DA; a kernel asking for 2.0 sees both, DA in register 2.
		{"rmm-2.0", Decisions{RMI20: true, DAReg2: true}},
		{"realm", Decisions{RSI: true}},
		{"tf-rmm-0.9", Decisions{RMI20: true}},
		{"tf-rmm-0.8", Decisions{RMI: true}},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			p, err := LookupProfile(tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			got, table := Probe(New(p))
			if got != tt.want {
				t.Errorf("decisions %+v, want %+v", got, tt.want)
			}
			want := []struct {
				fid uint32
				arg uint64
			}{{0xC4000150, 0x10000}, {0xC4000150, 0x10001}, {0xC4000150, 0x20000},
				{0xC4000165, 0}, {0xC4000165, 1}, {0xC4000165, 2}, {0xC4000165, 3}, {0xC4000165, 4},
				{0xC4000190, 0x10000}}
			if len(table) != len(want) {
				t.Fatalf("table has %d answers, want %d: %v", len(table), len(want), table)
			}
			for i, w := range want {
				if table[i].FID != w.fid || table[i].Arg != w.arg {
					t.Errorf("call %d = %#x(%#x), want %#x(%#x)", i, table[i].FID, table[i].Arg, w.fid, w.arg)
				}
			}
			// The recorded table must lead to the same decisions.
			if again, _ := Probe(table); again != got {
				t.Errorf("replaying the table gives %+v, want %+v", again, got)
			}
		})
	}
}

func TestVersionNegotiation(t *testing.T) {
	tests := []struct {
		profile string
		fid     uint32
		req     uint64
		want    [4]uint64
	}{
		{"rmm-1.0", 0xC4000150, 0x10000, [4]uint64{0, 0x10000, 0x10000}},
		{"rmm-1.0", 0xC4000150, 0x10001, [4]uint64{1, 0x10000, 0x10000}},
		{"rmm-1.1", 0xC4000150, 0x10000, [4]uint64{0, 0x10000, 0x10001}},
		{"rmm-1.1", 0xC4000150, 0x10001, [4]uint64{0, 0x10001, 0x10001}},
		{"rmm-1.1", 0xC4000150, 0x20000, [4]uint64{1, 0x10001, 0x10001}},
		// Nothing below 1.0 in a 2.0-only RMM: lower reports 2.0 (TF-RMM).
		{"rmm-2.0", 0xC4000150, 0x10000, [4]uint64{1, 0x20000, 0x20000}},
		{"rmm-2.0", 0xC4000150, 0x20000, [4]uint64{0, 0x20000, 0x20000}},
		{"rmm-2.0", 0xC4000150, 0x30000, [4]uint64{1, 0x20000, 0x20000}},
		{"realm", 0xC4000190, 0x10000, [4]uint64{0, 0x10000, 0x10000}},
		{"realm", 0xC4000190, 0x20000, [4]uint64{1, 0x10000, 0x10000}},
		{"realm", 0xC4000150, 0x10000, Unknown(0x10000)},
		{"rmm-1.1", 0xC4000190, 0x10000, Unknown(0x10000)},
		{"none", 0xC4000150, 0x10000, Unknown(0x10000)},
		{"none", 0xC4000190, 0x10000, Unknown(0x10000)},
	}
	for _, tt := range tests {
		t.Run(tt.profile+"/"+FIDName(tt.fid)+"/"+RevisionString(tt.req), func(t *testing.T) {
			p, _ := LookupProfile(tt.profile)
			if got := New(p).SMC(tt.fid, tt.req); got != tt.want {
				t.Errorf("got %#x, want %#x", got, tt.want)
			}
		})
	}
}

func TestFeatures(t *testing.T) {
	tests := []struct {
		profile string
		index   uint64
		check   func(reg uint64) bool
		what    string
	}{
		{"rmm-1.0", 0, func(r uint64) bool { return r&0x40000000000 == 0 && r&0x300000000 == 0x300000000 && r&0xFF == 52 }, "no DA, SHA-256+512, S2SZ 52 (measured on TF-RMM v0.8.0)"},
		{"rmm-1.1", 0, func(r uint64) bool { return r&0x40000000000 != 0 }, "bit 42 set"},
		{"rmm-2.0", 0, func(r uint64) bool { return r>>32 == 0 }, "nothing above bit 31"},
		{"rmm-2.0", 1, func(r uint64) bool { return r&0x28 == 0x28 }, "SHA-256 (bit 3) and SHA-512 (bit 5)"},
		{"rmm-2.0", 2, func(r uint64) bool { return r&1 == 1 }, "DA in bit 0"},
		{"rmm-1.0", 7, func(r uint64) bool { return r == 0 }, "unimplemented register reads as zero"},
		{"realm", 0, func(r uint64) bool { return r == 0 }, "RSI register 0 reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.profile+"/"+tt.what, func(t *testing.T) {
			p, _ := LookupProfile(tt.profile)
			fid := uint32(0xC4000165)
			if tt.profile == "realm" {
				fid = 0xC4000191
			}
			got := New(p).SMC(fid, tt.index)
			if got[0] != 0 || !tt.check(got[1]) {
				t.Errorf("features(%d) = %#x, want status 0 and %s", tt.index, got, tt.what)
			}
		})
	}
}

func TestUnimplementedCalls(t *testing.T) {
	for _, name := range []string{"none", "rmm-1.0", "rmm-1.1", "rmm-2.0", "realm"} {
		p, _ := LookupProfile(name)
		m := New(p)
		for _, fid := range []uint32{0xC4000151, 0xC4000158, 0xC4000197, 0xC4000198, 0xC4000199, 0x84000000, 0xC4000000} {
			if got := m.SMC(fid, 0); got != [4]uint64{NotSupported} {
				t.Errorf("%s: %s = %#x, want NotSupported", name, FIDName(fid), got)
			}
		}
	}
}

func TestCmdline(t *testing.T) {
	tests := []struct {
		profile string
		want    string
	}{
		{"none", "cca_testbed.smc=none"},
		{"rmm-1.0", "cca_testbed.smc=c4000150:10000:0:10000:10000:0,c4000150:10001:1:10000:10000:0,c4000150:20000:1:10000:10000:0,c4000165:0:0:" +
			fmt.Sprintf("%x", rmm10Reg0) + ":0:0,c4000165:1:0:0:0:0,c4000165:2:0:0:0:0,c4000165:3:0:0:0:0,c4000165:4:0:0:0:0"},
		// NotSupported answers are left out: the glue answers unlisted calls so.
		{"realm", "cca_testbed.smc=c4000190:10000:0:10000:10000:0"},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			p, _ := LookupProfile(tt.profile)
			d, table := Probe(New(p))
			got := table.Cmdline()
			if got != tt.want {
				t.Errorf("Cmdline() =\n%s\nwant\n%s", got, tt.want)
			}
			back, err := ParseCmdline(got)
			if err != nil {
				t.Fatalf("ParseCmdline(%q): %v", got, err)
			}
			for _, a := range table {
				if r := back.SMC(a.FID, a.Arg); r != a.Ret {
					t.Errorf("round trip: %s(%#x) replays %#x, want %#x", FIDName(a.FID), a.Arg, r, a.Ret)
				}
			}
			if d2, _ := Probe(back); d2 != d {
				t.Errorf("decisions after round trip %+v, want %+v", d2, d)
			}
			if back.Cmdline() != got {
				t.Errorf("re-rendered %q, want %q", back.Cmdline(), got)
			}
		})
	}
}

func equalTables(a, b Table) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseCmdlineForms(t *testing.T) {
	want := Table{{FID: 0xC4000150, Arg: 0x10000, Ret: [4]uint64{0, 0x10000, 0x10001, 0}}}
	for _, in := range []string{
		"c4000150:10000:0:10000:10001:0",
		"cca_testbed.smc=c4000150:10000:0:10000:10001:0",
		"  cca_testbed.smc=C4000150:10000:0:10000:10001:0\n",
		"console=ttyAMA0 cca_testbed.smc=none root=/dev/vda cca_testbed.smc=c4000150:10000:0:10000:10001:0 panic=-1",
	} {
		got, err := ParseCmdline(in)
		if err != nil || !equalTables(got, want) {
			t.Errorf("ParseCmdline(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	got, err := ParseCmdline("cca_testbed.smc=none")
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("none = %#v, %v; want empty non-nil table", got, err)
	}
	if r := got.SMC(0xC4000150, 0x10000); r != Unknown(0x10000) {
		t.Errorf("empty table answers %#x, want NotSupported", r)
	}
}

func TestParseCmdlineErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"", `cca_testbed.smc: empty value; write cca_testbed.smc=none for no firmware`},
		{"cca_testbed.smc=", `cca_testbed.smc: empty value; write cca_testbed.smc=none for no firmware`},
		{"console=ttyAMA0 root=/dev/vda", `cca_testbed.smc: no cca_testbed.smc= parameter in the 2-word command line; add one or pass the value alone`},
		{"c4000150:10000:0", `cca_testbed.smc: entry 1 "c4000150:10000:0" has 3 fields, want 6 (FID:ARG:R0:R1:R2:R3)`},
		{"c4000150:10000:0:0:0:0,c4000165:0:0:0x1:0:0", `cca_testbed.smc: entry 2 "c4000165:0:0:0x1:0:0": field R1 "0x1": remove the 0x prefix (all numbers are hex)`},
		{"c4000150::0:0:0:0", `cca_testbed.smc: entry 1 "c4000150::0:0:0:0": field ARG "": empty; write 0 for zero`},
		{"c4000150:1:0:0:0:zz", `cca_testbed.smc: entry 1 "c4000150:1:0:0:0:zz": field R3 "zz": not a hex number`},
		{"1c4000150:1:0:0:0:0", `cca_testbed.smc: entry 1 "1c4000150:1:0:0:0:0": field FID "1c4000150": more than 32 bits`},
		{"c4000150:1:10000000000000000:0:0:0", `cca_testbed.smc: entry 1 "c4000150:1:10000000000000000:0:0:0": field R0 "10000000000000000": more than 64 bits`},
		{"c4000150:1:0:0:0:0,c4000150:1:1:0:0:0", `cca_testbed.smc: entry 2 "c4000150:1:1:0:0:0" repeats FID:ARG c4000150:1 of entry 1; keep one`},
		{"c4000150:1:0:0:0:0,", `cca_testbed.smc: entry 2 "" has 1 fields, want 6 (FID:ARG:R0:R1:R2:R3)`},
		{"c4000150:+1:0:0:0:0", `cca_testbed.smc: entry 1 "c4000150:+1:0:0:0:0": field ARG "+1": not a hex number`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseCmdline(tt.in)
			if !errors.Is(err, ErrCmdline) {
				t.Fatalf("err = %v, want ErrCmdline", err)
			}
			if err.Error() != tt.want {
				t.Errorf("err =\n%s\nwant\n%s", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Error("error spans lines")
			}
		})
	}
}

func FuzzParseCmdline(f *testing.F) {
	for _, name := range []string{"none", "rmm-1.0", "rmm-1.1", "rmm-2.0", "realm"} {
		p, _ := LookupProfile(name)
		_, table := Probe(New(p))
		f.Add(table.Cmdline())
	}
	f.Add("console=ttyAMA0 cca_testbed.smc=c4000150:0:0:0:0:0")
	f.Add("c4000150:10000:0:0x1:0:0")
	f.Fuzz(func(t *testing.T, s string) {
		table, err := ParseCmdline(s)
		if err != nil {
			if !errors.Is(err, ErrCmdline) {
				t.Fatalf("error %v does not wrap ErrCmdline", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		// Whatever parses must render and parse back to the same answers.
		again, err := ParseCmdline(table.Cmdline())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", table.Cmdline(), err)
		}
		for _, a := range table {
			if got := again.SMC(a.FID, a.Arg); got != a.Ret {
				t.Fatalf("%x(%x): %#x after round trip, want %#x", a.FID, a.Arg, got, a.Ret)
			}
		}
	})
}

func BenchmarkProbe(b *testing.B) {
	for _, name := range []string{"rmm-1.1", "realm"} {
		p, _ := LookupProfile(name)
		m := New(p)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				Probe(m)
			}
		})
	}
}

// TestMeasuredFirmware holds the profiles named after real firmware builds
// against what those builds answered the glue's nine calls on QEMU 10's
// RME machine (2026-11-28; the answers parameter in the same format, with
// the glue passing x2 = x3 = 0): every call, every register, x0..x3.
func TestMeasuredFirmware(t *testing.T) {
	measured := map[string]string{
		"tf-rmm-0.9": "c4000150:10000:1:20000:20000:0,c4000150:10001:1:20000:20000:0,c4000150:20000:0:20000:20000:0," +
			"c4000165:0:0:317f34:0:0,c4000165:1:0:142a9:0:0,c4000165:2:0:0:0:0,c4000165:3:0:3:0:0,c4000165:4:0:0:0:0," +
			"c4000190:10000:ffffffffffffffff:10000:0:0",
		"tf-rmm-0.8": "c4000150:10000:0:10000:10000:0,c4000150:10001:1:10000:10000:0,c4000150:20000:1:10000:10000:0," +
			"c4000165:0:0:28f34317f34:0:0,c4000165:1:0:0:0:0,c4000165:2:0:0:0:0,c4000165:3:0:0:0:0,c4000165:4:0:0:0:0," +
			"c4000190:10000:ffffffffffffffff:10000:0:0",
	}
	for name, real := range measured {
		t.Run(name, func(t *testing.T) {
			p, err := LookupProfile(name)
			if err != nil {
				t.Fatal(err)
			}
			_, got := Probe(New(p))
			if got.Value() != real {
				t.Errorf("model answers\n%s\nthe real firmware answered\n%s", got.Value(), real)
			}
		})
	}
}
