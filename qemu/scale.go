package qemu

import (
	"os"
	"strconv"
	"time"
)

// ScaleEnv is the environment variable that multiplies every timeout.
const ScaleEnv = "CCA_TESTBED_TIMEOUT_SCALE"

// Scale is the factor every deadline of the testbed is multiplied by, from
// CCA_TESTBED_TIMEOUT_SCALE (default 1; a value that is not a positive
// number counts as 1). The budgets themselves already assume TCG without
// KVM on a 2-core machine, so 1 is right there; raise it for slower or
// busier hosts (under sanitizers, many VMs at once), lower it for KVM.
func Scale() float64 {
	f, err := strconv.ParseFloat(os.Getenv(ScaleEnv), 64)
	if err != nil || !(f > 0) || f > 1000 {
		return 1
	}
	return f
}

// Scaled multiplies d by Scale.
func Scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * Scale())
}
