package optim

import (
	"fmt"

	"github.com/herdml/herd/model"
)

// Accumulator sums the gradients of several micro-batches into one
// optimizer step. Each micro-batch gradient is the mean over its own
// tokens; Add weights it (normally by its token count, or 1 for equal
// micro-batches) so that Mean is the gradient of the mean loss over the
// whole batch: Σ wᵢ·gᵢ / Σ wᵢ.
//
// When the backward pass can add into a gradient buffer directly, summing
// k equal micro-batches there and calling Scale(g, 1/k) is the same
// computation without the extra buffer.
type Accumulator struct {
	// Steps is the number of micro-batches per optimizer step.
	Steps int
	// Sum holds Σ wᵢ·gᵢ until Mean divides it in place.
	Sum *model.Params

	n      int
	weight float64
}

// NewAccumulator allocates the sum buffer for a layout.
func NewAccumulator(l *model.Layout, steps int) (*Accumulator, error) {
	if steps < 1 {
		return nil, fmt.Errorf("gradient accumulation needs at least 1 micro-batch per step, got %d", steps)
	}
	return &Accumulator{Steps: steps, Sum: model.NewParams(l)}, nil
}

// Add accumulates weight·g and reports whether Steps micro-batches have
// been added. It allocates nothing.
func (a *Accumulator) Add(g *model.Params, weight float64) (ready bool, err error) {
	if len(g.Data) != len(a.Sum.Data) {
		return false, fmt.Errorf("gradient accumulation: gradient has %d values, the buffer %d", len(g.Data), len(a.Sum.Data))
	}
	if !(weight > 0) {
		return false, fmt.Errorf("gradient accumulation: micro-batch weight must be positive, got %v", weight)
	}
	if a.n >= a.Steps {
		return false, fmt.Errorf("gradient accumulation: %d micro-batches already added; call Reset after the step", a.n)
	}
	s, w := a.Sum.Data, float32(weight)
	g2 := g.Data[:len(s)]
	if a.n == 0 {
		for i := range s {
			s[i] = w * g2[i]
		}
	} else {
		for i := range s {
			s[i] += w * g2[i]
		}
	}
	a.n++
	a.weight += weight
	return a.n == a.Steps, nil
}

// Count is the number of micro-batches added since the last Reset.
func (a *Accumulator) Count() int { return a.n }

// Mean divides the sum by the total weight, in place, and returns it; call
// it once per step, after the last Add.
func (a *Accumulator) Mean() *model.Params {
	if a.weight > 0 {
		Scale(a.Sum, float32(1/a.weight))
	}
	return a.Sum
}

// Reset starts the next step.
func (a *Accumulator) Reset() {
	a.n, a.weight = 0, 0
}
