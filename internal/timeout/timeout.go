// Package timeout owns the one factor every deadline of the testbed is
// multiplied by: CCA_TESTBED_TIMEOUT_SCALE, or the CLI's --timeout-scale,
// which wins. The budgets themselves assume TCG without KVM on a 2-core
// machine, so 1 is right there; raise it for slower or busier hosts
// (sanitizers, many VMs at once), lower it for KVM.
//
// Tests: go test ./internal/timeout
package timeout

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Env is the environment variable that sets the factor.
const Env = "CCA_TESTBED_TIMEOUT_SCALE"

// The accepted range. Below Min a 1 s grace period would be under 10 ms
// and the short deadlines would fire before anything could answer; above
// Max a hung boot would hold its caller for days.
const (
	Min = 0.01
	Max = 1000.0
)

// ErrScale marks a factor that is not a number from Min to Max.
var ErrScale = errors.New("timeout scale out of range")

// Parse reads a factor: a decimal number from Min to Max. Its error says
// what is wrong and the accepted range; the caller names the source.
func Parse(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w: not a number: give a factor from %g to %g (1 is the default)", ErrScale, Min, Max)
	case math.IsNaN(f) || math.IsInf(f, 0):
		return 0, fmt.Errorf("%w: %v is not a finite number: give a factor from %g to %g (1 is the default)", ErrScale, f, Min, Max)
	case f < Min || f > Max:
		return 0, fmt.Errorf("%w: %g is outside %g to %g (1 is the default)", ErrScale, f, Min, Max)
	}
	return f, nil
}

// FromEnv returns the factor Env asks for, 1 when Env is unset or empty.
// Its error names the variable and its value.
func FromEnv() (float64, error) {
	s, ok := os.LookupEnv(Env)
	if !ok || s == "" {
		return 1, nil
	}
	f, err := Parse(s)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %w", Env, s, err)
	}
	return f, nil
}

var (
	mu  sync.Mutex
	set bool
	cur float64
)

// Set makes f the factor of this process (the CLI does, from its flag or
// the environment, before any work). f must be a factor Parse accepts.
func Set(f float64) error {
	if _, err := Parse(strconv.FormatFloat(f, 'g', -1, 64)); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	set, cur = true, f
	return nil
}

// Scale is the factor: what Set chose, else Env's now (1 when unset). A
// malformed Env that no caller validated is a programming error of the
// caller (the CLI checks it first and refuses it as a usage error), so it
// panics with the reason rather than silently use 1.
func Scale() float64 {
	mu.Lock()
	defer mu.Unlock()
	if set {
		return cur
	}
	f, err := FromEnv()
	if err != nil {
		panic(err)
	}
	return f
}

// Scaled multiplies d by Scale. A positive d stays positive.
func Scaled(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return max(time.Duration(float64(d)*Scale()), time.Nanosecond)
}

// Seconds is Scaled(d) in whole seconds, rounded up and at least 1, for
// the timeout arguments of guest and host commands
// (udevadm settle --timeout=N).
func Seconds(d time.Duration) int {
	return max(int(math.Ceil(Scaled(d).Seconds())), 1)
}
