//go:build goexperiment.simd && amd64

package kernels

import (
	"math"
	"simd/archsimd"
)

// The AVX2 twins of the vector helpers of mathf_simd.go: the same loops
// on 8-lane registers with FMA (see vec8_simd.go). Each xxxSIMD helper
// calls its twin when the CPU has AVX2 and FMA but no AVX-512. Every twin
// clears the upper halves of the vector registers before returning (see
// hsumClear).
//
// BenchmarkVectorTiers (4096 floats, ns per element, AVX-512 / AVX2 /
// portable in one run on a 2-core AMD EPYC, load about 3): Dot 0.033 /
// 0.062 / 0.33, Sum 0.020 / 0.038 / 0.19, Axpy 0.033 / 0.057 / 0.38,
// Scale 0.025 / 0.053 / 0.37, SwiGLU 0.38 / 0.80 / 5.8; MaxSlice 0.027 /
// 0.061 / 0.38.

// dotAVX2 is dotSIMD's AVX2 tier: four 8-lane accumulators, so that the
// loads, not the FMA latency, bound the loop.
func dotAVX2(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 archsimd.Float32x8
	i := 0
	for ; i+32 <= len(a); i += 32 {
		s0 = archsimd.LoadFloat32x8Slice(a[i:i+8]).MulAdd(archsimd.LoadFloat32x8Slice(b[i:i+8]), s0)
		s1 = archsimd.LoadFloat32x8Slice(a[i+8:i+16]).MulAdd(archsimd.LoadFloat32x8Slice(b[i+8:i+16]), s1)
		s2 = archsimd.LoadFloat32x8Slice(a[i+16:i+24]).MulAdd(archsimd.LoadFloat32x8Slice(b[i+16:i+24]), s2)
		s3 = archsimd.LoadFloat32x8Slice(a[i+24:i+32]).MulAdd(archsimd.LoadFloat32x8Slice(b[i+24:i+32]), s3)
	}
	for ; i+8 <= len(a); i += 8 {
		s0 = archsimd.LoadFloat32x8Slice(a[i:i+8]).MulAdd(archsimd.LoadFloat32x8Slice(b[i:i+8]), s0)
	}
	if i < len(a) {
		s1 = loadPart8(a[i:]).MulAdd(loadPart8(b[i:]), s1)
	}
	return hsumClear8(s0.Add(s1).Add(s2.Add(s3)))
}

// axpyAVX2 is axpySIMD's AVX2 tier.
func axpyAVX2(alpha float32, x, y []float32) {
	y = y[:len(x)]
	va := archsimd.BroadcastFloat32x8(alpha)
	i := 0
	for ; i+16 <= len(x); i += 16 {
		y0 := archsimd.LoadFloat32x8Slice(y[i : i+8])
		y1 := archsimd.LoadFloat32x8Slice(y[i+8 : i+16])
		archsimd.LoadFloat32x8Slice(x[i:i+8]).MulAdd(va, y0).StoreSlice(y[i : i+8])
		archsimd.LoadFloat32x8Slice(x[i+8:i+16]).MulAdd(va, y1).StoreSlice(y[i+8 : i+16])
	}
	for ; i+8 <= len(x); i += 8 {
		y0 := archsimd.LoadFloat32x8Slice(y[i : i+8])
		archsimd.LoadFloat32x8Slice(x[i:i+8]).MulAdd(va, y0).StoreSlice(y[i : i+8])
	}
	if i < len(x) {
		y0 := loadPart8(y[i:])
		storePart8(loadPart8(x[i:]).MulAdd(va, y0), y[i:])
	}
	archsimd.ClearAVXUpperBits()
}

// scaleAVX2 is scaleSIMD's AVX2 tier.
func scaleAVX2(alpha float32, x []float32) {
	va := archsimd.BroadcastFloat32x8(alpha)
	i := 0
	for ; i+8 <= len(x); i += 8 {
		archsimd.LoadFloat32x8Slice(x[i : i+8]).Mul(va).StoreSlice(x[i : i+8])
	}
	if i < len(x) {
		storePart8(loadPart8(x[i:]).Mul(va), x[i:])
	}
	archsimd.ClearAVXUpperBits()
}

// sumAVX2 is sumSIMD's AVX2 tier.
func sumAVX2(x []float32) float32 {
	var s0, s1, s2, s3 archsimd.Float32x8
	i := 0
	for ; i+32 <= len(x); i += 32 {
		s0 = s0.Add(archsimd.LoadFloat32x8Slice(x[i : i+8]))
		s1 = s1.Add(archsimd.LoadFloat32x8Slice(x[i+8 : i+16]))
		s2 = s2.Add(archsimd.LoadFloat32x8Slice(x[i+16 : i+24]))
		s3 = s3.Add(archsimd.LoadFloat32x8Slice(x[i+24 : i+32]))
	}
	for ; i+8 <= len(x); i += 8 {
		s0 = s0.Add(archsimd.LoadFloat32x8Slice(x[i : i+8]))
	}
	if i < len(x) {
		s1 = s1.Add(loadPart8(x[i:]))
	}
	return hsumClear8(s0.Add(s1).Add(s2.Add(s3)))
}

// maxAVX2 is maxSIMD's AVX2 tier, with the same semantics: NaN elements
// are skipped (see maxSIMD), an empty or all-NaN slice gives -Inf.
func maxAVX2(x []float32) float32 {
	if len(x) < 8 {
		return maxGo(x)
	}
	ninf := archsimd.BroadcastFloat32x8(float32(math.Inf(-1)))
	m0, m1 := ninf, ninf
	i := 0
	for ; i+16 <= len(x); i += 16 {
		m0 = noNaN8(archsimd.LoadFloat32x8Slice(x[i:i+8]), ninf).Max(m0)
		m1 = noNaN8(archsimd.LoadFloat32x8Slice(x[i+8:i+16]), ninf).Max(m1)
	}
	for ; i+8 <= len(x); i += 8 {
		m0 = noNaN8(archsimd.LoadFloat32x8Slice(x[i:i+8]), ninf).Max(m0)
	}
	// The tail overlaps the last full vector instead of padding.
	if i < len(x) {
		m1 = noNaN8(archsimd.LoadFloat32x8Slice(x[len(x)-8:]), ninf).Max(m1)
	}
	var t [8]float32
	m0.Max(m1).Store(&t)
	archsimd.ClearAVXUpperBits()
	return maxGo(t[:])
}

// noNaN8 returns v with its NaN lanes set to ninf (-Inf).
func noNaN8(v, ninf archsimd.Float32x8) archsimd.Float32x8 {
	return v.Merge(ninf, v.Equal(v))
}

// swigluAVX2 is swigluSIMD's AVX2 tier: the sigmoid by expVec8, which
// keeps expVec's accuracy and special values.
func swigluAVX2(g, u, h, sig []float32) {
	u, h = u[:len(g)], h[:len(g)]
	if sig != nil {
		sig = sig[:len(g)]
	}
	one := archsimd.BroadcastFloat32x8(1)
	zero := archsimd.BroadcastFloat32x8(0)
	i := 0
	for ; i+8 <= len(g); i += 8 {
		gv := archsimd.LoadFloat32x8Slice(g[i : i+8])
		s := one.Div(one.Add(expVec8(zero.Sub(gv))))
		if sig != nil {
			s.StoreSlice(sig[i : i+8])
		}
		gv.Mul(s).Mul(archsimd.LoadFloat32x8Slice(u[i : i+8])).StoreSlice(h[i : i+8])
	}
	if i < len(g) {
		gv := loadPart8(g[i:])
		s := one.Div(one.Add(expVec8(zero.Sub(gv))))
		if sig != nil {
			storePart8(s, sig[i:])
		}
		storePart8(gv.Mul(s).Mul(loadPart8(u[i:])), h[i:])
	}
	archsimd.ClearAVXUpperBits()
}

// scaleMulAVX2 is scaleMulSIMD's AVX2 tier.
func scaleMulAVX2(y, x, w []float32, alpha float32) {
	x, w = x[:len(y)], w[:len(y)]
	va := archsimd.BroadcastFloat32x8(alpha)
	i := 0
	for ; i+8 <= len(y); i += 8 {
		archsimd.LoadFloat32x8Slice(x[i : i+8]).Mul(va).Mul(archsimd.LoadFloat32x8Slice(w[i : i+8])).StoreSlice(y[i : i+8])
	}
	if i < len(y) {
		storePart8(loadPart8(x[i:]).Mul(va).Mul(loadPart8(w[i:])), y[i:])
	}
	archsimd.ClearAVXUpperBits()
}
