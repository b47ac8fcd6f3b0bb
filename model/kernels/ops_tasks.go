package kernels

import "math"

// The Tasks behind Ops. Each holds the arguments of one call; the CPU
// backend splits it over its workers (one, for NewSerial).

type rmsnormTask struct {
	x, y, w, rstd []float32
	c             int
	eps           float32
}

func (t *rmsnormTask) Run(lo, hi int) {
	c := t.c
	w := t.w[:c]
	for i := lo; i < hi; i++ {
		x := t.x[i*c : i*c+c]
		y := t.y[i*c : i*c+c]
		ss := Dot(x, x)
		r := float32(1 / math.Sqrt(float64(ss/float32(c)+t.eps)))
		t.rstd[i] = r
		if scaleMulSIMD(y, x, w, r) {
			continue
		}
		for j, v := range x {
			y[j] = v * r * w[j]
		}
	}
}

// rmsnormBwdTask accumulates dx row by row.
type rmsnormBwdTask struct {
	x, dy, dx, w, rstd []float32
	c                  int
}

func (t *rmsnormBwdTask) Run(lo, hi int) {
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

// rmsnormDWTask accumulates dw[j] += Σ_i dy[i,j]·x[i,j]·rstd[i], split by
// columns so that workers never write the same element.
type rmsnormDWTask struct {
	x, dy, dw, rstd []float32
	c, n            int
}

func (t *rmsnormDWTask) Run(lo, hi int) {
	c := t.c
	dw := t.dw[lo:hi]
	for i := 0; i < t.n; i++ {
		r := t.rstd[i]
		x := t.x[i*c+lo : i*c+hi]
		dy := t.dy[i*c+lo : i*c+hi]
		for j := range dw {
			dw[j] += dy[j] * x[j] * r
		}
	}
}

type swigluTask struct{ g, u, h, sig []float32 }

func (t *swigluTask) Run(lo, hi int) {
	g, u, h := t.g[lo:hi], t.u[lo:hi], t.h[lo:hi]
	var sigv []float32
	if t.sig != nil {
		sigv = t.sig[lo:hi]
	}
	if swigluSIMD(g, u, h, sigv) {
		return
	}
	if t.sig == nil {
		for i, gv := range g {
			h[i] = gv * Sigmoid(gv) * u[i]
		}
		return
	}
	sig := t.sig[lo:hi]
	for i, gv := range g {
		s := Sigmoid(gv)
		sig[i] = s
		h[i] = gv * s * u[i]
	}
}

type swigluBwdTask struct{ g, u, sig, dh, dg, du []float32 }

func (t *swigluBwdTask) Run(lo, hi int) {
	g, u, sig, dh, dg, du := t.g[lo:hi], t.u[lo:hi], t.sig[lo:hi], t.dh[lo:hi], t.dg[lo:hi], t.du[lo:hi]
	for i, gv := range g {
		s := sig[i]
		d := dh[i]
		du[i] = d * gv * s
		dg[i] = d * u[i] * s * (1 + gv*(1-s))
	}
}

type ropeTask struct {
	x              []float32
	heads, headDim int
	pos            []int32
	cos, sin       []float32
	inverse        bool
}

func (t *ropeTask) Run(lo, hi int) {
	half := t.headDim / 2
	width := t.heads * t.headDim
	for r := lo; r < hi; r++ {
		p := int(t.pos[r])
		cs := t.cos[p*half : p*half+half]
		sn := t.sin[p*half : p*half+half]
		row := t.x[r*width : (r+1)*width]
		for h := 0; h < t.heads; h++ {
			x0 := row[h*t.headDim : h*t.headDim+half]
			x1 := row[h*t.headDim+half : (h+1)*t.headDim]
			if t.inverse {
				for i := range x0 {
					a, b := x0[i], x1[i]
					x0[i] = a*cs[i] + b*sn[i]
					x1[i] = b*cs[i] - a*sn[i]
				}
			} else {
				for i := range x0 {
					a, b := x0[i], x1[i]
					x0[i] = a*cs[i] - b*sn[i]
					x1[i] = b*cs[i] + a*sn[i]
				}
			}
		}
	}
}

type xentTask struct {
	logits, nll, lse []float32
	targets          []int32
	v                int
}

func (t *xentTask) Run(lo, hi int) {
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
	m := MaxSlice(row)
	var s float32
	for _, x := range row {
		s += Exp(x - m)
	}
	return m + float32(math.Log(float64(s)))
}

type xentBwdTask struct {
	logits, dlogits, lse, coef []float32
	targets                    []int32
	v                          int
}

func (t *xentBwdTask) Run(lo, hi int) {
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
			d[j] = c * Exp(x-l)
		}
		d[tg] -= c
	}
}

// attnTask runs attention forward or backward for a range of (row, head)
// pairs (forward) or (row, kv head) pairs (backward), with single-threaded
// GEMMs from gemm.
type attnTask struct {
	a    *AttentionArgs
	gemm Backend
	bwd  bool
}

func (t *attnTask) Run(lo, hi int) {
	if t.bwd {
		t.backward(lo, hi)
	} else {
		t.forward(lo, hi)
	}
}

func (t *attnTask) forward(lo, hi int) {
	a := t.a
	T, H, hd := a.T, a.Heads, a.HeadDim
	G := H / a.KVHeads
	QD, KD := H*hd, a.KVHeads*hd
	scale := float32(1 / math.Sqrt(float64(hd)))
	blk := a.block()
	for idx := lo; idx < hi; idx++ {
		b, h := idx/H, idx%H
		kh := h / G
		q := a.Q[b*T*QD+h*hd:]
		k := a.K[b*T*KD+kh*hd:]
		v := a.V[b*T*KD+kh*hd:]
		p := a.P[idx*T*T : (idx+1)*T*T]
		out := a.Out[b*T*QD+h*hd:]
		start := a.Start[b*T : (b+1)*T]
		for i0 := 0; i0 < T; i0 += blk {
			i1 := min(i0+blk, T)
			j0 := int(start[i0])
			rows, keys := i1-i0, i1-j0
			t.gemm.GemmSerial(false, true, rows, keys, hd, scale, q[i0*QD:], QD, k[j0*KD:], KD, 0, p[i0*T+j0:], T)
			for i := i0; i < i1; i++ {
				MaskedSoftmax(p[i*T:(i+1)*T], int(start[i]), i+1)
			}
			t.gemm.GemmSerial(false, false, rows, hd, keys, 1, p[i0*T+j0:], T, v[j0*KD:], KD, 0, out[i0*QD:], QD)
		}
	}
}

func (t *attnTask) backward(lo, hi int) {
	a := t.a
	T, H, Hkv, hd := a.T, a.Heads, a.KVHeads, a.HeadDim
	G := H / Hkv
	QD, KD := H*hd, Hkv*hd
	scale := float32(1 / math.Sqrt(float64(hd)))
	blk := a.block()
	for idx := lo; idx < hi; idx++ {
		b, kh := idx/Hkv, idx%Hkv
		k := a.K[b*T*KD+kh*hd:]
		v := a.V[b*T*KD+kh*hd:]
		dk := a.DK[b*T*KD+kh*hd:]
		dv := a.DV[b*T*KD+kh*hd:]
		for i := 0; i < T; i++ {
			clear(dk[i*KD : i*KD+hd])
			clear(dv[i*KD : i*KD+hd])
		}
		start := a.Start[b*T : (b+1)*T]
		for h := kh * G; h < (kh+1)*G; h++ {
			ph := b*H + h
			p := a.P[ph*T*T : (ph+1)*T*T]
			dp := a.DP[ph*T*T : (ph+1)*T*T]
			q := a.Q[b*T*QD+h*hd:]
			dout := a.DOut[b*T*QD+h*hd:]
			dq := a.DQ[b*T*QD+h*hd:]
			for i0 := 0; i0 < T; i0 += blk {
				i1 := min(i0+blk, T)
				j0 := int(start[i0])
				rows, keys := i1-i0, i1-j0
				pb, dpb := p[i0*T+j0:], dp[i0*T+j0:]
				// dP = dO·Vᵀ, dV += Pᵀ·dO.
				t.gemm.GemmSerial(false, true, rows, keys, hd, 1, dout[i0*QD:], QD, v[j0*KD:], KD, 0, dpb, T)
				t.gemm.GemmSerial(true, false, keys, hd, rows, 1, pb, T, dout[i0*QD:], QD, 1, dv[j0*KD:], KD)
				// dS = P ∘ (dP − rowsum(P ∘ dP)); P is zero outside the mask.
				for i := i0; i < i1; i++ {
					pr := p[i*T+j0 : i*T+i1]
					dr := dp[i*T+j0 : i*T+i1]
					var dot float32
					for j, pv := range pr {
						dot += pv * dr[j]
					}
					for j, pv := range pr {
						dr[j] = pv * (dr[j] - dot)
					}
				}
				// dQ = dS·K/√d, dK += dSᵀ·Q/√d.
				t.gemm.GemmSerial(false, false, rows, hd, keys, scale, dpb, T, k[j0*KD:], KD, 0, dq[i0*QD:], QD)
				t.gemm.GemmSerial(true, false, keys, hd, rows, scale, dpb, T, q[i0*QD:], QD, 1, dk[j0*KD:], KD)
			}
		}
	}
}

// MaskedSoftmax replaces row[lo:hi] by its softmax and zeroes the rest.
func MaskedSoftmax(row []float32, lo, hi int) {
	clear(row[:lo])
	clear(row[hi:])
	s := row[lo:hi]
	m := MaxSlice(s)
	for j := range s {
		s[j] -= m
	}
	ExpSlice(s, s)
	Scale(1/Sum(s), s)
}
