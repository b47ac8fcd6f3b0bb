package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Gradient checks of every fused pass: the backward against central
// differences of a float64 re-implementation of the forward, on the scalar
// L = Σ r·output for a fixed random r, on the serial and the CPU backend.

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

// centralDiff estimates f'(0) with a Richardson-extrapolated central
// difference (truncation error O(h⁴)).
func centralDiff(f func(eps float64) float64) float64 {
	const h = 1e-3
	d1 := (f(h) - f(-h)) / (2 * h)
	d2 := (f(h/2) - f(-h/2)) / h
	return (4*d2 - d1) / 3
}

// checkGrad compares analytic gradients with finite differences of f with
// respect to every element of x.
func checkGrad(t *testing.T, what string, x []float64, analytic []float32, f func() float64) {
	t.Helper()
	for j := range x {
		orig := x[j]
		num := centralDiff(func(eps float64) float64 { x[j] = orig + eps; return f() })
		x[j] = orig
		if d := math.Abs(float64(analytic[j]) - num); d > 1e-6+2e-4*math.Max(math.Abs(num), math.Abs(float64(analytic[j]))) {
			t.Errorf("%s[%d]: analytic %.7g, numeric %.7g", what, j, analytic[j], num)
		}
	}
}

func opsBackends(t *testing.T) []Backend {
	cpu := NewCPU(2)
	t.Cleanup(cpu.Close)
	return []Backend{NewSerial(), cpu}
}

func TestRMSNormGradient(t *testing.T) {
	for _, be := range opsBackends(t) {
		rng := rand.New(rand.NewPCG(1, 1))
		const n, c = 3, 7
		x, w, r := randSlice(rng, n*c, 1), randSlice(rng, c, 1), randSlice(rng, n*c, 1)
		y, rstd := make([]float32, n*c), make([]float32, n)
		be.RMSNorm(x, w, y, rstd, n, c, 1e-5)
		dx, dw := make([]float32, n*c), make([]float32, c)
		be.RMSNormBackward(x, w, rstd, r, dx, dw, n, c)
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
		checkGrad(t, be.Name()+" rmsnorm dx", x64, dx, f)
		checkGrad(t, be.Name()+" rmsnorm dw", w64, dw, f)
	}
}

func TestSwiGLUGradient(t *testing.T) {
	for _, be := range opsBackends(t) {
		rng := rand.New(rand.NewPCG(2, 2))
		const n = 40
		g, u, r := randSlice(rng, n, 3), randSlice(rng, n, 1), randSlice(rng, n, 1)
		h, sig := make([]float32, n), make([]float32, n)
		be.SwiGLU(g, u, h, sig)
		dg, du := make([]float32, n), make([]float32, n)
		be.SwiGLUBackward(g, u, sig, r, dg, du)
		g64, u64, r64 := to64(g), to64(u), to64(r)
		f := func() float64 {
			var L float64
			for i := range g64 {
				L += r64[i] * g64[i] / (1 + math.Exp(-g64[i])) * u64[i]
			}
			return L
		}
		checkGrad(t, be.Name()+" swiglu dg", g64, dg, f)
		checkGrad(t, be.Name()+" swiglu du", u64, du, f)
	}
}

func TestCrossEntropyGradient(t *testing.T) {
	for _, be := range opsBackends(t) {
		rng := rand.New(rand.NewPCG(3, 3))
		const n, v = 4, 9
		logits := randSlice(rng, n*v, 2)
		targets := []int32{3, -1, 0, 8}
		coef := []float32{0.5, 1, 2, 0.25}
		nll, lse := make([]float32, n), make([]float32, n)
		be.CrossEntropy(logits, n, v, targets, nll, lse)
		d := make([]float32, n*v)
		be.CrossEntropyBackward(logits, lse, coef, n, v, targets, d)
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
		checkGrad(t, be.Name()+" cross-entropy dlogits", l64, d, f)
	}
}

// TestRopeAdjoint checks that the backward rotation is the transpose of
// the forward one, <R x, y> = <x, Rᵀ y>, that R preserves norms, and that
// it pairs element i with i+headDim/2.
func TestRopeAdjoint(t *testing.T) {
	const heads, hd, npos = 2, 8, 5
	rng := rand.New(rand.NewPCG(4, 4))
	cos, sin := make([]float32, npos*hd/2), make([]float32, npos*hd/2)
	for i := range cos {
		a := rng.Float64() * 6
		cos[i], sin[i] = float32(math.Cos(a)), float32(math.Sin(a))
	}
	pos := []int32{0, 4, 2}
	for _, be := range opsBackends(t) {
		x, y := randSlice(rng, 3*heads*hd, 1), randSlice(rng, 3*heads*hd, 1)
		rx := append([]float32(nil), x...)
		be.Rope(rx, 3, heads, hd, pos, cos, sin, false)
		rty := append([]float32(nil), y...)
		be.Rope(rty, 3, heads, hd, pos, cos, sin, true)
		var a, b, nx, nrx float64
		for i := range x {
			a += float64(rx[i]) * float64(y[i])
			b += float64(x[i]) * float64(rty[i])
			nx += float64(x[i]) * float64(x[i])
			nrx += float64(rx[i]) * float64(rx[i])
		}
		if math.Abs(a-b) > 1e-5 || math.Abs(nx-nrx) > 1e-4 {
			t.Fatalf("%s: <Rx,y> %g vs <x,Rᵀy> %g; |x|² %g vs |Rx|² %g", be.Name(), a, b, nx, nrx)
		}
		// Row 1 (position 4), head 1, pair 2: rotate-half layout.
		off, p := 1*heads*hd+1*hd, 4*hd/2+2
		want0 := x[off+2]*cos[p] - x[off+2+hd/2]*sin[p]
		if math.Abs(float64(rx[off+2]-want0)) > 1e-6 {
			t.Fatalf("%s: rotate-half pairing wrong: %g, want %g", be.Name(), rx[off+2], want0)
		}
	}
}

// TestAttentionGradient checks attention (document mask, GQA, several
// uneven query blocks) against a float64 re-implementation.
func TestAttentionGradient(t *testing.T) {
	const B, T, H, Hkv, hd = 2, 7, 4, 2, 8
	docs := [][]int32{{0, 0, 1, 1, 1, 2, 2}, {0, 0, 0, 0, 0, 0, 0}}
	start := make([]int32, B*T)
	for b := range docs {
		s := 0
		for i := range docs[b] {
			if i > 0 && docs[b][i] != docs[b][i-1] {
				s = i
			}
			start[b*T+i] = int32(s)
		}
	}
	QD, KD := H*hd, Hkv*hd
	for _, be := range opsBackends(t) {
		rng := rand.New(rand.NewPCG(5, 5))
		a := &AttentionArgs{B: B, T: T, Heads: H, KVHeads: Hkv, HeadDim: hd, Block: 3, Start: start,
			Q: randSlice(rng, B*T*QD, 1), K: randSlice(rng, B*T*KD, 1), V: randSlice(rng, B*T*KD, 1),
			P: make([]float32, B*H*T*T), Out: make([]float32, B*T*QD),
			DOut: randSlice(rng, B*T*QD, 1), DQ: make([]float32, B*T*QD), DK: make([]float32, B*T*KD),
			DV: make([]float32, B*T*KD), DP: make([]float32, B*H*T*T)}
		be.Attention(a)
		be.AttentionBackward(a)
		q64, k64, v64, r64 := to64(a.Q), to64(a.K), to64(a.V), to64(a.DOut)
		f := func() float64 {
			var L float64
			for b := 0; b < B; b++ {
				for h := 0; h < H; h++ {
					kh := h / (H / Hkv)
					for i := 0; i < T; i++ {
						var sc []float64
						var js []int
						mx := math.Inf(-1)
						for j := 0; j <= i; j++ {
							if docs[b][j] != docs[b][i] {
								continue
							}
							var s float64
							for d := 0; d < hd; d++ {
								s += q64[(b*T+i)*QD+h*hd+d] * k64[(b*T+j)*KD+kh*hd+d]
							}
							s /= math.Sqrt(hd)
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
								L += r64[(b*T+i)*QD+h*hd+d] * sc[n] / z * v64[(b*T+j)*KD+kh*hd+d]
							}
						}
					}
				}
			}
			return L
		}
		checkGrad(t, be.Name()+" attention dq", q64, a.DQ, f)
		checkGrad(t, be.Name()+" attention dk", k64, a.DK, f)
		checkGrad(t, be.Name()+" attention dv", v64, a.DV, f)
	}
}

// TestOpsAllocs checks that the CPU backend's fused passes allocate
// nothing in steady state.
func TestOpsAllocs(t *testing.T) {
	cpu := NewCPU(2)
	defer cpu.Close()
	const n, c = 64, 32
	x, w, y, h, rstd := make([]float32, n*c), make([]float32, c), make([]float32, n*c), make([]float32, n*c), make([]float32, n)
	for i := range w {
		w[i] = 1
	}
	allocs := testing.AllocsPerRun(50, func() {
		cpu.RMSNorm(x, w, y, rstd, n, c, 1e-5)
		cpu.SwiGLU(x, y, h, nil)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per call, want 0", allocs)
	}
}

// TestSwiGLUValues checks SwiGLU's h and sigmoid against float64 over a
// range that reaches both saturations, on every backend (the AVX-512 one
// computes the sigmoid with the vector exp), including a tail that is
// not a whole vector.
func TestSwiGLUValues(t *testing.T) {
	var g []float32
	for x := -120.0; x <= 120; x += 0.37 {
		g = append(g, float32(x))
	}
	g = append(g, 0, float32(math.Inf(1)))
	n := len(g)
	u := make([]float32, n)
	for i := range u {
		u[i] = float32(math.Cos(float64(i)))
	}
	for _, be := range opsBackends(t) {
		h, sig := make([]float32, n), make([]float32, n)
		h2 := make([]float32, n)
		be.SwiGLU(g, u, h, sig)
		be.SwiGLU(g, u, h2, nil)
		for i, gv := range g {
			s := 1 / (1 + math.Exp(-float64(gv)))
			want := float64(gv) * s * float64(u[i])
			if math.IsInf(float64(gv), 1) {
				want = math.Inf(1) * float64(u[i])
			}
			// Near and past the end of float32's normal range only an absolute
			// bound holds (the vector exp saturates below -88).
			tol := 1e-6*math.Abs(want) + 1e-36
			if d := math.Abs(float64(h[i]) - want); !(d <= tol) && !(math.IsInf(want, 0) && float64(h[i]) == want) {
				t.Fatalf("%s: h(g=%g, u=%g) = %g, want %g", be.Name(), gv, u[i], h[i], want)
			}
			if d := math.Abs(float64(sig[i]) - s); !(d <= 1e-6*s+1e-36) {
				t.Fatalf("%s: sigmoid(%g) = %g, want %g", be.Name(), gv, sig[i], s)
			}
			if h2[i] != h[i] {
				t.Fatalf("%s: h(g=%g) is %g with sig and %g without", be.Name(), gv, h[i], h2[i])
			}
		}
	}
}
