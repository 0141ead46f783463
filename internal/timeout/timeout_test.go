package timeout

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want float64
		bad  string // part of the error; "" for a good factor
	}{
		{"1", 1, ""},
		{"2.5", 2.5, ""},
		{" 3 ", 3, ""},
		{"0.01", 0.01, ""},
		{"1000", 1000, ""},
		{"abc", 0, "not a number"},
		{"", 0, "not a number"},
		{"1s", 0, "not a number"},
		{"0", 0, "outside 0.01 to 1000"},
		{"-2", 0, "outside"},
		{"1e-12", 0, "outside"}, // would make every deadline 0
		{"0.009", 0, "outside"},
		{"1001", 0, "outside"},
		{"NaN", 0, "not a finite number"},
		{"Inf", 0, "not a finite number"},
		{"-inf", 0, "not a finite number"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.bad == "" {
				if err != nil || got != tt.want {
					t.Errorf("Parse(%q) = %v, %v, want %v, nil", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrScale) || !strings.Contains(err.Error(), tt.bad) || !strings.Contains(err.Error(), "0.01 to 1000") {
				t.Errorf("Parse(%q) = %v, %v, want an ErrScale saying %q and the range", tt.in, got, err, tt.bad)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(Env, "")
	if f, err := FromEnv(); f != 1 || err != nil {
		t.Errorf("empty %s: %v, %v, want 1, nil", Env, f, err)
	}
	t.Setenv(Env, "x2")
	_, err := FromEnv()
	if err == nil || !strings.Contains(err.Error(), Env+`="x2"`) {
		t.Errorf("malformed %s: err %v, want one naming the variable and value", Env, err)
	}
}

// resetScale forgets Set for the rest of the test.
func resetScale(t *testing.T) {
	t.Cleanup(func() {
		mu.Lock()
		set, cur = false, 0
		mu.Unlock()
	})
}

func TestScaleFollowsEnvUntilSet(t *testing.T) {
	resetScale(t)
	t.Setenv(Env, "2")
	if got := Scaled(3 * time.Second); got != 6*time.Second {
		t.Errorf("Scaled(3s) with %s=2 = %v, want 6s", Env, got)
	}
	if got := Seconds(60 * time.Second); got != 120 {
		t.Errorf("Seconds(60s) with %s=2 = %d, want 120", Env, got)
	}
	// The flag wins over the variable.
	if err := Set(0.5); err != nil {
		t.Fatal(err)
	}
	if got := Scaled(3 * time.Second); got != 1500*time.Millisecond {
		t.Errorf("Scaled(3s) after Set(0.5) = %v, want 1.5s", got)
	}
	if got := Seconds(time.Second); got != 1 {
		t.Errorf("Seconds(1s) at 0.5 = %d, want 1 (rounded up)", got)
	}
	if err := Set(0); err == nil {
		t.Error("Set(0) succeeded, want an error")
	}
}

func TestSmallestScaleKeepsDeadlines(t *testing.T) {
	resetScale(t)
	if err := Set(Min); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{time.Nanosecond, time.Millisecond, time.Second} {
		if got := Scaled(d); got <= 0 {
			t.Errorf("Scaled(%v) at %g = %v, want > 0", d, Min, got)
		}
	}
	if got := Scaled(0); got != 0 {
		t.Errorf("Scaled(0) = %v, want 0 (zero means default to callers)", got)
	}
}

func TestMalformedEnvPanicsWithReason(t *testing.T) {
	resetScale(t)
	t.Setenv(Env, "fast")
	defer func() {
		r := recover()
		err, _ := r.(error)
		if err == nil || !strings.Contains(err.Error(), Env) {
			t.Errorf("recovered %v, want an error naming %s", r, Env)
		}
	}()
	Scale()
	t.Error("Scale with a malformed variable returned")
}
