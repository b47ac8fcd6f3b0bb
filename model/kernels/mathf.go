package kernels

import (
	"fmt"
	"math"
)

// Range limits of Exp: above expHi the result overflows to +Inf, below
// expLo it underflows to 0 (exp(-104) is below half the smallest float32
// subnormal). Inputs between are reduced and scaled exactly.
const (
	expHi = 89.0
	expLo = -104.0
)

// Exp returns e**x, correctly handling overflow (+Inf), underflow (0,
// through the subnormals), NaN and ±Inf. The relative error is below
// 1e-7 for every normal result: the reduction and polynomial run in
// float64 and the result is rounded once to float32. It costs a fraction
// of math.Exp.
func Exp(x float32) float32 {
	switch {
	case x != x: // NaN
		return x
	case x > expHi:
		return float32(math.Inf(1))
	case x < expLo:
		return 0
	}
	return float32(exp64(float64(x)))
}

// expTableBits is log2 of the size of expTable.
const expTableBits = 5

// expTable holds 2**(j/32) for j in [0, 32); it is filled once by
// newExpTable and only read afterwards.
var expTable = newExpTable()

func newExpTable() (t [1 << expTableBits]float64) {
	for j := range t {
		t[j] = math.Exp2(float64(j) / (1 << expTableBits))
	}
	return t
}

// exp64 is e**x for |x| ≤ 105 to about 1e-9 relative error: with
// x·32/ln2 = k + f rounded to the integer k, e**x = 2**(k>>5) · 2**((k&31)/32)
// · e**r with r = x - k·ln2/32, |r| ≤ ln2/64, and e**r by its cubic
// Taylor polynomial (truncation error r⁴/24 < 6e-10).
func exp64(x float64) float64 {
	const (
		n      = 1 << expTableBits
		invLn2 = n / math.Ln2
		// ln2/32 split so that k·ln2Hi is exact for |k| < 2**20.
		ln2Hi = 6.93147180369123816490e-01 / n
		ln2Lo = 1.90821492927058770002e-10 / n
		// Adding 1.5·2**52 rounds to an integer (to even) and leaves it in
		// the low mantissa bits.
		shifter = 0x1.8p52
	)
	z := x*invLn2 + shifter
	kb := math.Float64bits(z)
	kf := z - shifter
	r := (x - kf*ln2Hi) - kf*ln2Lo
	p := 1 + r*(1+r*(0.5+r*(1.0/6)))
	// k's low bits index the table; the rest, as a signed integer, is the
	// power of two, added straight into the table entry's exponent field.
	t := math.Float64bits(expTable[kb&(n-1)])
	t += (kb >> expTableBits) << 52
	return p * math.Float64frombits(t)
}

// Sigmoid returns 1/(1+e**-x), exactly 0 or 1 far out, NaN for NaN. The
// relative error is below 1e-7.
func Sigmoid(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > -expLo: // e**-x underflows: 1/(1+0)
		return 1
	case x < expLo: // e**x underflows, and sigmoid(x) ≈ e**x
		return 0
	}
	return float32(1 / (1 + exp64(-float64(x))))
}

// SiLU returns x·sigmoid(x), the activation of Llama's SwiGLU MLP.
func SiLU(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > -expLo:
		return x
	case x < expLo:
		return 0
	}
	fx := float64(x)
	return float32(fx / (1 + exp64(-fx)))
}

// checkLen panics when two slices that must match differ in length.
func checkLen(fn string, a, b int) {
	if a != b {
		panic(fmt.Sprintf("kernels: %s: slice lengths differ (%d and %d)", fn, a, b))
	}
}

// ExpSlice sets dst[i] = Exp(src[i]). dst and src must have the same
// length and may be the same slice. The SIMD version (GOEXPERIMENT=simd on
// AVX-512) computes in float32 with FMA: its results may differ from Exp
// in the last bit but keep the relative error within 2e-7.
func ExpSlice(dst, src []float32) {
	checkLen("ExpSlice", len(dst), len(src))
	if expSliceSIMD(dst, src) {
		return
	}
	for i, v := range src {
		dst[i] = Exp(v)
	}
}

// Dot returns Σ a[i]·b[i]. a and b must have the same length.
func Dot(a, b []float32) float32 {
	checkLen("Dot", len(a), len(b))
	if s, ok := dotSIMD(a, b); ok {
		return s
	}
	return dotGo(a, b)
}

// dotGo is Dot with four independent accumulators, so the adds do not
// wait on each other.
func dotGo(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// Axpy sets y[i] += alpha·x[i]. x and y must have the same length.
func Axpy(alpha float32, x, y []float32) {
	checkLen("Axpy", len(x), len(y))
	if axpySIMD(alpha, x, y) {
		return
	}
	axpyGo(alpha, x, y)
}

func axpyGo(alpha float32, x, y []float32) {
	y = y[:len(x)]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		y[i] += alpha * x[i]
		y[i+1] += alpha * x[i+1]
		y[i+2] += alpha * x[i+2]
		y[i+3] += alpha * x[i+3]
	}
	for ; i < len(x); i++ {
		y[i] += alpha * x[i]
	}
}

// Scale sets x[i] *= alpha.
func Scale(alpha float32, x []float32) {
	if scaleSIMD(alpha, x) {
		return
	}
	scaleGo(alpha, x)
}

func scaleGo(alpha float32, x []float32) {
	for i := range x {
		x[i] *= alpha
	}
}

// Sum returns Σ x[i], with several partial sums (so not in strict left to
// right order).
func Sum(x []float32) float32 {
	if s, ok := sumSIMD(x); ok {
		return s
	}
	return sumGo(x)
}

func sumGo(x []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i]
		s1 += x[i+1]
		s2 += x[i+2]
		s3 += x[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// MaxSlice returns the largest element of x. NaN elements are ignored; an
// empty or all-NaN slice gives -Inf.
func MaxSlice(x []float32) float32 {
	if m, ok := maxSIMD(x); ok {
		return m
	}
	return maxGo(x)
}

func maxGo(x []float32) float32 {
	m0, m1 := float32(math.Inf(-1)), float32(math.Inf(-1))
	i := 0
	for ; i+2 <= len(x); i += 2 {
		if v := x[i]; v > m0 {
			m0 = v
		}
		if v := x[i+1]; v > m1 {
			m1 = v
		}
	}
	if i < len(x) && x[i] > m0 {
		m0 = x[i]
	}
	return max(m0, m1)
}
