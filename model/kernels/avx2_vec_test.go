//go:build goexperiment.simd && amd64

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"simd/archsimd"
	"testing"
)

// The AVX2 twins are called directly, so an AVX-512 machine tests them
// too; `GODEBUG=cpu.avx512f=off GOEXPERIMENT=simd go test` runs the whole
// suite through them as an AVX2-only CPU would (see .ci/run).

// requireAVX2 skips t on CPUs without AVX2 and FMA.
func requireAVX2(t testing.TB) {
	t.Helper()
	if !hasAVX2() {
		t.Skip("the CPU has no AVX2 with FMA")
	}
}

// guarded returns a slice of n elements set by fill inside a buffer with
// sentinel guards before and after, and a check that reports writes to
// the guards.
func guarded(t *testing.T, n int, fill func(i int) float32) ([]float32, func(what string)) {
	const pad, sentinel = 9, float32(-12345.5)
	buf := make([]float32, n+2*pad)
	for i := range buf {
		buf[i] = sentinel
	}
	s := buf[pad : pad+n : pad+n]
	for i := range s {
		s[i] = fill(i)
	}
	return s, func(what string) {
		t.Helper()
		for i := range pad {
			if buf[i] != sentinel || buf[pad+n+i] != sentinel {
				t.Fatalf("%s: wrote outside the slice of %d elements", what, n)
			}
		}
	}
}

// avx2Lengths are every length up to a few vectors, then some long ones.
func avx2Lengths() []int {
	var ns []int
	for n := range 71 {
		ns = append(ns, n)
	}
	return append(ns, 127, 128, 129, 1000, 4099)
}

func TestDotSumAVX2(t *testing.T) {
	requireAVX2(t)
	rng := rand.New(rand.NewPCG(21, 21))
	const eps = 1.0 / (1 << 23)
	for _, n := range avx2Lengths() {
		// Offsets move the slices off the 32-byte alignment of the allocation.
		for _, off := range []int{0, 1, 3} {
			a := vecInput(rng, n+off, 1)[off:]
			b := vecInput(rng, n+off, 3)[off:]
			var dot, absDot, sum, absSum float64
			for i := range a {
				dot += float64(a[i]) * float64(b[i])
				absDot += math.Abs(float64(a[i]) * float64(b[i]))
				sum += float64(a[i])
				absSum += math.Abs(float64(a[i]))
			}
			bound := func(mag float64) float64 { return float64(n+2) * eps * mag }
			if got := dotAVX2(a, b); math.Abs(float64(got)-dot) > bound(absDot) {
				t.Errorf("n=%d off=%d: dotAVX2 = %g, want %g", n, off, got, dot)
			}
			if got := sumAVX2(a); math.Abs(float64(got)-sum) > bound(absSum) {
				t.Errorf("n=%d off=%d: sumAVX2 = %g, want %g", n, off, got, sum)
			}
		}
	}
}

// TestDotSumAVX2Specials checks that NaN and ±Inf in any position, main
// loop or tail, reach the result as in the scalar loops.
func TestDotSumAVX2Specials(t *testing.T) {
	requireAVX2(t)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, n := range []int{1, 7, 8, 9, 31, 32, 33, 45} {
		for at := range n {
			for _, v := range []float32{nan, inf, -inf} {
				a := make([]float32, n)
				b := make([]float32, n)
				for i := range a {
					a[i], b[i] = float32(i%5)-2, 0.5
				}
				a[at] = v
				wantDot, wantSum := dotGo(a, b), sumGo(a)
				same := func(got, want float32) bool {
					return got == want || (got != got && want != want)
				}
				if got := dotAVX2(a, b); !same(got, wantDot) {
					t.Fatalf("n=%d, %g at %d: dotAVX2 = %g, want %g", n, v, at, got, wantDot)
				}
				if got := sumAVX2(a); !same(got, wantSum) {
					t.Fatalf("n=%d, %g at %d: sumAVX2 = %g, want %g", n, v, at, got, wantSum)
				}
			}
		}
	}
}

func TestAxpyScaleAVX2(t *testing.T) {
	requireAVX2(t)
	rng := rand.New(rand.NewPCG(22, 22))
	const eps = 1.0 / (1 << 23)
	for _, n := range avx2Lengths() {
		a := vecInput(rng, n, 1)
		b := vecInput(rng, n, 3)
		y, check := guarded(t, n, func(i int) float32 { return b[i] })
		axpyAVX2(-0.75, a, y)
		check(fmt.Sprintf("axpyAVX2 n=%d", n))
		for i := range y {
			want := float64(b[i]) - 0.75*float64(a[i])
			// One FMA: a single rounding of the exact result.
			if math.Abs(float64(y[i])-want) > eps*math.Abs(want) {
				t.Fatalf("n=%d: axpyAVX2 y[%d] = %g, want %g", n, i, y[i], want)
			}
		}
		x, check := guarded(t, n, func(i int) float32 { return a[i] })
		scaleAVX2(2.5, x)
		check(fmt.Sprintf("scaleAVX2 n=%d", n))
		for i := range x {
			if want := 2.5 * a[i]; x[i] != want {
				t.Fatalf("n=%d: scaleAVX2 x[%d] = %g, want %g", n, i, x[i], want)
			}
		}
	}
	// Infinities and NaN go through elementwise.
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	x := []float32{inf, -inf, nan, 1, 2, 3, 4, 5, 6, inf}
	y := []float32{1, 1, 1, nan, -inf, 0, 0, 0, 0, -inf}
	axpyAVX2(2, x, y)
	for i, want := range []float32{inf, -inf, nan, nan, -inf, 6, 8, 10, 12, nan} {
		if !(y[i] == want || (y[i] != y[i] && want != want)) {
			t.Errorf("axpyAVX2 specials: y[%d] = %g, want %g", i, y[i], want)
		}
	}
}

// TestMaxAVX2 checks maxAVX2, and MaxSlice (the AVX-512 kernel on
// AVX-512 CPUs), against maxGo with NaN, ±Inf and the maximum at every
// position among -Inf, NaN or ordinary values: NaN is skipped and an
// all-NaN slice gives -Inf whichever vector, accumulator or tail holds
// it. (The kernels once relied on VMAXPS returning its second source on
// NaN, which fails where the compiler swaps the commutative sources.)
// TestMaxSliceSpecials runs on the AVX2 tier under GODEBUG=cpu.avx512f=off
// (see .ci/run).
func TestMaxAVX2(t *testing.T) {
	requireAVX2(t)
	rng := rand.New(rand.NewPCG(23, 23))
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, f := range []struct {
		name string
		max  func([]float32) float32
	}{{"maxAVX2", maxAVX2}, {"MaxSlice", MaxSlice}} {
		for _, n := range avx2Lengths() {
			x := vecInput(rng, n, 10)
			if got, want := f.max(x), maxGo(x); got != want {
				t.Fatalf("n=%d: %s = %g, want %g", n, f.name, got, want)
			}
			if n > 70 {
				continue
			}
			for at := range n {
				for _, v := range []float32{nan, inf, 1e30, -inf} {
					for _, rest := range []float32{-inf, nan, -1} {
						s := make([]float32, n)
						for i := range s {
							s[i] = rest
						}
						s[at] = v
						if got, want := f.max(s), maxGo(s); got != want {
							t.Fatalf("n=%d, %g at %d among %g: %s = %g, want %g", n, v, at, rest, f.name, got, want)
						}
					}
				}
			}
		}
	}
}

func TestSwiGLUAVX2(t *testing.T) {
	requireAVX2(t)
	var gs []float32
	for x := -120.0; x <= 120; x += 0.37 {
		gs = append(gs, float32(x))
	}
	gs = append(gs, 0, float32(math.Inf(1)), float32(math.Inf(-1)), -88.5, -87.3, 88.7, 104, -104)
	nan := float32(math.NaN())
	for _, n := range append(avx2Lengths()[:71], len(gs)) {
		g := gs[len(gs)-n:]
		u, _ := guarded(t, n, func(i int) float32 { return float32(math.Cos(float64(i))) })
		h, checkH := guarded(t, n, func(int) float32 { return nan })
		sig, checkSig := guarded(t, n, func(int) float32 { return nan })
		h2, checkH2 := guarded(t, n, func(int) float32 { return nan })
		swigluAVX2(g, u, h, sig)
		swigluAVX2(g, u, h2, nil)
		checkH(fmt.Sprintf("swigluAVX2 h n=%d", n))
		checkSig(fmt.Sprintf("swigluAVX2 sig n=%d", n))
		checkH2(fmt.Sprintf("swigluAVX2 h (no sig) n=%d", n))
		for i, gv := range g {
			fg := float64(gv)
			s := 1 / (1 + math.Exp(-fg))
			want := fg * s * float64(u[i])
			if math.IsInf(fg, 0) {
				// As the portable loop: g·sigmoid(g)·u, so −Inf·0 is NaN.
				want = float64(gv * Sigmoid(gv) * u[i])
				if got := float64(h[i]); !(got == want || (math.IsNaN(got) && math.IsNaN(want))) {
					t.Fatalf("n=%d: h(g=%g, u=%g) = %g, want %g as the portable loop", n, gv, u[i], got, want)
				}
			}
			tol := 1e-6*math.Abs(want) + 1e-36
			if d := math.Abs(float64(h[i]) - want); !(d <= tol) && !(math.IsInf(want, 0) && float64(h[i]) == want) && !math.IsNaN(want) {
				t.Fatalf("n=%d: h(g=%g, u=%g) = %g, want %g", n, gv, u[i], h[i], want)
			}
			if d := math.Abs(float64(sig[i]) - s); !(d <= 1e-6*s+1e-36) {
				t.Fatalf("n=%d: sigmoid(%g) = %g, want %g", n, gv, sig[i], s)
			}
			if math.Float32bits(h2[i]) != math.Float32bits(h[i]) {
				t.Fatalf("n=%d: h(g=%g) is %g with sig and %g without", n, gv, h[i], h2[i])
			}
		}
	}
	// NaN stays NaN in every lane.
	g := []float32{nan, 1, nan, -1, nan, 0, nan, 2, nan, 3, nan}
	u := []float32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
	h, sig := make([]float32, len(g)), make([]float32, len(g))
	swigluAVX2(g, u, h, sig)
	for i, gv := range g {
		if gv != gv && (h[i] == h[i] || sig[i] == sig[i]) {
			t.Errorf("swigluAVX2(NaN) at %d: h = %g, sig = %g, want NaN", i, h[i], sig[i])
		}
	}
}

// TestMatVecAVX2 checks matVecAVX2 against a float64 product over strided
// rows (ldx, ldw, ldy wider than the rows, as in a KV cache), row counts
// of x from 1 to 5 (pairs and a single last row), every row length up
// to 70 and some long ones (the 8- and 16-element steps and the scalar
// tail), output ranges that start and end off the blocks of four, with
// and without accumulation; outputs outside the range and the padding
// between rows must stay untouched.
func TestMatVecAVX2(t *testing.T) {
	requireAVX2(t)
	rng := rand.New(rand.NewPCG(24, 24))
	const sentinel = float32(-777.25)
	ins := avx2Lengths()[:71]
	ins = append(ins, 256, 300)
	for _, in := range ins {
		for _, n := range []int{1, 2, 3, 5} {
			for _, rg := range [][3]int{{9, 0, 9}, {13, 2, 11}, {4, 0, 4}, {3, 0, 3}, {6, 5, 6}} {
				out, lo, hi := rg[0], rg[1], rg[2]
				for _, acc := range []bool{false, true} {
					ldx, ldw, ldy := in+3, in+5, out+2
					x := vecInput(rng, n*ldx, 1)
					w := vecInput(rng, out*ldw, 1)
					y := make([]float32, n*ldy)
					y0 := vecInput(rng, n*ldy, 1)
					for j := range n {
						for r := range ldy {
							if r < lo || r >= hi {
								y0[j*ldy+r] = sentinel
							}
						}
					}
					copy(y, y0)
					a := mvArgs{y: y, x: x, w: w, ldy: ldy, ldx: ldx, ldw: ldw, n: n, in: in, acc: acc}
					matVecAVX2(&a, lo, hi)
					name := fmt.Sprintf("in=%d n=%d out=%d [%d,%d) acc=%v", in, n, out, lo, hi, acc)
					for j := range n {
						for r := range ldy {
							got := y[j*ldy+r]
							if r < lo || r >= hi {
								if got != sentinel {
									t.Fatalf("%s: y[%d][%d] = %g was written", name, j, r, got)
								}
								continue
							}
							var want, mag float64
							for i := range in {
								p := float64(x[j*ldx+i]) * float64(w[r*ldw+i])
								want += p
								mag += math.Abs(p)
							}
							if acc {
								want += float64(y0[j*ldy+r])
								mag += math.Abs(float64(y0[j*ldy+r]))
							}
							if d := math.Abs(float64(got) - want); !(d <= float64(in+2)*0x1p-23*mag+1e-30) {
								t.Fatalf("%s: y[%d][%d] = %g, want %g (scale %g)", name, j, r, got, want, mag)
							}
						}
					}
				}
			}
		}
	}
}

// TestMatVecAVX2Specials checks that an infinity or NaN in x or W reaches
// exactly the outputs whose dot products contain it, in the vector steps
// and the scalar tail.
func TestMatVecAVX2Specials(t *testing.T) {
	requireAVX2(t)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	const n, out = 3, 5
	for _, in := range []int{5, 8, 16, 29, 40} {
		for at := range in {
			for _, v := range []float32{inf, nan} {
				x := make([]float32, n*in)
				w := make([]float32, out*in)
				for i := range x {
					x[i] = 1
				}
				for i := range w {
					w[i] = 0.5
				}
				x[1*in+at] = v  // row 1 of x
				w[3*in+at] = -v // weight row 3
				y := make([]float32, n*out)
				a := mvArgs{y: y, x: x, w: w, ldy: out, ldx: in, ldw: in, n: n, in: in}
				matVecAVX2(&a, 0, out)
				for j := range n {
					for r := range out {
						var want float32
						switch {
						case j == 1 && r == 3:
							want = nan // v·(−v) with v = Inf is −Inf, and NaN stays NaN
							if v == inf {
								want = -inf
							}
						case j == 1:
							want = v
						case r == 3:
							want = -v
						default:
							want = 0.5 * float32(in)
						}
						got := y[j*out+r]
						if !(got == want || (got != got && want != want)) {
							t.Fatalf("in=%d, %g at %d: y[%d][%d] = %g, want %g", in, v, at, j, r, got, want)
						}
					}
				}
			}
		}
	}
}

// TestAVX2AllocsNothing checks that the AVX2 twins allocate nothing (the
// tails go through stack arrays).
func TestAVX2AllocsNothing(t *testing.T) {
	requireAVX2(t)
	rng := rand.New(rand.NewPCG(25, 25))
	const n, in, out = 3, 77, 9
	x, w, y := vecInput(rng, n*in, 1), vecInput(rng, out*in, 1), make([]float32, n*out)
	g, u, h, sig := vecInput(rng, 37, 1), vecInput(rng, 37, 1), make([]float32, 37), make([]float32, 37)
	a := mvArgs{y: y, x: x, w: w, ldy: out, ldx: in, ldw: in, n: n, in: in}
	var sink float32
	allocs := testing.AllocsPerRun(20, func() {
		matVecAVX2(&a, 0, out)
		sink += dotAVX2(g, u) + sumAVX2(g) + maxAVX2(g)
		axpyAVX2(0.5, g, h)
		scaleAVX2(0.5, h)
		swigluAVX2(g, u, h, sig)
		expSliceAVX2(h, g)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per call of the AVX2 helpers, want 0", allocs)
	}
	_ = sink
}

// BenchmarkMatVecTiers compares the single-threaded matrix-vector kernels
// of this build on the decoding shapes in one run: the AVX-512 one (on
// CPUs that have it), the AVX2 one and the portable one, in GB/s of
// weights.
func BenchmarkMatVecTiers(b *testing.B) {
	requireAVX2(b)
	kernels := []struct {
		name string
		f    matVecFunc
	}{{"avx2", matVecAVX2}, {"portable", matVecPortable}}
	if archsimd.X86.AVX512() {
		kernels = append([]struct {
			name string
			f    matVecFunc
		}{{"avx512", func(a *mvArgs, lo, hi int) { matVecSIMD(a, lo, hi) }}}, kernels...)
	}
	for _, sh := range [][2]int{{768, 256}, {256, 768}, {1536, 512}, {4096, 512}, {512, 1536}} {
		out, in := sh[0], sh[1]
		rng := rand.New(rand.NewPCG(1, 1))
		w := vecInput(rng, out*in, 1)
		for _, n := range []int{1, 2, 4, 8} {
			x, y := vecInput(rng, n*in, 1), make([]float32, n*out)
			a := mvArgs{y: y, x: x, w: w, ldy: out, ldx: in, ldw: in, n: n, in: in}
			for _, k := range kernels {
				b.Run(fmt.Sprintf("out=%d,in=%d/n=%d/%s", out, in, n, k.name), func(b *testing.B) {
					for b.Loop() {
						k.f(&a, 0, out)
					}
					b.ReportMetric(float64(4*out*in)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				})
			}
		}
	}
}

// BenchmarkVectorTiers compares the vector helpers' tiers on a
// hidden-size-like row in one run (ns per element): the AVX-512 helpers
// (on CPUs that have them), their AVX2 twins and the portable loops.
func BenchmarkVectorTiers(b *testing.B) {
	requireAVX2(b)
	rng := rand.New(rand.NewPCG(3, 3))
	const n = 4096
	x, y := vecInput(rng, n, 1), vecInput(rng, n, 1)
	// Scale flips signs, so that z does not drift into subnormals; SwiGLU
	// reads u, which nothing writes.
	z, u := vecInput(rng, n, 1), vecInput(rng, n, 1)
	h, sig := make([]float32, n), make([]float32, n)
	var sink float32
	type op struct {
		name string
		f    func()
	}
	tiers := []struct {
		name string
		ops  []op
	}{
		{"avx2", []op{
			{"Dot", func() { sink += dotAVX2(x, y) }},
			{"Sum", func() { sink += sumAVX2(x) }},
			{"Max", func() { sink += maxAVX2(x) }},
			{"Axpy", func() { axpyAVX2(1e-3, x, y) }},
			{"Scale", func() { scaleAVX2(-1, z) }},
			{"SwiGLU", func() { swigluAVX2(x, u, h, sig) }},
		}},
		{"portable", []op{
			{"Dot", func() { sink += dotGo(x, y) }},
			{"Sum", func() { sink += sumGo(x) }},
			{"Max", func() { sink += maxGo(x) }},
			{"Axpy", func() { axpyGo(1e-3, x, y) }},
			{"Scale", func() { scaleGo(-1, z) }},
			{"SwiGLU", func() {
				for i, g := range x {
					s := Sigmoid(g)
					sig[i], h[i] = s, g*s*u[i]
				}
			}},
		}},
	}
	if archsimd.X86.AVX512() {
		tiers = append(tiers, struct {
			name string
			ops  []op
		}{"avx512", []op{
			{"Dot", func() { s, _ := dotSIMD(x, y); sink += s }},
			{"Sum", func() { s, _ := sumSIMD(x); sink += s }},
			{"Max", func() { s, _ := maxSIMD(x); sink += s }},
			{"Axpy", func() { axpySIMD(1e-3, x, y) }},
			{"Scale", func() { scaleSIMD(-1, z) }},
			{"SwiGLU", func() { swigluSIMD(x, u, h, sig) }},
		}})
	}
	for i := range tiers[0].ops {
		for _, t := range tiers {
			o := t.ops[i]
			b.Run(o.name+"/"+t.name, func(b *testing.B) {
				for b.Loop() {
					o.f()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/elem")
			})
		}
	}
	_ = sink
}

// TestScaleMulTiers checks RMSNorm's y = x·alpha·w on both SIMD tiers
// against the scalar loop, bit for bit (the same two roundings per
// element), for every tail length, with a sentinel past the end of y.
func TestScaleMulTiers(t *testing.T) {
	tiers := map[string]func(y, x, w []float32, alpha float32){}
	if archsimd.X86.AVX512() {
		tiers["avx512"] = func(y, x, w []float32, alpha float32) { scaleMulSIMD(y, x, w, alpha) }
	}
	if hasAVX2() {
		tiers["avx2"] = scaleMulAVX2
	}
	if len(tiers) == 0 {
		t.Skip("the CPU has neither AVX-512 nor AVX2 with FMA")
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for name, f := range tiers {
		for n := range 71 {
			x, w := make([]float32, n), make([]float32, n)
			for i := range x {
				x[i], w[i] = float32(rng.NormFloat64()*3), float32(rng.NormFloat64())
			}
			if n > 3 {
				x[1], x[2] = float32(math.Inf(1)), float32(math.NaN())
			}
			const alpha = 0.37
			y := make([]float32, n+1)
			y[n] = 42
			f(y[:n], x, w, alpha)
			for i := range n {
				want := x[i] * alpha * w[i]
				if math.Float32bits(y[i]) != math.Float32bits(want) && !(want != want && y[i] != y[i]) {
					t.Fatalf("%s n=%d: y[%d] = %g, want %g", name, n, i, y[i], want)
				}
			}
			if y[n] != 42 {
				t.Fatalf("%s n=%d: wrote past the end", name, n)
			}
		}
	}
}
