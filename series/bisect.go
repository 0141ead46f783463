package series

import (
	"context"
	"fmt"
)

// Probe measures the kernel with the first k patches of a series applied
// (k = 0 is the base) and returns the value under watch.
type Probe func(ctx context.Context, k int) (string, error)

// Step is one probe of a bisection.
type Step struct {
	Prefix int
	Value  string
}

// Bisection is what Bisect found.
type Bisection struct {
	// First is the 1-based number of the first patch after which the
	// value differs from the base's; 0 when no prefix up to the whole
	// series changed it.
	First int
	Steps []Step // in the order probed, the base first
}

// Bisect finds the first patch of n that changes the probed value, by
// binary search over the n+1 outcomes (patch 1..n, or none): the base
// plus ceil(log2(n+1)) probes, so 4 for 6 patches. It assumes one change
// point, as bisection does: a value that changes and changes back between
// two probes can be missed.
func Bisect(ctx context.Context, n int, probe Probe) (*Bisection, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: nothing to bisect: the series has no patches", ErrFormat)
	}
	b := &Bisection{}
	base, err := probe(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("base (no patches): %w", err)
	}
	b.Steps = append(b.Steps, Step{0, base})
	// The first change lies in (lo, hi]; hi = n+1 stands for "none".
	lo, hi := 0, n+1
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		v, err := probe(ctx, mid)
		if err != nil {
			return nil, fmt.Errorf("first %d patches: %w", mid, err)
		}
		b.Steps = append(b.Steps, Step{mid, v})
		if v != base {
			hi = mid
		} else {
			lo = mid
		}
	}
	if hi <= n {
		b.First = hi
	}
	return b, nil
}
