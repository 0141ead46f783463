package snapshot

import (
	"strings"
	"testing"

	"cca-testbed/internal/timeout"
)

// TestSteps pins the commands a real guest is sent: the emulated backend
// answers whatever Steps says, so only this test notices a changed flag.
func TestSteps(t *testing.T) {
	t.Setenv(timeout.Env, "")
	want := []string{
		"systemctl is-system-running --wait",
		"udevadm settle --timeout=60",
		"sysfs-snapshot",
		"systemd-detect-virt --cvm",
		"systemctl is-active cca-cvm-gated.service",
	}
	steps := Steps()
	if len(steps) != len(want) {
		t.Fatalf("%d steps, want %d", len(steps), len(want))
	}
	for i, st := range steps {
		if got := strings.Join(st.Argv, " "); got != want[i] {
			t.Errorf("step %s: %q, want %q", st.Name, got, want[i])
		}
		if back, ok := StepFor(st.Argv); !ok || back.Name != st.Name {
			t.Errorf("StepFor(%q) = %s, %v", st.Argv, back.Name, ok)
		}
		if (st.Kind == "") != (st.Value == nil) {
			t.Errorf("step %s: a fact needs both a kind and a value reader", st.Name)
		}
	}
	if _, ok := StepFor([]string{"rm", "-rf", "/"}); ok {
		t.Error("StepFor matched a command that is no step")
	}
}

func TestStepFacts(t *testing.T) {
	tests := []struct {
		step, out string
		exit      int
		want      string
	}{
		{StepDetectVirt, "cca\n", 0, "cca"},
		{StepDetectVirt, "none\n", 1, "none"},
		{StepDetectVirt, "none\n", 0, "none(exit=0)"},
		{StepDetectVirt, "", 1, "empty(exit=1)"},
		{StepGatedUnit, "inactive\n", 3, "inactive"},
		{StepGatedUnit, "", 0, "empty"},
	}
	for _, tt := range tests {
		st := StepNamed(tt.step)
		if f := st.Fact([]byte(tt.out), tt.exit); f.Value != tt.want || f.Kind == "" || f.Path == "" {
			t.Errorf("%s(%q, exit %d) = %+v, want value %q", tt.step, tt.out, tt.exit, f, tt.want)
		}
	}
}

func TestStepNamedUnknown(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("StepNamed of an unknown name did not panic")
		}
	}()
	StepNamed("no-such-step")
}

// TestSettleScales: udevadm's own timeout follows the one timeout scale.
func TestSettleScales(t *testing.T) {
	t.Setenv(timeout.Env, "2.5")
	if got := strings.Join(StepNamed(StepSettle).Argv, " "); got != "udevadm settle --timeout=150" {
		t.Errorf("settle at scale 2.5: %q, want --timeout=150", got)
	}
	if _, ok := StepFor([]string{"udevadm", "settle", "--timeout=150"}); !ok {
		t.Error("StepFor does not find the scaled settle step")
	}
}
