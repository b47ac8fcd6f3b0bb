// Package optim holds herd's optimizer pieces, all operating on flat
// parameter buffers (model.Params) that share one Layout with their
// gradients and moments: AdamW as PyTorch defines it, global
// gradient-norm clipping and learning-rate schedules. Micro-batch
// gradient accumulation is done by the training loops (pretrain,
// posttrain) with cluster.LeafSum, whose fixed summation tree makes one
// process and several ranks agree bit for bit.
package optim

import (
	"errors"
	"fmt"
	"math"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
)

// AdamWConfig holds AdamW's hyperparameters; the learning rate is given to
// each Update, usually from a Schedule.
type AdamWConfig struct {
	Beta1, Beta2 float64 // moment decay rates, each in [0, 1)
	Eps          float64 // added to the denominator, ≥ 0
	WeightDecay  float64 // decoupled decay coefficient, ≥ 0
	// Decay has one flag per layout tensor saying whether weight decay
	// applies to it; nil means Layout.DecayMask() (2-D weights only).
	Decay []bool
}

// DefaultAdamWConfig is herd's default: β1 0.9, β2 0.95, ε 1e-8, weight
// decay 0.1 on 2-D weights.
func DefaultAdamWConfig() AdamWConfig {
	return AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}
}

// Validate reports a hyperparameter that is out of range.
func (c AdamWConfig) Validate() error {
	var errs []error
	for _, b := range []struct {
		name string
		v    float64
	}{{"beta1", c.Beta1}, {"beta2", c.Beta2}} {
		if !(b.v >= 0 && b.v < 1) {
			errs = append(errs, fmt.Errorf("adamw: %s must be in [0, 1), got %v", b.name, b.v))
		}
	}
	if !(c.Eps >= 0) || math.IsInf(c.Eps, 0) {
		errs = append(errs, fmt.Errorf("adamw: eps must be a non-negative number, got %v", c.Eps))
	}
	if !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0) {
		errs = append(errs, fmt.Errorf("adamw: weight_decay must be a non-negative number, got %v", c.WeightDecay))
	}
	return errors.Join(errs...)
}

// segment is a run of consecutive elements that share a decay flag.
type segment struct {
	lo, hi int
	decay  bool
}

// AdamW is torch.optim.AdamW (amsgrad off, maximize off) over flat
// buffers. Its state — M, V and Step — is exported so checkpoints can save
// and restore it bit-exactly.
//
// One Update with learning rate lr does, per element, in float32 and in
// PyTorch's order of operations (single-tensor CPU path):
//
//	t    = Step + 1
//	p    = p·(1 − lr·wd)                    (only where decay applies)
//	m    = m + (1−β1)·(g − m)               (torch.lerp)
//	v    = v·β2 + (1−β2)·g·g
//	den  = √v / √(1−β2ᵗ) + ε
//	p    = p − (lr/(1−β1ᵗ))·m / den
//
// which is the bias-corrected Adam step p −= lr·m̂/(√v̂ + ε) after the
// decoupled decay p −= lr·wd·p. Scalars are computed in float64 and
// rounded to float32 once, as PyTorch does.
type AdamW struct {
	Config AdamWConfig
	// M and V are the first and second moments, laid out like the
	// parameters.
	M, V *model.Params
	// Step is the number of updates applied (PyTorch's "step").
	Step int

	backend kernels.Backend
	segs    []segment
	task    adamTask
}

// NewAdamW creates AdamW with zeroed moments for the layout. backend
// splits each update across its workers; nil runs it on the calling
// goroutine.
func NewAdamW(l *model.Layout, cfg AdamWConfig, backend kernels.Backend) (*AdamW, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Decay == nil {
		cfg.Decay = l.DecayMask()
	}
	if len(cfg.Decay) != len(l.Tensors) {
		return nil, fmt.Errorf("adamw: decay mask has %d entries, the layout has %d tensors", len(cfg.Decay), len(l.Tensors))
	}
	o := &AdamW{Config: cfg, M: model.NewParams(l), V: model.NewParams(l), backend: backend}
	for i, t := range l.Tensors {
		d := cfg.Decay[i]
		if n := len(o.segs); n > 0 && o.segs[n-1].decay == d && o.segs[n-1].hi == t.Offset {
			o.segs[n-1].hi = t.Offset + t.Size
			continue
		}
		o.segs = append(o.segs, segment{lo: t.Offset, hi: t.Offset + t.Size, decay: d})
	}
	return o, nil
}

// SetState restores the update count and moments (e.g. from a
// checkpoint). The buffers are adopted, not copied; they must match the
// optimizer's layout.
func (o *AdamW) SetState(step int, m, v *model.Params) error {
	if step < 0 {
		return fmt.Errorf("adamw: negative step %d", step)
	}
	for _, x := range []*model.Params{m, v} {
		if x == nil || len(x.Data) != len(o.M.Data) {
			return fmt.Errorf("adamw: moment buffer does not match the parameters (%d values)", len(o.M.Data))
		}
	}
	o.Step, o.M, o.V = step, m, v
	return nil
}

// Update applies one AdamW step with learning rate lr to params using
// grads. It allocates nothing.
func (o *AdamW) Update(params, grads *model.Params, lr float64) error {
	n := len(o.M.Data)
	if len(params.Data) != n || len(grads.Data) != n || len(o.V.Data) != n {
		return fmt.Errorf("adamw: parameters (%d), gradients (%d) and moments (%d) differ in size", len(params.Data), len(grads.Data), n)
	}
	if !(lr >= 0) || math.IsInf(lr, 0) {
		return fmt.Errorf("adamw: learning rate must be a non-negative number, got %v", lr)
	}
	o.Step++
	c := o.Config
	t := float64(o.Step)
	bc1 := 1 - math.Pow(c.Beta1, t)
	bc2 := 1 - math.Pow(c.Beta2, t)
	o.task = adamTask{
		p: params.Data, g: grads.Data, m: o.M.Data, v: o.V.Data, segs: o.segs,
		decayMul:  float32(1 - lr*c.WeightDecay),
		w1:        float32(1 - c.Beta1),
		b2:        float32(c.Beta2),
		c2:        float32(1 - c.Beta2),
		bc2sqrt:   float32(math.Sqrt(bc2)),
		eps:       float32(c.Eps),
		negStep:   float32(-lr / bc1),
		lerpLarge: 1-c.Beta1 >= 0.5,
	}
	if o.backend == nil {
		o.task.Run(0, n)
	} else {
		o.backend.Parallel(n, 1<<14, &o.task)
	}
	return nil
}

// adamTask is one update, split by element ranges.
type adamTask struct {
	p, g, m, v []float32
	segs       []segment
	decayMul   float32
	w1, b2, c2 float32
	bc2sqrt    float32
	eps        float32
	negStep    float32
	lerpLarge  bool // torch.lerp's formula for weights ≥ 0.5
}

// Run implements kernels.Task.
func (t *adamTask) Run(lo, hi int) {
	// Find the first segment that ends after lo.
	a, b := 0, len(t.segs)
	for a < b {
		mid := int(uint(a+b) >> 1)
		if t.segs[mid].hi <= lo {
			a = mid + 1
		} else {
			b = mid
		}
	}
	for s := a; s < len(t.segs) && t.segs[s].lo < hi; s++ {
		seg := t.segs[s]
		l, h := max(lo, seg.lo), min(hi, seg.hi)
		t.span(l, h, seg.decay)
	}
}

// span updates elements [lo, hi). Explicit float32 conversions keep every
// product rounded on its own (no fused multiply-add), matching PyTorch.
// Without decay the parameter is multiplied by 1, which is exact.
func (t *adamTask) span(lo, hi int, decay bool) {
	p, g, m, v := t.p[lo:hi], t.g[lo:hi], t.m[lo:hi], t.v[lo:hi]
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	w1, b2, c2, bc, eps, ns, dm := t.w1, t.b2, t.c2, t.bc2sqrt, t.eps, t.negStep, t.decayMul
	if !decay {
		dm = 1
	}
	if t.lerpLarge {
		for i := range p {
			gi := g[i]
			mi := gi - float32((gi-m[i])*(1-w1))
			vi := float32(v[i]*b2) + float32(float32(c2*gi)*gi)
			den := float32(float32(math.Sqrt(float64(vi)))/bc) + eps
			p[i] = float32(p[i]*dm) + float32(ns*mi)/den
			m[i], v[i] = mi, vi
		}
		return
	}
	for i := range p {
		gi := g[i]
		mi := m[i] + float32(w1*(gi-m[i]))
		vi := float32(v[i]*b2) + float32(float32(c2*gi)*gi)
		den := float32(float32(math.Sqrt(float64(vi)))/bc) + eps
		p[i] = float32(p[i]*dm) + float32(ns*mi)/den
		m[i], v[i] = mi, vi
	}
}
