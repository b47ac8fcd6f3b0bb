package kernels

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

const (
	minSubnormal = 1.401298464324817e-45  // 2**-149
	minNormal    = 1.1754943508222875e-38 // 2**-126
)

// expSweep returns float32 inputs that cover the whole range of Exp: a
// stride through every bit pattern, the overflow and underflow edges
// densely, and the special values.
func expSweep() []float32 {
	var xs []float32
	for bits := uint64(0); bits < 1<<32; bits += 4099 {
		xs = append(xs, math.Float32frombits(uint32(bits)))
	}
	for _, edge := range []float32{88.72283, 88.7229, -87.33655, -103.27893, -103.97208, 0} {
		b := math.Float32bits(edge)
		for d := uint32(0); d < 2000; d++ {
			xs = append(xs, math.Float32frombits(b+d), math.Float32frombits(b-d))
		}
	}
	inf := float32(math.Inf(1))
	xs = append(xs, inf, -inf, float32(math.NaN()), 0, float32(math.Copysign(0, -1)),
		math.MaxFloat32, -math.MaxFloat32, minSubnormal, -minSubnormal)
	return xs
}

// checkExp compares got = exp(x) with float64 math.Exp: relative error
// within relTol for normal results, within one subnormal step below the
// normal range, exact for the special cases.
func checkExp(t *testing.T, name string, x, got float32, relTol float64) bool {
	t.Helper()
	want := math.Exp(float64(x))
	switch {
	case math.IsNaN(float64(x)):
		if !math.IsNaN(float64(got)) {
			t.Errorf("%s(NaN) = %g, want NaN", name, got)
			return false
		}
		return true
	case want > math.MaxFloat32*(1+0x1p-25):
		if !math.IsInf(float64(got), 1) {
			t.Errorf("%s(%g) = %g, want +Inf", name, x, got)
			return false
		}
		return true
	case want < minNormal:
		if d := math.Abs(float64(got) - want); d > minSubnormal || got < 0 {
			t.Errorf("%s(%g) = %g, want %g (subnormal/zero range)", name, x, got, want)
			return false
		}
		return true
	}
	if rel := math.Abs(float64(got)-want) / want; !(rel <= relTol) {
		t.Errorf("%s(%g) = %g, want %g (relative error %.3g > %.3g)", name, x, got, want, rel, relTol)
		return false
	}
	return true
}

func TestExpAccuracy(t *testing.T) {
	xs := expSweep()
	worst := 0.0
	bad := 0
	for _, x := range xs {
		if !checkExp(t, "Exp", x, Exp(x), 1e-7) {
			if bad++; bad > 5 {
				t.Fatal("too many errors")
			}
		}
		if want := math.Exp(float64(x)); want >= minNormal && want <= math.MaxFloat32 {
			worst = max(worst, math.Abs(float64(Exp(x))-want)/want)
		}
	}
	t.Logf("Exp: %d inputs, worst relative error %.3g", len(xs), worst)
}

func TestExpSliceAccuracy(t *testing.T) {
	xs := expSweep()
	got := make([]float32, len(xs))
	ExpSlice(got, xs)
	worst := 0.0
	bad := 0
	for i, x := range xs {
		if !checkExp(t, "ExpSlice", x, got[i], 2e-7) {
			if bad++; bad > 5 {
				t.Fatal("too many errors")
			}
		}
		if want := math.Exp(float64(x)); want >= minNormal && want <= math.MaxFloat32 {
			worst = max(worst, math.Abs(float64(got[i])-want)/want)
		}
	}
	t.Logf("ExpSlice: %d inputs, worst relative error %.3g", len(xs), worst)
	// Every length up to a few vectors, in place, so that the vector tail
	// handling is covered.
	rng := rand.New(rand.NewPCG(5, 5))
	for n := range 70 {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(rng.NormFloat64() * 20)
		}
		dst := append([]float32(nil), src...)
		ExpSlice(dst, dst)
		for i, x := range src {
			checkExp(t, "ExpSlice(in place)", x, dst[i], 2e-7)
		}
	}
}

func TestSigmoidSiLU(t *testing.T) {
	xs := []float32{0, 1, -1, 0.5, -0.5, 5, -5, 17, -17, 30, -30, 87, -87, 88.8, -88.8, 95, -95, 103.9, -103.9, 120, -120,
		float32(math.Inf(1)), float32(math.Inf(-1))}
	for bits := uint64(0); bits < 1<<32; bits += 999983 {
		xs = append(xs, math.Float32frombits(uint32(bits)))
	}
	for _, x := range xs {
		fx := float64(x)
		if math.IsNaN(fx) {
			if s, l := Sigmoid(x), SiLU(x); !math.IsNaN(float64(s)) || !math.IsNaN(float64(l)) {
				t.Errorf("Sigmoid/SiLU(NaN) = %g, %g, want NaN", s, l)
			}
			continue
		}
		wantS := 1 / (1 + math.Exp(-fx))
		wantL := fx * wantS
		if math.IsInf(fx, -1) {
			wantL = 0
		}
		for _, c := range []struct {
			name      string
			got, want float64
		}{{"Sigmoid", float64(Sigmoid(x)), wantS}, {"SiLU", float64(SiLU(x)), wantL}} {
			if math.IsInf(c.want, 0) {
				if c.got != c.want {
					t.Errorf("%s(%g) = %g, want %g", c.name, x, c.got, c.want)
				}
				continue
			}
			tol := 1e-7 * math.Abs(c.want)
			if math.Abs(c.want) < minNormal {
				tol = minSubnormal
			}
			if math.Abs(c.got-c.want) > tol {
				t.Errorf("%s(%g) = %g, want %g", c.name, x, c.got, c.want)
			}
		}
	}
}

// vecInput returns n normal values, with scale giving them different
// magnitudes.
func vecInput(rng *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64() * scale)
	}
	return s
}

func TestVectorHelpers(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	const eps = 1.0 / (1 << 23)
	for _, n := range []int{0, 1, 2, 3, 4, 5, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 129, 1000, 4099} {
		a, b := vecInput(rng, n, 1), vecInput(rng, n, 3)
		var dot, absDot, sum, absSum float64
		maxv := math.Inf(-1)
		for i := range a {
			dot += float64(a[i]) * float64(b[i])
			absDot += math.Abs(float64(a[i]) * float64(b[i]))
			sum += float64(a[i])
			absSum += math.Abs(float64(a[i]))
			maxv = math.Max(maxv, float64(a[i]))
		}
		// Error bound of a float32 sum of n terms in any order.
		bound := func(mag float64) float64 { return float64(n+2) * eps * mag }
		if got := Dot(a, b); math.Abs(float64(got)-dot) > bound(absDot) {
			t.Errorf("n=%d: Dot = %g, want %g", n, got, dot)
		}
		if got := Sum(a); math.Abs(float64(got)-sum) > bound(absSum) {
			t.Errorf("n=%d: Sum = %g, want %g", n, got, sum)
		}
		if got := MaxSlice(a); float64(got) != maxv {
			t.Errorf("n=%d: MaxSlice = %g, want %g", n, got, maxv)
		}
		y := append([]float32(nil), b...)
		Axpy(-0.75, a, y)
		for i := range y {
			want := float64(b[i]) - 0.75*float64(a[i])
			if math.Abs(float64(y[i])-want) > 2*eps*(math.Abs(float64(b[i]))+math.Abs(0.75*float64(a[i]))) {
				t.Fatalf("n=%d: Axpy y[%d] = %g, want %g", n, i, y[i], want)
			}
		}
		x := append([]float32(nil), a...)
		Scale(2.5, x)
		for i := range x {
			if want := 2.5 * a[i]; x[i] != want {
				t.Fatalf("n=%d: Scale x[%d] = %g, want %g", n, i, x[i], want)
			}
		}
	}
}

func TestMaxSliceSpecials(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	long := func(v float32, at int) []float32 {
		s := make([]float32, 40)
		for i := range s {
			s[i] = float32(-i)
		}
		s[at] = v
		return s
	}
	cases := []struct {
		name string
		x    []float32
		want float32
	}{
		{"empty", nil, -inf},
		{"all NaN", []float32{nan, nan, nan}, -inf},
		{"NaN first short", []float32{nan, 3, 2}, 3},
		{"NaN first long", long(nan, 0), -1},
		{"NaN in tail", long(nan, 39), 0},
		{"max in tail", long(5, 38), 5},
		{"+Inf", long(inf, 17), inf},
		{"all -Inf", []float32{-inf, -inf}, -inf},
	}
	for _, c := range cases {
		if got := MaxSlice(c.x); got != c.want {
			t.Errorf("%s: MaxSlice = %g, want %g", c.name, got, c.want)
		}
	}
}

func TestVectorHelpersLengthMismatchPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"Dot":      func() { Dot(make([]float32, 3), make([]float32, 4)) },
		"Axpy":     func() { Axpy(1, make([]float32, 3), make([]float32, 2)) },
		"ExpSlice": func() { ExpSlice(make([]float32, 1), make([]float32, 2)) },
	} {
		func() {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, name) || !strings.Contains(msg, "lengths differ") {
					t.Errorf("%s: panic %q, want a length message", name, msg)
				}
			}()
			f()
		}()
	}
}
