package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cca-testbed/internal/timeout"
)

// restoreScale puts the factor back to the environment's after a test that
// set it through the CLI.
func restoreScale(t *testing.T) {
	t.Cleanup(func() {
		if f, err := timeout.FromEnv(); err == nil {
			timeout.Set(f)
		}
	})
}

// TestTimeoutScaleRefused: a factor that is not a number, not positive,
// not finite or so small that deadlines vanish is a usage error naming its
// source and the accepted range, before any work.
func TestTimeoutScaleRefused(t *testing.T) {
	restoreScale(t)
	tests := []struct {
		name, env string
		args      []string
		want      string
	}{
		{"malformed variable", "fast", []string{"matrix"}, `CCA_TESTBED_TIMEOUT_SCALE="fast": timeout scale out of range: not a number: give a factor from 0.01 to 1000`},
		{"zero variable", "0", []string{"snapshot", "faux/realm"}, `CCA_TESTBED_TIMEOUT_SCALE="0": timeout scale out of range: 0 is outside 0.01 to 1000`},
		{"negative variable", "-1", []string{"matrix", "--backend", "qemu"}, `CCA_TESTBED_TIMEOUT_SCALE="-1"`},
		{"NaN variable", "NaN", []string{"matrix"}, "not a finite number"},
		{"tiny variable", "1e-12", []string{"matrix"}, "outside 0.01 to 1000"},
		{"variable on ssh", "inf", []string{"ssh", "faux/realm"}, `CCA_TESTBED_TIMEOUT_SCALE="inf"`},
		{"malformed flag", "", []string{"matrix", "--backend", "qemu", "--timeout-scale", "2x"}, `--timeout-scale "2x": timeout scale out of range: not a number`},
		{"zero flag", "", []string{"boot", "faux/realm", "--timeout-scale", "0"}, `--timeout-scale "0"`},
		{"huge flag", "", []string{"ssh", "faux/realm", "--timeout-scale", "1e9"}, "outside 0.01 to 1000"},
		{"flag on emulated", "", []string{"matrix", "--timeout-scale", "2"}, "--timeout-scale: the emulated backend boots nothing"},
		{"flag on bisect", "", []string{"bisect", "series-dir", "--timeout-scale", "0"}, `--timeout-scale "0"`},
		{"variable on bisect", "-3", []string{"bisect", "series-dir"}, `CCA_TESTBED_TIMEOUT_SCALE="-3"`},
		{"negative boot-timeout on bisect", "", []string{"bisect", "series-dir", "--boot-timeout", "-1s"}, "--boot-timeout -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(timeout.Env, tt.env)
			out, stderr, code := testbed(t, tt.args...)
			if code != exitError || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q, want exit %d and one line with %q", code, stderr, exitError, tt.want)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}

// TestTimeoutScaleFlagWins: --timeout-scale beats the variable, and the
// variable alone is honoured; both reach the one factor every deadline
// reads.
func TestTimeoutScaleFlagWins(t *testing.T) {
	restoreScale(t)
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	runs := t.TempDir()
	tests := []struct {
		name, env string
		args      []string
		want      float64
	}{
		{"variable alone", "4", []string{"matrix", "--format", "json"}, 4},
		{"flag over variable", "4", []string{"snapshot", "faux/realm", "--backend", "qemu", "--cache", notDir, "--timeout-scale", "2.5"}, 2.5},
		{"flag over a malformed variable", "slow", []string{"ssh", "faux/realm", "--cache", runs, "--timeout-scale", "3"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(timeout.Env, tt.env)
			timeout.Set(1)
			_, stderr, _ := testbed(t, tt.args...)
			if strings.Contains(stderr, "timeout scale") {
				t.Fatalf("refused: %s", stderr)
			}
			if got := timeout.Scale(); got != tt.want {
				t.Errorf("scale after %v = %g, want %g (stderr %q)", tt.args, got, tt.want, stderr)
			}
		})
	}
}
