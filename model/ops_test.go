package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/herdml/herd/model/kernels"
)

// Layer-level gradient checks: each pass's backward against central
// differences of a float64 re-implementation of its forward, on the
// scalar L = Σ r·output for a fixed random r.

func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64() * scale)
	}
	return s
}

func to64(s []float32) []float64 {
	d := make([]float64, len(s))
	for i, v := range s {
		d[i] = float64(v)
	}
	return d
}

// checkGrad compares analytic gradients with finite differences of f with
// respect to every element of x.
func checkGrad(t *testing.T, what string, x []float64, analytic []float32, f func() float64) {
	t.Helper()
	for j := range x {
		orig := x[j]
		num := centralDiff(func(eps float64) float64 { x[j] = orig + eps; return f() })
		x[j] = orig
		if !close(float64(analytic[j]), num, 2e-4, 1e-6) {
			t.Errorf("%s[%d]: analytic %.7g, numeric %.7g", what, j, analytic[j], num)
		}
	}
}

func TestRMSNormGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const n, c = 3, 7
	x, w, r := randSlice(rng, n*c, 1), randSlice(rng, c, 1), randSlice(rng, n*c, 1)
	y, rstd := make([]float32, n*c), make([]float32, n)
	(&rmsnormFwd{x: x, y: y, w: w, rstd: rstd, c: c, eps: 1e-5}).Run(0, n)
	dx, dw := make([]float32, n*c), make([]float32, c)
	(&rmsnormBwd{x: x, dy: r, dx: dx, w: w, rstd: rstd, c: c}).Run(0, n)
	(&rmsnormDW{x: x, dy: r, dw: dw, rstd: rstd, c: c, n: n}).Run(0, c)
	x64, w64, r64 := to64(x), to64(w), to64(r)
	f := func() float64 {
		var L float64
		for i := 0; i < n; i++ {
			var ss float64
			for j := 0; j < c; j++ {
				ss += x64[i*c+j] * x64[i*c+j]
			}
			rs := 1 / math.Sqrt(ss/c+1e-5)
			for j := 0; j < c; j++ {
				L += r64[i*c+j] * x64[i*c+j] * rs * w64[j]
			}
		}
		return L
	}
	checkGrad(t, "rmsnorm dx", x64, dx, f)
	checkGrad(t, "rmsnorm dw", w64, dw, f)
}

func TestSwiGLUGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	const n = 40
	g, u, r := randSlice(rng, n, 3), randSlice(rng, n, 1), randSlice(rng, n, 1)
	h, sig := make([]float32, n), make([]float32, n)
	(&swigluFwd{g: g, u: u, h: h, sig: sig}).Run(0, n)
	dg, du := make([]float32, n), make([]float32, n)
	(&swigluBwd{g: g, u: u, sig: sig, dh: r, dg: dg, du: du}).Run(0, n)
	g64, u64, r64 := to64(g), to64(u), to64(r)
	f := func() float64 {
		var L float64
		for i := range g64 {
			L += r64[i] * g64[i] / (1 + math.Exp(-g64[i])) * u64[i]
		}
		return L
	}
	checkGrad(t, "swiglu dg", g64, dg, f)
	checkGrad(t, "swiglu du", u64, du, f)
}

func TestCrossEntropyGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const n, v = 4, 9
	logits := randSlice(rng, n*v, 2)
	targets := []int32{3, -1, 0, 8}
	coef := []float32{0.5, 1, 2, 0.25}
	nll, lse := make([]float32, n), make([]float32, n)
	(&xentFwd{logits: logits, nll: nll, lse: lse, targets: targets, v: v}).Run(0, n)
	d := make([]float32, n*v)
	(&xentBwd{logits: logits, dlogits: d, lse: lse, coef: coef, targets: targets, v: v}).Run(0, n)
	l64 := to64(logits)
	f := func() float64 {
		var L float64
		for i := 0; i < n; i++ {
			if targets[i] < 0 {
				continue
			}
			var z float64
			for j := 0; j < v; j++ {
				z += math.Exp(l64[i*v+j])
			}
			L += float64(coef[i]) * (math.Log(z) - l64[i*v+int(targets[i])])
		}
		return L
	}
	checkGrad(t, "cross-entropy dlogits", l64, d, f)
}

// TestRopeAdjoint checks that the backward rotation is the transpose of
// the forward one: <R x, y> = <x, Rᵀ y>, and that R preserves norms.
func TestRopeAdjoint(t *testing.T) {
	c := tinyConfig(false, true)
	r := newRopeTable(c)
	r.ensure(50)
	rng := rand.New(rand.NewPCG(4, 4))
	for _, pos := range []int{0, 1, 7, 49} {
		x, y := randSlice(rng, 2*c.HeadDim, 1), randSlice(rng, 2*c.HeadDim, 1)
		rx := append([]float32(nil), x...)
		r.rotate(rx, 2, pos, false)
		rty := append([]float32(nil), y...)
		r.rotate(rty, 2, pos, true)
		var a, b, nx, nrx float64
		for i := range x {
			a += float64(rx[i]) * float64(y[i])
			b += float64(x[i]) * float64(rty[i])
			nx += float64(x[i]) * float64(x[i])
			nrx += float64(rx[i]) * float64(rx[i])
		}
		if math.Abs(a-b) > 1e-5 || math.Abs(nx-nrx) > 1e-4 {
			t.Fatalf("pos %d: <Rx,y> %g vs <x,Rᵀy> %g; |x|² %g vs |Rx|² %g", pos, a, b, nx, nrx)
		}
	}
}

// TestAttentionGradient checks the attention layer alone (document mask,
// GQA, several query blocks) against a float64 re-implementation.
func TestAttentionGradient(t *testing.T) {
	c := tinyConfig(false, false)
	m, err := New(c, kernels.Serial{})
	if err != nil {
		t.Fatal(err)
	}
	m.attnBlock = 3
	const B, T = 2, 7
	rng := rand.New(rand.NewPCG(5, 5))
	b := randomBatch(c, B, T, rng, true, false)
	ws := m.workspace(B, T)
	ws.positions(b)
	a := &ws.layers[0]
	QD, KD, H, Hkv, hd := c.QDim(), c.KVDim(), c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	copy(a.q, randSlice(rng, B*T*QD, 1))
	copy(a.k, randSlice(rng, B*T*KD, 1))
	copy(a.v, randSlice(rng, B*T*KD, 1))
	r := randSlice(rng, B*T*QD, 1)
	(&attnFwd{m: m, ws: ws, a: a}).Run(0, B*H)
	copy(ws.datt, r)
	(&attnBwd{m: m, ws: ws, a: a}).Run(0, B*Hkv)
	q64, k64, v64, r64 := to64(a.q[:B*T*QD]), to64(a.k[:B*T*KD]), to64(a.v[:B*T*KD]), to64(r)
	f := func() float64 {
		var L float64
		for bb := 0; bb < B; bb++ {
			for h := 0; h < H; h++ {
				kh := h / (H / Hkv)
				for i := 0; i < T; i++ {
					var sc []float64
					var js []int
					mx := math.Inf(-1)
					for j := 0; j <= i; j++ {
						if b.DocIDs[bb*T+j] != b.DocIDs[bb*T+i] {
							continue
						}
						var s float64
						for d := 0; d < hd; d++ {
							s += q64[(bb*T+i)*QD+h*hd+d] * k64[(bb*T+j)*KD+kh*hd+d]
						}
						s /= math.Sqrt(float64(hd))
						sc, js = append(sc, s), append(js, j)
						mx = math.Max(mx, s)
					}
					var z float64
					for n := range sc {
						sc[n] = math.Exp(sc[n] - mx)
						z += sc[n]
					}
					for n, j := range js {
						for d := 0; d < hd; d++ {
							L += r64[(bb*T+i)*QD+h*hd+d] * sc[n] / z * v64[(bb*T+j)*KD+kh*hd+d]
						}
					}
				}
			}
		}
		return L
	}
	checkGrad(t, "attention dq", q64, ws.dq[:B*T*QD], f)
	checkGrad(t, "attention dk", k64, ws.dk[:B*T*KD], f)
	checkGrad(t, "attention dv", v64, ws.dv[:B*T*KD], f)
}
