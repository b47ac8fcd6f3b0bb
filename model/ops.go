package model

import (
	"math"

	"github.com/herdml/herd/model/kernels"
)

// expf is the float32 exponential used by the elementwise passes.
func expf(x float32) float32 { return kernels.Exp(x) }

// The per-row passes of the model. Each is a small Task struct whose fields
// are set before a Backend.Parallel call; the structs live in the model's
// workspace so dispatching them allocates nothing.

// rmsnormFwd computes y = x·rstd·w per row and saves rstd.
type rmsnormFwd struct {
	x, y, w, rstd []float32
	c             int
	eps           float32
}

func (t *rmsnormFwd) Run(lo, hi int) {
	c := t.c
	for i := lo; i < hi; i++ {
		x := t.x[i*c : i*c+c]
		y := t.y[i*c : i*c+c]
		var ss float32
		for _, v := range x {
			ss += v * v
		}
		r := float32(1 / math.Sqrt(float64(ss/float32(c)+t.eps)))
		t.rstd[i] = r
		w := t.w[:c]
		for j, v := range x {
			y[j] = v * r * w[j]
		}
	}
}

// rmsnormBwd accumulates dx += ∂/∂x of y = x·rstd·w given dy. The weight
// gradient is reduced separately (rmsnormDW) to avoid write conflicts.
type rmsnormBwd struct {
	x, dy, dx, w, rstd []float32
	c                  int
}

func (t *rmsnormBwd) Run(lo, hi int) {
	c := t.c
	w := t.w[:c]
	for i := lo; i < hi; i++ {
		x := t.x[i*c : i*c+c]
		dy := t.dy[i*c : i*c+c]
		dx := t.dx[i*c : i*c+c]
		r := t.rstd[i]
		var dot float32
		for j, v := range x {
			dot += dy[j] * w[j] * v
		}
		k := dot * r * r * r / float32(c)
		for j, v := range x {
			dx[j] += r*dy[j]*w[j] - k*v
		}
	}
}

// rmsnormDW accumulates dw[j] += Σ_i dy[i,j]·x[i,j]·rstd[i], parallel over
// columns j.
type rmsnormDW struct {
	x, dy, dw, rstd []float32
	c, n            int
}

func (t *rmsnormDW) Run(lo, hi int) {
	c := t.c
	for i := 0; i < t.n; i++ {
		r := t.rstd[i]
		x := t.x[i*c+lo : i*c+hi]
		dy := t.dy[i*c+lo : i*c+hi]
		dw := t.dw[lo:hi]
		for j := range dw {
			dw[j] += dy[j] * x[j] * r
		}
	}
}

// swigluFwd computes h = silu(g)·u elementwise, keeping sigmoid(g) in sig
// for the backward pass when sig is not nil.
type swigluFwd struct{ g, u, h, sig []float32 }

func (t *swigluFwd) Run(lo, hi int) {
	g, u, h := t.g[lo:hi], t.u[lo:hi], t.h[lo:hi]
	if t.sig == nil {
		for i, gv := range g {
			h[i] = gv / (1 + expf(-gv)) * u[i]
		}
		return
	}
	sig := t.sig[lo:hi]
	for i, gv := range g {
		s := 1 / (1 + expf(-gv))
		sig[i] = s
		h[i] = gv * s * u[i]
	}
}

// swigluBwd computes dg and du from dh for h = silu(g)·u, given
// sig = sigmoid(g). dh may alias dg.
type swigluBwd struct{ g, u, sig, dh, dg, du []float32 }

func (t *swigluBwd) Run(lo, hi int) {
	g, u, sig, dh, dg, du := t.g[lo:hi], t.u[lo:hi], t.sig[lo:hi], t.dh[lo:hi], t.dg[lo:hi], t.du[lo:hi]
	for i, gv := range g {
		s := sig[i]
		d := dh[i]
		du[i] = d * gv * s
		dg[i] = d * u[i] * s * (1 + gv*(1-s))
	}
}

// xentFwd computes, per row, nll = logsumexp(logits) − logits[target] and
// saves the logsumexp. Rows with a negative target get nll 0.
type xentFwd struct {
	logits, nll, lse []float32
	targets          []int32
	v                int
}

func (t *xentFwd) Run(lo, hi int) {
	v := t.v
	for i := lo; i < hi; i++ {
		row := t.logits[i*v : i*v+v]
		l := logSumExp(row)
		t.lse[i] = l
		if tg := t.targets[i]; tg >= 0 {
			t.nll[i] = l - row[tg]
		} else {
			t.nll[i] = 0
		}
	}
}

func logSumExp(row []float32) float32 {
	m := float32(math.Inf(-1))
	for _, x := range row {
		if x > m {
			m = x
		}
	}
	var s float32
	for _, x := range row {
		s += expf(x - m)
	}
	return m + float32(math.Log(float64(s)))
}

// xentBwd writes dlogits = coef·(softmax − onehot(target)) per row.
type xentBwd struct {
	logits, dlogits, lse, coef []float32
	targets                    []int32
	v                          int
}

func (t *xentBwd) Run(lo, hi int) {
	v := t.v
	for i := lo; i < hi; i++ {
		row := t.logits[i*v : i*v+v]
		d := t.dlogits[i*v : i*v+v]
		c := t.coef[i]
		tg := t.targets[i]
		if c == 0 || tg < 0 {
			clear(d)
			continue
		}
		l := t.lse[i]
		for j, x := range row {
			d[j] = c * expf(x-l)
		}
		d[tg] -= c
	}
}
