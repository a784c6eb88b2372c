package runner

import (
	"context"
	"fmt"

	"github.com/droverhq/drover/pkg/task"
)

// mul multiplies the numbers of its args, a JSON array.
func mul(_ context.Context, t *task.Task) (task.Result, error) {
	var xs []float64
	if err := decodeArgs(t, &xs); err != nil {
		return nil, err
	}
	if len(xs) == 0 {
		return nil, badArgs(t, "want an array of numbers to multiply, such as [2, 3]")
	}
	p := 1.0
	for _, x := range xs {
		p *= x
	}
	return task.JSONResult(p)
}

// safediv divides a by b for args [a, b], failing for good when b is 0.
func safediv(_ context.Context, t *task.Task) (task.Result, error) {
	var xs []float64
	if err := decodeArgs(t, &xs); err != nil {
		return nil, err
	}
	if len(xs) != 2 {
		return nil, badArgs(t, "want [dividend, divisor], got %d numbers", len(xs))
	}
	if xs[1] == 0 {
		return nil, fmt.Errorf("safediv %s attempt %d: %g / 0: division by zero: %w", t.ID, t.Attempt, xs[0], task.ErrPermanent)
	}
	return task.JSONResult(xs[0] / xs[1])
}
