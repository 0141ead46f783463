package emulated

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cca-testbed/cell"
	"cca-testbed/checks"
	"cca-testbed/matrix"
	"cca-testbed/rmi"
	"cca-testbed/snapshot"
)

var update = flag.Bool("update", false, "rewrite testdata/*.snap from the model")

// model reads cell c exactly as `testbed matrix --backend emulated` does.
func model(t testing.TB, c cell.Cell) *snapshot.Snapshot {
	t.Helper()
	inst, err := Backend{}.Start(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	s, err := matrix.Snapshot(context.Background(), inst)
	if err != nil {
		t.Fatal(err)
	}
	s.Meta.Cell = c.String()
	return s
}

// TestGolden keeps one reviewed snapshot per cell: what real boots are
// compared against.
func TestGolden(t *testing.T) {
	for _, c := range cell.Matrix() {
		t.Run(c.String(), func(t *testing.T) {
			s := model(t, c)
			got := s.Text()
			file := filepath.Join("testdata", c.FileName()+".snap")
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./emulated -update to create it)", err)
			}
			if got != string(want) {
				a, _ := snapshot.Parse(bytes.NewReader(want))
				var d bytes.Buffer
				if a != nil {
					_ = snapshot.WriteDiff(&d, "golden", "model", snapshot.Diff(a, s))
				}
				t.Fatalf("snapshot differs from %s (-update to accept):\n%s", file, d.String())
			}
		})
	}
}

// TestKernelFacts pins the driver-core facts the model must get right,
// independently of the golden files.
func TestKernelFacts(t *testing.T) {
	tests := []struct {
		cell string
		has  []string // "kind path value" facts that must be present
		not  []string // facts that must be absent
	}{
		{"platform/realm", []string{
			"uevent devices/platform/arm-cca-dev MODALIAS=platform:arm-cca-dev",
			"uevent devices/platform/arm-cca-dev DRIVER=cca_guest_tsm",
			"modalias devices/platform/arm-cca-dev platform:arm-cca-dev",
			"link bus/platform/devices/arm-cca-dev ../../../devices/platform/arm-cca-dev",
			"module module/tsm_report live",
			"dir kernel/config/tsm/report",
			"cvm systemd-detect-virt cca",
		}, nil},
		{"platform/host-da", []string{
			"link class/tsm/tsm0 ../../devices/platform/arm-rmi-dev/tsm/tsm0",
			"subsystem devices/platform/arm-rmi-dev/tsm/tsm0 tsm",
			"driver devices/platform/arm-rmi-dev cca_host_tsm",
		}, []string{"module module/tsm_report live"}},
		{"platform/host-noda", nil, []string{"device devices/platform/arm-rmi-dev", "module module/cca_host_tsm live"}},
		// The posted faux patch as a module: nothing loads arm_cca_guest.
		{"faux/realm", []string{"absent kernel/config/tsm", "cvm systemd-detect-virt none"}, []string{
			"device devices/faux/arm-rsi-dev", "device devices/platform/arm-cca-dev", "module module/arm_cca_guest live",
		}},
		// Built in, its init creates the device at boot.
		{"faux-builtin/realm", []string{
			"link bus/faux/devices/arm-rsi-dev ../../../devices/faux/arm-rsi-dev",
			"uevent devices/faux/arm-rsi-dev DRIVER=faux_driver",
			"dir kernel/config/tsm/report",
			"cvm systemd-detect-virt none",
		}, []string{"module module/arm_cca_guest live", "module module/tsm_report live"}},
		{"faux-builtin/plain", []string{"dir kernel/config/tsm/report"}, []string{"device devices/faux/arm-rsi-dev"}},
		{"smccc-aux/host-noda", []string{
			"module module/cca_host_tsm live",
			"uevent devices/platform/arm-smccc/arm_cca_host.arm-rmi-dev.0 MODALIAS=auxiliary:arm_cca_host.arm-rmi-dev",
		}, []string{"driver devices/platform/arm-smccc/arm_cca_host.arm-rmi-dev.0 cca_host_tsm", "absent class/tsm"}},
		{"smccc-aux/realm", []string{"device devices/platform/arm-cca-dev", "cvm systemd-detect-virt cca"}, nil},
		{"smccc-aux-nolegacy/realm", []string{"cvm systemd-detect-virt none"}, []string{"device devices/platform/arm-cca-dev"}},
		{"smccc-bus/realm", []string{
			"file firmware/cca/realm_guest 1",
			"modalias devices/arm-rsi-dev-1 arm_smccc:arm-rsi-dev",
			"uevent devices/arm-rsi-dev-1 MODALIAS=arm_smccc:arm-rsi-dev",
			"driver devices/arm-rsi-dev-1 arm_cca_guest",
			"module module/arm_cca_guest live",
			"absent devices/platform/arm-smccc",
			"cvm systemd-detect-virt none",
		}, []string{"device devices/platform/arm-cca-dev"}},
		{"smccc-bus/plain", []string{"file firmware/cca/realm_guest 0"}, []string{"device devices/arm-rsi-dev-1", "module module/arm_cca_guest live"}},
		{"smccc-bus/host-da", []string{"file firmware/cca/realm_guest 0", "absent class/tsm"}, []string{"device devices/arm-rsi-dev-1"}},
		{"virtual/host-da", []string{"link class/tsm/tsm0 ../../devices/virtual/tsm/tsm0"}, nil},
		{"module-faux/host-da", []string{"link class/tsm/tsm0 ../../devices/faux/arm-rmi-dev/tsm/tsm0", "module module/cca_faux live"}, nil},
		{"module-faux/plain", []string{"module module/tsm_report live"}, []string{"module module/cca_faux live"}},
		{"platform/realm@trixie", []string{"cvm systemd-detect-virt none", "unit cca-cvm-gated.service inactive"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.cell, func(t *testing.T) {
			c, err := cell.Parse(tt.cell)
			if err != nil {
				t.Fatal(err)
			}
			s := model(t, c)
			text := s.Text()
			for _, f := range tt.has {
				if !strings.Contains(text, "\n"+f+"\n") {
					t.Errorf("missing fact %q in\n%s", f, text)
				}
			}
			for _, f := range tt.not {
				if strings.Contains(text, "\n"+f+"\n") {
					t.Errorf("unexpected fact %q", f)
				}
			}
		})
	}
}

// TestExpectations grades every modelled cell against checks/expectations.txt:
// the model and the recorded expectations must agree.
func TestExpectations(t *testing.T) {
	exp := checks.Default()
	for _, c := range cell.Matrix() {
		s := model(t, c)
		for _, r := range checks.Run(c.String(), s, exp) {
			if r.Status != checks.Pass && r.Status != checks.XFail {
				t.Errorf("%s %s: measured %q, expected %q (%s)", c, r.Check, r.Measured, r.Expected, r.Status)
			}
		}
	}
}

func TestRunUnknownCommand(t *testing.T) {
	sys, err := New(cell.Cell{Variant: cell.Platform, Role: cell.Plain, Userspace: cell.Forky}, rmi.Decisions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Run(context.Background(), []string{"rm", "-rf", "/"}); err == nil || !strings.Contains(err.Error(), "cannot run") {
		t.Fatalf("err = %v, want a not-supported error", err)
	}
}

// BenchmarkMatrix models every cell of the matrix end to end (firmware
// probe, driver core, udev/kmod, snapshot, checks). Target: under 50 ms.
func BenchmarkMatrix(b *testing.B) {
	cells := cell.Matrix()
	exp := checks.Default()
	for b.Loop() {
		for _, c := range cells {
			s := model(b, c)
			checks.Run(c.String(), s, exp)
		}
	}
}

// TestKernelsCoverVariants: every variant has its kernel in the table, and
// each TSM driver's id table names a bus its kernel registers.
func TestKernelsCoverVariants(t *testing.T) {
	for _, vi := range cell.Variants {
		if _, ok := kernels[vi.Name]; !ok {
			t.Errorf("variant %s has no kernel in the model", vi.Name)
		}
	}
	if len(kernels) != len(cell.Variants) {
		t.Errorf("%d kernels for %d variants", len(kernels), len(cell.Variants))
	}
	if _, err := boot("no-such-variant", rmi.Decisions{}); !errors.Is(err, cell.ErrUnknown) {
		t.Errorf("unknown variant: err = %v, want ErrUnknown", err)
	}
}

// TestAnswersEveryStep: the model answers each step the runner sends, at
// the argv the runner sends it, so a step added or a flag edited in
// snapshot.Steps cannot reach the emulated backend unanswered.
func TestAnswersEveryStep(t *testing.T) {
	c, err := cell.Parse("platform/realm")
	if err != nil {
		t.Fatal(err)
	}
	sys, err := New(c, rmi.Decisions{RSI: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range snapshot.Steps() {
		r, err := sys.Run(context.Background(), st.Argv)
		if err != nil {
			t.Errorf("step %s (%q): %v", st.Name, st.Argv, err)
			continue
		}
		if st.Must && r.ExitCode != 0 {
			t.Errorf("step %s exits %d; the runner needs 0", st.Name, r.ExitCode)
		}
	}
	if len(answers) != len(snapshot.Steps()) {
		t.Errorf("%d answers for %d steps", len(answers), len(snapshot.Steps()))
	}
}
