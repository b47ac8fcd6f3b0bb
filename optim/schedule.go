package optim

import (
	"errors"
	"fmt"
	"math"
)

// Schedule gives the learning rate of each optimizer update. step counts
// updates from 0: LR(0) is the rate of the first update.
type Schedule interface {
	LR(step int) float64
}

// warmup is the linear warmup factor shared by the schedules:
// (step+1)/w for step < w, so the first update already moves and update
// w−1 reaches the peak; 1 afterwards (and always, when w ≤ 0).
func warmup(step, w int) float64 {
	if step < w {
		return float64(step+1) / float64(w)
	}
	return 1
}

// progress is how far step is through the decay phase [start, end):
// (step − start)/(end − start), clamped to [0, 1].
func progress(step, start, end int) float64 {
	if end <= start {
		if step < start {
			return 0
		}
		return 1
	}
	return min(1, max(0, float64(step-start)/float64(end-start)))
}

func checkCommon(peak, floor float64, warm, total int) error {
	var errs []error
	if !(peak >= 0) || math.IsInf(peak, 0) {
		errs = append(errs, fmt.Errorf("schedule: peak learning rate must be a non-negative number, got %v", peak))
	}
	if !(floor >= 0) || floor > peak {
		errs = append(errs, fmt.Errorf("schedule: minimum learning rate must be in [0, peak], got %v", floor))
	}
	if warm < 0 {
		errs = append(errs, fmt.Errorf("schedule: warmup steps must not be negative, got %d", warm))
	}
	if total < warm {
		errs = append(errs, fmt.Errorf("schedule: total steps (%d) must be at least the warmup steps (%d)", total, warm))
	}
	return errors.Join(errs...)
}

// Constant is a fixed rate after an optional linear warmup:
//
//	LR(s) = Peak·(s+1)/Warmup   for s < Warmup
//	LR(s) = Peak                 otherwise
type Constant struct {
	Peak   float64
	Warmup int
}

// LR implements Schedule.
func (c Constant) LR(step int) float64 { return c.Peak * warmup(step, c.Warmup) }

// Validate reports out-of-range settings.
func (c Constant) Validate() error { return checkCommon(c.Peak, 0, c.Warmup, c.Warmup) }

// WarmupCosine is linear warmup then cosine decay to a floor (the Llama 3
// pretraining schedule):
//
//	LR(s) = Peak·(s+1)/Warmup                     for s < Warmup
//	LR(s) = Min + (Peak−Min)·½·(1 + cos(π·x))     for s ≥ Warmup,
//	        x = min(1, (s−Warmup)/(Total−Warmup))
//
// so LR(Warmup) = Peak, the midpoint of the decay is (Peak+Min)/2, and
// LR(s) = Min for s ≥ Total.
type WarmupCosine struct {
	Peak, Min     float64
	Warmup, Total int
}

// LR implements Schedule.
func (c WarmupCosine) LR(step int) float64 {
	if step < c.Warmup {
		return c.Peak * warmup(step, c.Warmup)
	}
	x := progress(step, c.Warmup, c.Total)
	return c.Min + (c.Peak-c.Min)*0.5*(1+math.Cos(math.Pi*x))
}

// Validate reports out-of-range settings.
func (c WarmupCosine) Validate() error { return checkCommon(c.Peak, c.Min, c.Warmup, c.Total) }

// WarmupLinear is linear warmup then linear decay to zero (the annealing
// schedule of Llama 3's final phase):
//
//	LR(s) = Peak·(s+1)/Warmup     for s < Warmup
//	LR(s) = Peak·(1 − x)          for s ≥ Warmup, x as in WarmupCosine
//
// reaching 0 at s = Total.
type WarmupLinear struct {
	Peak          float64
	Warmup, Total int
}

// LR implements Schedule.
func (c WarmupLinear) LR(step int) float64 {
	if step < c.Warmup {
		return c.Peak * warmup(step, c.Warmup)
	}
	return c.Peak * (1 - progress(step, c.Warmup, c.Total))
}

// Validate reports out-of-range settings.
func (c WarmupLinear) Validate() error { return checkCommon(c.Peak, 0, c.Warmup, c.Total) }

// WSD is warmup–stable–decay: linear warmup, a constant plateau, and a
// linear decay to Min over the last Decay steps:
//
//	LR(s) = Peak·(s+1)/Warmup               for s < Warmup
//	LR(s) = Peak                             for Warmup ≤ s < Total−Decay
//	LR(s) = Peak + (Min−Peak)·x              for s ≥ Total−Decay,
//	        x = min(1, (s−(Total−Decay))/Decay)
//
// A run can be continued from the plateau and annealed at any length by
// choosing Total later.
type WSD struct {
	Peak, Min            float64
	Warmup, Decay, Total int
}

// LR implements Schedule.
func (c WSD) LR(step int) float64 {
	if step < c.Warmup {
		return c.Peak * warmup(step, c.Warmup)
	}
	start := c.Total - c.Decay
	if step < start {
		return c.Peak
	}
	return c.Peak + (c.Min-c.Peak)*progress(step, start, c.Total)
}

// Validate reports out-of-range settings.
func (c WSD) Validate() error {
	err := checkCommon(c.Peak, c.Min, c.Warmup, c.Total)
	if c.Decay < 0 || c.Total-c.Decay < c.Warmup {
		err = errors.Join(err, fmt.Errorf("schedule: decay steps must be in [0, total−warmup] = [0, %d], got %d", c.Total-c.Warmup, c.Decay))
	}
	return err
}
