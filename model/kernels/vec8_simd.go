//go:build goexperiment.simd && amd64

package kernels

import "simd/archsimd"

// The AVX2 tier of the vector helpers: 8-lane registers for CPUs with
// AVX2 and FMA but no AVX-512 (most laptops and many servers). Each
// xxxSIMD helper tries AVX-512 first, then its xxxAVX2 twin, then
// reports false so the caller runs the portable loop; the twins are
// called directly by the tests, so an AVX-512 machine tests both tiers.

// hasAVX2 reports whether the CPU runs the AVX2 tier (AVX2 with FMA).
func hasAVX2() bool { return archsimd.X86.AVX2() && archsimd.X86.FMA() }

// expVec8 is expVec on 8 lanes with AVX2 and FMA, which have no VSCALEFPS:
// r·2**n is computed as (r·2**n1)·2**n2 with n1 = ⌊n/2⌋ and n2 = n − n1,
// each power built from its exponent bits and normal for every clamped
// input, so the first product is exact and the second rounds once, giving
// the same +Inf, subnormals and 0 as VSCALEFPS.
func expVec8(x archsimd.Float32x8) archsimd.Float32x8 {
	const (
		log2e = 1.44269504088896341
		ln2Hi = 0.69314718246459961
		ln2Lo = -1.904654323148236e-09
	)
	notNaN := x.Equal(x)
	xc := x.Max(archsimd.BroadcastFloat32x8(expLo)).Min(archsimd.BroadcastFloat32x8(expHi))
	n := xc.Mul(archsimd.BroadcastFloat32x8(log2e)).RoundToEven()
	r := n.MulAdd(archsimd.BroadcastFloat32x8(-ln2Hi), xc)
	r = n.MulAdd(archsimd.BroadcastFloat32x8(-ln2Lo), r)
	p := archsimd.BroadcastFloat32x8(1.0 / 5040)
	p = p.MulAdd(r, archsimd.BroadcastFloat32x8(1.0/720))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x8(1.0/120))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x8(1.0/24))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x8(1.0/6))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x8(0.5))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x8(1))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x8(1))
	ni := n.ConvertToInt32() // n is integral: exact
	n1 := ni.ShiftAllRight(1)
	n2 := ni.Sub(n1)
	bias := archsimd.BroadcastInt32x8(127)
	s1 := n1.Add(bias).ShiftAllLeft(23).AsFloat32x8()
	s2 := n2.Add(bias).ShiftAllLeft(23).AsFloat32x8()
	return p.Mul(s1).Mul(s2).Merge(x, notNaN)
}

// expSliceAVX2 is expSliceSIMD's AVX2 tier.
func expSliceAVX2(dst, src []float32) {
	dst = dst[:len(src)]
	i := 0
	for ; i+8 <= len(src); i += 8 {
		expVec8(archsimd.LoadFloat32x8Slice(src[i : i+8])).StoreSlice(dst[i : i+8])
	}
	if i < len(src) {
		storePart8(expVec8(loadPart8(src[i:])), dst[i:])
	}
	archsimd.ClearAVXUpperBits()
}

// loadPart8 loads s (fewer than 8 floats) into the low lanes of a vector
// and zeroes the rest, through a stack buffer (see loadPart).
func loadPart8(s []float32) archsimd.Float32x8 {
	var t [8]float32
	copy(t[:], s)
	return archsimd.LoadFloat32x8(&t)
}

// storePart8 stores the low len(s) lanes of v (len(s) < 8) to s.
func storePart8(v archsimd.Float32x8, s []float32) {
	var t [8]float32
	v.Store(&t)
	copy(s, t[:])
}

// hsumClear8 adds the 8 lanes of v and clears the upper halves of the
// vector registers (see hsumClear).
func hsumClear8(v archsimd.Float32x8) float32 {
	var t [8]float32
	v.Store(&t)
	archsimd.ClearAVXUpperBits()
	return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]))
}
