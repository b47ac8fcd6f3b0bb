//go:build goexperiment.simd && amd64

package kernels

import (
	"math"
	"simd/archsimd"
)

// The vector helpers use 16-lane AVX-512 registers when the CPU has
// AVX-512, their AVX2 twins (mathf_avx2.go, 8 lanes with FMA) when it has
// AVX2 and FMA only, and report false otherwise, so the caller falls back
// to the portable loops.

// expVec is Exp on 16 lanes in float32 with FMA: x = n·ln2 + r by a
// two-constant Cody–Waite reduction, e**r by the degree-7 Taylor
// polynomial in Horner form, and VSCALEFPS for r·2**n, which rounds once
// and so gives +Inf on overflow and correctly rounded subnormals and 0 on
// underflow. Inputs are clamped to [expLo, expHi] first (that maps ±Inf
// to +Inf and 0); NaN lanes pass through.
func expVec(x archsimd.Float32x16) archsimd.Float32x16 {
	const (
		log2e = 1.44269504088896341
		// ln2Hi is ln2 rounded to float32; ln2Lo the rest (negative).
		ln2Hi = 0.69314718246459961
		ln2Lo = -1.904654323148236e-09
	)
	notNaN := x.Equal(x)
	xc := x.Max(archsimd.BroadcastFloat32x16(expLo)).Min(archsimd.BroadcastFloat32x16(expHi))
	n := xc.Mul(archsimd.BroadcastFloat32x16(log2e)).RoundToEvenScaled(0)
	r := n.MulAdd(archsimd.BroadcastFloat32x16(-ln2Hi), xc)
	r = n.MulAdd(archsimd.BroadcastFloat32x16(-ln2Lo), r)
	p := archsimd.BroadcastFloat32x16(1.0 / 5040)
	p = p.MulAdd(r, archsimd.BroadcastFloat32x16(1.0/720))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x16(1.0/120))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x16(1.0/24))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x16(1.0/6))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x16(0.5))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x16(1))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x16(1))
	return p.Scale(n).Merge(x, notNaN)
}

func expSliceSIMD(dst, src []float32) bool {
	if !archsimd.X86.AVX512() {
		if hasAVX2() {
			expSliceAVX2(dst, src)
			return true
		}
		return false
	}
	dst = dst[:len(src)]
	i := 0
	for ; i+16 <= len(src); i += 16 {
		expVec(archsimd.LoadFloat32x16Slice(src[i : i+16])).StoreSlice(dst[i : i+16])
	}
	if i < len(src) {
		storePart(expVec(loadPart(src[i:])), dst[i:])
	}
	archsimd.ClearAVXUpperBits()
	return true
}

// loadPart loads s (fewer than 16 floats) into the low lanes of a vector
// and zeroes the rest, through a stack buffer: archsimd's
// LoadFloat32x16SlicePart converts the short slice's pointer to a
// *[16]float32, which checkptr (on under go test -race) rejects as
// straddling allocations. It runs only on the tails of the loops.
func loadPart(s []float32) archsimd.Float32x16 {
	var t [16]float32
	copy(t[:], s)
	return archsimd.LoadFloat32x16(&t)
}

// storePart stores the low len(s) lanes of v (len(s) < 16) to s; see
// loadPart.
func storePart(v archsimd.Float32x16, s []float32) {
	var t [16]float32
	v.Store(&t)
	copy(s, t[:])
}

// hsumClear adds the 16 lanes of v. It also clears the upper halves of
// the vector registers (VZEROUPPER): every function here does so before
// returning, because the scalar SSE code Go generates runs several times
// slower while they are dirty (measured 4× on math.Exp on Zen 4).
func hsumClear(v archsimd.Float32x16) float32 {
	var t [16]float32
	v.Store(&t)
	archsimd.ClearAVXUpperBits()
	var s [4]float32
	for i := range 4 {
		s[i] = (t[i] + t[i+4]) + (t[i+8] + t[i+12])
	}
	return (s[0] + s[1]) + (s[2] + s[3])
}

func dotSIMD(a, b []float32) (float32, bool) {
	if !archsimd.X86.AVX512() {
		if hasAVX2() {
			return dotAVX2(a, b), true
		}
		return 0, false
	}
	b = b[:len(a)]
	var s0, s1, s2, s3 archsimd.Float32x16
	i := 0
	for ; i+64 <= len(a); i += 64 {
		s0 = archsimd.LoadFloat32x16Slice(a[i:i+16]).MulAdd(archsimd.LoadFloat32x16Slice(b[i:i+16]), s0)
		s1 = archsimd.LoadFloat32x16Slice(a[i+16:i+32]).MulAdd(archsimd.LoadFloat32x16Slice(b[i+16:i+32]), s1)
		s2 = archsimd.LoadFloat32x16Slice(a[i+32:i+48]).MulAdd(archsimd.LoadFloat32x16Slice(b[i+32:i+48]), s2)
		s3 = archsimd.LoadFloat32x16Slice(a[i+48:i+64]).MulAdd(archsimd.LoadFloat32x16Slice(b[i+48:i+64]), s3)
	}
	for ; i+16 <= len(a); i += 16 {
		s0 = archsimd.LoadFloat32x16Slice(a[i:i+16]).MulAdd(archsimd.LoadFloat32x16Slice(b[i:i+16]), s0)
	}
	if i < len(a) {
		s1 = loadPart(a[i:]).MulAdd(loadPart(b[i:]), s1)
	}
	return hsumClear(s0.Add(s1).Add(s2.Add(s3))), true
}

func axpySIMD(alpha float32, x, y []float32) bool {
	if !archsimd.X86.AVX512() {
		if hasAVX2() {
			axpyAVX2(alpha, x, y)
			return true
		}
		return false
	}
	y = y[:len(x)]
	va := archsimd.BroadcastFloat32x16(alpha)
	i := 0
	for ; i+32 <= len(x); i += 32 {
		y0 := archsimd.LoadFloat32x16Slice(y[i : i+16])
		y1 := archsimd.LoadFloat32x16Slice(y[i+16 : i+32])
		archsimd.LoadFloat32x16Slice(x[i:i+16]).MulAdd(va, y0).StoreSlice(y[i : i+16])
		archsimd.LoadFloat32x16Slice(x[i+16:i+32]).MulAdd(va, y1).StoreSlice(y[i+16 : i+32])
	}
	for ; i+16 <= len(x); i += 16 {
		y0 := archsimd.LoadFloat32x16Slice(y[i : i+16])
		archsimd.LoadFloat32x16Slice(x[i:i+16]).MulAdd(va, y0).StoreSlice(y[i : i+16])
	}
	if i < len(x) {
		y0 := loadPart(y[i:])
		storePart(loadPart(x[i:]).MulAdd(va, y0), y[i:])
	}
	archsimd.ClearAVXUpperBits()
	return true
}

func scaleSIMD(alpha float32, x []float32) bool {
	if !archsimd.X86.AVX512() {
		if hasAVX2() {
			scaleAVX2(alpha, x)
			return true
		}
		return false
	}
	va := archsimd.BroadcastFloat32x16(alpha)
	i := 0
	for ; i+16 <= len(x); i += 16 {
		archsimd.LoadFloat32x16Slice(x[i : i+16]).Mul(va).StoreSlice(x[i : i+16])
	}
	if i < len(x) {
		storePart(loadPart(x[i:]).Mul(va), x[i:])
	}
	archsimd.ClearAVXUpperBits()
	return true
}

func sumSIMD(x []float32) (float32, bool) {
	if !archsimd.X86.AVX512() {
		if hasAVX2() {
			return sumAVX2(x), true
		}
		return 0, false
	}
	var s0, s1, s2, s3 archsimd.Float32x16
	i := 0
	for ; i+64 <= len(x); i += 64 {
		s0 = s0.Add(archsimd.LoadFloat32x16Slice(x[i : i+16]))
		s1 = s1.Add(archsimd.LoadFloat32x16Slice(x[i+16 : i+32]))
		s2 = s2.Add(archsimd.LoadFloat32x16Slice(x[i+32 : i+48]))
		s3 = s3.Add(archsimd.LoadFloat32x16Slice(x[i+48 : i+64]))
	}
	for ; i+16 <= len(x); i += 16 {
		s0 = s0.Add(archsimd.LoadFloat32x16Slice(x[i : i+16]))
	}
	if i < len(x) {
		s1 = s1.Add(loadPart(x[i:]))
	}
	return hsumClear(s0.Add(s1).Add(s2.Add(s3))), true
}

func maxSIMD(x []float32) (float32, bool) {
	if !archsimd.X86.AVX512() {
		if hasAVX2() {
			return maxAVX2(x), true
		}
		return 0, false
	}
	if len(x) < 16 {
		return maxGo(x), true
	}
	// NaN elements become -Inf before Max, so m never holds NaN. (VMAXPS
	// returns its second source where either is NaN, but the compiler
	// treats Max as commutative and may swap the sources, so Max alone
	// cannot be relied on to skip NaN.) The compare and blend are off the
	// accumulators' dependency chains.
	ninf := archsimd.BroadcastFloat32x16(float32(math.Inf(-1)))
	m0, m1 := ninf, ninf
	i := 0
	for ; i+32 <= len(x); i += 32 {
		m0 = noNaN16(archsimd.LoadFloat32x16Slice(x[i:i+16]), ninf).Max(m0)
		m1 = noNaN16(archsimd.LoadFloat32x16Slice(x[i+16:i+32]), ninf).Max(m1)
	}
	for ; i+16 <= len(x); i += 16 {
		m0 = noNaN16(archsimd.LoadFloat32x16Slice(x[i:i+16]), ninf).Max(m0)
	}
	// The tail overlaps the last full vector instead of padding.
	if i < len(x) {
		m1 = noNaN16(archsimd.LoadFloat32x16Slice(x[len(x)-16:]), ninf).Max(m1)
	}
	var t [16]float32
	m0.Max(m1).Store(&t)
	archsimd.ClearAVXUpperBits()
	return maxGo(t[:]), true
}

// noNaN16 returns v with its NaN lanes set to ninf (-Inf).
func noNaN16(v, ninf archsimd.Float32x16) archsimd.Float32x16 {
	return v.Merge(ninf, v.Equal(v))
}

// swigluSIMD is the SwiGLU pass on AVX-512: sig = 1/(1+e**-g) by expVec
// and a division, h = g·sig·u. Its sigmoid is within a few float32 ulps
// of Sigmoid (expVec's 2e-7 and one rounding each for the sum and the
// quotient); far out it saturates to 0 and 1 like Sigmoid, and NaN lanes
// stay NaN. CPUs with AVX2 and FMA but no AVX-512 run swigluAVX2; it
// reports false on CPUs with neither.
func swigluSIMD(g, u, h, sig []float32) bool {
	if !archsimd.X86.AVX512() {
		if hasAVX2() {
			swigluAVX2(g, u, h, sig)
			return true
		}
		return false
	}
	u, h = u[:len(g)], h[:len(g)]
	if sig != nil {
		sig = sig[:len(g)]
	}
	one := archsimd.BroadcastFloat32x16(1)
	zero := archsimd.BroadcastFloat32x16(0)
	i := 0
	for ; i+16 <= len(g); i += 16 {
		gv := archsimd.LoadFloat32x16Slice(g[i : i+16])
		s := one.Div(one.Add(expVec(zero.Sub(gv))))
		if sig != nil {
			s.StoreSlice(sig[i : i+16])
		}
		gv.Mul(s).Mul(archsimd.LoadFloat32x16Slice(u[i : i+16])).StoreSlice(h[i : i+16])
	}
	if i < len(g) {
		gv := loadPart(g[i:])
		s := one.Div(one.Add(expVec(zero.Sub(gv))))
		if sig != nil {
			storePart(s, sig[i:])
		}
		storePart(gv.Mul(s).Mul(loadPart(u[i:])), h[i:])
	}
	archsimd.ClearAVXUpperBits()
	return true
}

// scaleMulSIMD sets y[i] = x[i]·alpha·w[i] (in that order, so each element
// rounds exactly as the scalar loop's), for RMSNorm's output; y, x and w
// have the same length.
func scaleMulSIMD(y, x, w []float32, alpha float32) bool {
	if !archsimd.X86.AVX512() {
		if hasAVX2() {
			scaleMulAVX2(y, x, w, alpha)
			return true
		}
		return false
	}
	x, w = x[:len(y)], w[:len(y)]
	va := archsimd.BroadcastFloat32x16(alpha)
	i := 0
	for ; i+16 <= len(y); i += 16 {
		archsimd.LoadFloat32x16Slice(x[i : i+16]).Mul(va).Mul(archsimd.LoadFloat32x16Slice(w[i : i+16])).StoreSlice(y[i : i+16])
	}
	if i < len(y) {
		storePart(loadPart(x[i:]).Mul(va).Mul(loadPart(w[i:])), y[i:])
	}
	archsimd.ClearAVXUpperBits()
	return true
}
