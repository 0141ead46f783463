package realm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cca-testbed/images"
	"cca-testbed/internal/timeout"
	"cca-testbed/qemu"
	"cca-testbed/rmi"
)

// probeCalls are the calls the probe prints whose answers the model
// predicts exactly: name on the console, function ID, x1 (x2 = x3 = 0).
var probeCalls = []struct {
	name string
	fid  uint32
	x1   uint64
}{
	{"RSI_VERSION", rmi.RSIVersion, rmi.Revision(1, 0)},
	{"RSI_VERSION 9.9", rmi.RSIVersion, rmi.Revision(9, 9)},
	{"RMI_VERSION 1.0", rmi.RMIVersion, rmi.Revision(1, 0)},
	{"RMI_VERSION 1.1", rmi.RMIVersion, rmi.Revision(1, 1)},
	{"RMI_VERSION 2.0", rmi.RMIVersion, rmi.Revision(2, 0)},
	{"RMI_VERSION 9.9", rmi.RMIVersion, rmi.Revision(9, 9)},
	{"RMI_FEATURES 0", rmi.RMIFeatures, 0},
	{"RMI_FEATURES 1", rmi.RMIFeatures, 1},
	{"RMI_FEATURES 9", rmi.RMIFeatures, 9},
	{"RMI_GRANULE_DELEGATE", 0xC4000151, 0x40000000},
}

// modelLines are the probe's lines for probeCalls as profile's model
// answers them.
func modelLines(t *testing.T, profile string) []string {
	t.Helper()
	p, err := rmi.LookupProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	m := rmi.New(p)
	var lines []string
	for _, c := range probeCalls {
		r := m.SMC(c.fid, c.x1, 0, 0)
		lines = append(lines, fmt.Sprintf("probe: %s 0x%016x 0x%016x 0x%016x\n", c.name, r[0], r[1], r[2]))
	}
	return lines
}

// tableFor is the table written for profile, as vm writes it per cell.
func tableFor(t *testing.T, profile string) []byte {
	t.Helper()
	p, err := rmi.LookupProfile(profile)
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
	return b
}

// buildProbe compiles testdata/probe, a stand-in kernel that makes a few
// calls and then does what mode asks (probe.c).
func buildProbe(t *testing.T, mode byte) string {
	t.Helper()
	dir := t.TempDir()
	elf, bin := filepath.Join(dir, "probe.elf"), filepath.Join(dir, "probe.bin")
	cc := exec.Command(CrossCompile+"gcc", "-O2", "-ffreestanding", "-fno-builtin", "-nostdlib", "-static", "-no-pie",
		"-mgeneral-regs-only", "-mstrict-align", "-Wl,--build-id=none", "-Wl,-T,testdata/probe/probe.ld",
		"-Wl,--no-warn-rwx-segments", "-o", elf, "testdata/probe/head.S", "testdata/probe/probe.c")
	if out, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v: %s", err, out)
	}
	if out, err := exec.Command(CrossCompile+"objcopy", "-O", "binary", elf, bin).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v: %s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	b[32] = mode // the header's res2 field
	if err := os.WriteFile(bin, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return bin
}

// boot runs the firmware with kernel and table until QEMU exits and
// returns the console and why the VM ended.
func boot(t *testing.T, fw, kernel string, table []byte, smp int) (string, error) {
	t.Helper()
	dir := t.TempDir()
	tp := filepath.Join(dir, "rsi-table.bin")
	if err := os.WriteFile(tp, table, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout.Scaled(60*time.Second))
	defer cancel()
	// Paused until QMP answers: the probe powers off in milliseconds.
	vm, err := qemu.Start(ctx, qemu.Config{Profile: qemu.ProfileRealm, Firmware: fw, RSITable: tp, Kernel: kernel, SMP: smp, Dir: filepath.Join(dir, "run"), Paused: true}, qemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vm.QMP(ctx, "cont", nil); err != nil {
		t.Fatal(err)
	}
	werr := vm.Wait()
	return vm.ConsoleTail(100), werr
}

func TestBoot(t *testing.T) {
	cache, err := images.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fw, err := Build(context.Background(), cache)
	if err != nil {
		t.Fatal(err)
	}
	// A second Build is a cache hit: same path, nothing compiled.
	if again, err := Build(context.Background(), cache); err != nil || again != fw {
		t.Fatalf("second build: %q, %v; want %q from the cache", again, err, fw)
	}
	_, table := realmTable(t)
	bad := append([]byte(nil), table...)
	bad[0x20] = 7 // hash algorithm, checksum now wrong too
	// QEMU accepts a gzip-compressed Image (a distro's vmlinuz), but
	// the loader places it as it is, so the firmware finds no Image.
	gz := filepath.Join(t.TempDir(), "probe.gz")
	if out, err := exec.Command("sh", "-c", "gzip -c < \"$0\" > \"$1\"", buildProbe(t, 0), gz).CombinedOutput(); err != nil {
		t.Fatalf("gzip: %v: %s", err, out)
	}
	tests := []struct {
		name   string
		kernel string
		table  []byte
		// fault is the firmware's fatal line ("" for a clean power-off).
		fault string
		// console lines the probe must have printed.
		want []string
		smp  int
		// model, when set, is the profile whose answers the probe's
		// modelled calls must show (modelLines).
		model string
	}{
		{"calls", buildProbe(t, 0), table, "", []string{
			"realmfw: RSI table v1, ",
			"probe: at EL1",
			"probe: SMCCC_VERSION 0x0000000000010002 ",
			"probe: RSI_VERSION 0x0000000000000000 0x0000000000010000 0x0000000000010000",
			"probe: RSI_VERSION 9.9 0x0000000000000001 0x0000000000010000 0x0000000000010000",
			"probe: ipa_width 0x0000000000000020 0x0000000000000000 ",
			"probe: RSI_IPA_STATE_GET 0x0000000000000000 0x0000000080000000 0x0000000000000001",
			"probe: RSI_IPA_STATE_GET mmio 0x0000000000000000 0x0000000009001000 0x0000000000000000",
			"probe: RSI_UNKNOWN 0xffffffffffffffff ",
			"probe: power off",
		}, 1, "realm"},
		{"stage-2 fault", buildProbe(t, 1), table, "realmfw: fatal: stage-2 fault ipa=0x1000 esr=", nil, 1, ""},
		{"call not in the table", buildProbe(t, 2), table, "realmfw: fatal: RSI call not in the table fid=0xc4000191 x1=0x9", nil, 1, ""},
		{"unexpected trap", buildProbe(t, 3), table, "realmfw: fatal: unexpected trap from EL1 esr=0x5a000000", nil, 1, ""},
		{"bad table", buildProbe(t, 0), bad, "realmfw: fatal: RSI table: checksum mismatch", nil, 1, ""},
		{"secondary CPU", buildProbe(t, 4), table, "", []string{
			"probe: PSCI_CPU_ON 0x0000000000000000 ",
			"probe: cpu1 0x0000000000000001 0x000000000000005a ", // EL1, our context id
			"probe: power off",
		}, 2, ""},
		{"compressed kernel", gz, table, "realmfw: fatal: no arm64 Image at the kernel address, the kernel never reached EL1", nil, 1, ""},
		// Host mode: RMI from the table, RSI not supported (the realm
		// config granule stays as it was), no stage 2.
		{"host rmm-1.1", buildProbe(t, 0), tableFor(t, "rmm-1.1"), "", []string{
			"realmfw: host mode, RMI table v1, ",
			"probe: at EL1",
			"probe: SMCCC_VERSION 0x0000000000010002 ",
			"probe: RSI_REALM_CONFIG 0xffffffffffffffff ",
			"probe: ipa_width 0x0000000000000000 0x0000000000000000 ",
			"probe: RSI_IPA_STATE_GET 0xffffffffffffffff ",
			"probe: RSI_UNKNOWN 0xffffffffffffffff ",
			"probe: power off",
		}, 1, "rmm-1.1"},
		{"host rmm-1.0", buildProbe(t, 0), tableFor(t, "rmm-1.0"), "", []string{"probe: power off"}, 1, "rmm-1.0"},
		{"host rmm-2.0", buildProbe(t, 0), tableFor(t, "rmm-2.0"), "", []string{"probe: power off"}, 1, "rmm-2.0"},
		{"host no stage 2", buildProbe(t, 1), tableFor(t, "rmm-1.1"), "", []string{"probe: read flash", "probe: power off"}, 1, ""},
		{"host secondary CPU", buildProbe(t, 4), tableFor(t, "rmm-1.0"), "", []string{
			"probe: cpu1 0x0000000000000001 0x000000000000005a ",
			"probe: power off",
		}, 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			con, err := boot(t, fw, tc.kernel, tc.table, tc.smp)
			want := tc.want
			if tc.model != "" {
				want = append(want, modelLines(t, tc.model)...)
			}
			for _, w := range want {
				if !strings.Contains(con, w) {
					t.Errorf("console lacks %q:\n%s", w, con)
				}
			}
			if tc.fault == "" {
				if strings.Contains(con, "realmfw: fatal") {
					t.Errorf("unexpected fault:\n%s", con)
				}
				return
			}
			var be *qemu.BootError
			if !errors.As(err, &be) || be.Reason != "realm firmware fault" || !strings.HasPrefix(be.Line, tc.fault) {
				t.Fatalf("got %v, want a BootError for %q; console:\n%s", err, tc.fault, con)
			}
			if !strings.Contains(be.Excerpt, tc.fault) {
				t.Errorf("excerpt lacks the fault line:\n%s", be.Excerpt)
			}
		})
	}
}
