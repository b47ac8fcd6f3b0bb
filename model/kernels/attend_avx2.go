//go:build goexperiment.simd && amd64

package kernels

import (
	"math"
	"simd/archsimd"
	"unsafe"
)

// The AVX2 tier of the decoding attention kernels of attend_simd.go: the
// same layouts and blocking with 8-lane vectors, sized for the 16 YMM
// registers (8 accumulators, up to 4 loaded vectors and a broadcast per
// step, so nothing spills; checked in the -gcflags=-S listing). Each is
// called by its AVX-512 twin on CPUs without AVX-512, or where the twin
// does not apply (head sizes or rows with room for 8 lanes only), and
// reports false on CPUs without AVX2 and FMA.
//
// Measured on a shared 2-core AMD EPYC with AVX-512 (Zen 5, family 26),
// load average 1.3-2.8. BenchmarkAttendCached (config M: 8 query heads,
// 4 kv heads, head size 32), ns/op, median of 7 interleaved runs of two
// test binaries (GOEXPERIMENT=simd, run as is and with
// GODEBUG=cpu.avx512f=off; GOEXPERIMENT= for portable):
//
//	           AVX-512   AVX2    portable
//	npos=68     1348     1963     15575    AVX2 7.9x portable
//	npos=512    6828     9235    113676    AVX2 12.3x portable
//
// BenchmarkAttendKernels, ns per position for one kv head's group of G
// query heads, each kernel against its AVX-512 twin in one run (median
// of 3):
//
//	                       scores        exp           values
//	                       512    AVX2   512    AVX2   512    AVX2
//	G=2,hd=32,npos=68      1.16   1.80   1.39   2.75   1.18   1.61
//	G=2,hd=32,npos=512     1.13   1.55   0.72   1.33   1.16   1.49
//	G=4,hd=128,npos=68     8.38   13.7   2.78   5.35   6.51   12.3
//	G=4,hd=128,npos=512    9.54   16.5   1.65   2.65   9.24   11.9
//
// The AVX2 exp does two scaling multiplies and integer shifts where
// AVX-512 has VSCALEFPS.

// attendScoresAVX2 is attendScoresSIMD with AVX2: pairs of query rows
// times blocks of 32 positions (four 8-lane vectors, eight accumulators),
// then of 8 (see attendScoresBy). Positions past the last whole vector
// that fits in w are done by the scalar loop.
func attendScoresAVX2(s []float32, lds int, q, kt []float32, ldk, npos, w, G, hd int) bool {
	return hasAVX2() && attendScoresBy(8, attendQK2x4AVX2, attendQK2x1AVX2, s, lds, q, kt, ldk, npos, w, G, hd)
}

// attendQK2x4AVX2 stores at s0 and s1 the scores of 32 positions for the
// query rows at q0 and q1: Σ_i q[i]·kt[i][0:32] over the hd ≥ 1 rows of
// kt, ks bytes apart. The caller checks the bounds.
//
//go:noinline
func attendQK2x4AVX2(kt unsafe.Pointer, ks uintptr, q0, q1 unsafe.Pointer, hd int, s0, s1 unsafe.Pointer) {
	var a0, a1, a2, a3, b0, b1, b2, b3 archsimd.Float32x8
	for i := hd; ; {
		k0 := archsimd.LoadFloat32x8((*[8]float32)(kt))
		k1 := archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(kt, 32)))
		k2 := archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(kt, 64)))
		k3 := archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(kt, 96)))
		// The multiply-add overwrites its receiver's register: the last
		// use of each key vector is its receiver, saving a copy.
		x := archsimd.BroadcastFloat32x8(*(*float32)(q0))
		y := archsimd.BroadcastFloat32x8(*(*float32)(q1))
		a0 = x.MulAdd(k0, a0)
		b0 = k0.MulAdd(y, b0)
		a1 = x.MulAdd(k1, a1)
		b1 = k1.MulAdd(y, b1)
		a2 = x.MulAdd(k2, a2)
		b2 = k2.MulAdd(y, b2)
		a3 = x.MulAdd(k3, a3)
		b3 = k3.MulAdd(y, b3)
		// Advance only while another step follows (unsafe.Add's rule).
		if i--; i == 0 {
			break
		}
		kt, q0, q1 = unsafe.Add(kt, ks), unsafe.Add(q0, 4), unsafe.Add(q1, 4)
	}
	a0.Store((*[8]float32)(s0))
	a1.Store((*[8]float32)(unsafe.Add(s0, 32)))
	a2.Store((*[8]float32)(unsafe.Add(s0, 64)))
	a3.Store((*[8]float32)(unsafe.Add(s0, 96)))
	b0.Store((*[8]float32)(s1))
	b1.Store((*[8]float32)(unsafe.Add(s1, 32)))
	b2.Store((*[8]float32)(unsafe.Add(s1, 64)))
	b3.Store((*[8]float32)(unsafe.Add(s1, 96)))
}

// attendQK2x1AVX2 is attendQK2x4AVX2 for 8 positions, with two
// accumulators per query row (even and odd steps of the head dimension).
//
//go:noinline
func attendQK2x1AVX2(kt unsafe.Pointer, ks uintptr, q0, q1 unsafe.Pointer, hd int, s0, s1 unsafe.Pointer) {
	var a0, a1, b0, b1 archsimd.Float32x8
	i := hd
	for ; i >= 2; i -= 2 {
		k0 := archsimd.LoadFloat32x8((*[8]float32)(kt))
		k1 := archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(kt, ks)))
		a0 = archsimd.BroadcastFloat32x8(*(*float32)(q0)).MulAdd(k0, a0)
		a1 = archsimd.BroadcastFloat32x8(*(*float32)(unsafe.Add(q0, 4))).MulAdd(k1, a1)
		b0 = archsimd.BroadcastFloat32x8(*(*float32)(q1)).MulAdd(k0, b0)
		b1 = archsimd.BroadcastFloat32x8(*(*float32)(unsafe.Add(q1, 4))).MulAdd(k1, b1)
		if i == 2 {
			break
		}
		kt, q0, q1 = unsafe.Add(kt, 2*ks), unsafe.Add(q0, 8), unsafe.Add(q1, 8)
	}
	if i == 1 { // an odd hd: the last row, where the pointers are
		k0 := archsimd.LoadFloat32x8((*[8]float32)(kt))
		a0 = archsimd.BroadcastFloat32x8(*(*float32)(q0)).MulAdd(k0, a0)
		b0 = archsimd.BroadcastFloat32x8(*(*float32)(q1)).MulAdd(k0, b0)
	}
	a0.Add(a1).Store((*[8]float32)(s0))
	b0.Add(b1).Store((*[8]float32)(s1))
}

// attendValuesAVX2 is attendValuesSIMD with AVX2 for head sizes that are
// a multiple of 8: pairs of output rows times 32 lanes of the head (one
// position per step, eight accumulators), then 8 lanes (two positions per
// step in separate accumulators), so each value row is loaded once per
// pair of query rows (see attendValuesBy).
func attendValuesAVX2(out, p []float32, ldp int, v []float32, ldv, npos, G, hd int) bool {
	if !hasAVX2() || hd%8 != 0 {
		return false
	}
	attendValuesBy([3]pvBlock{{32, attendPV2x4AVX2}, {8, attendPV2x1AVX2}}, out, p, ldp, v, ldv, npos, G, hd)
	return true
}

// attendPV2x4AVX2 stores at o0 and o1 the sums Σ_t p[t]·v[t][0:32] for
// the probability rows at p0 and p1 over npos ≥ 1 value rows vs bytes
// apart. The caller checks the bounds.
//
//go:noinline
func attendPV2x4AVX2(p0, p1, v unsafe.Pointer, vs uintptr, npos int, o0, o1 unsafe.Pointer) {
	var a0, a1, a2, a3, b0, b1, b2, b3 archsimd.Float32x8
	for t := npos; ; {
		v0 := archsimd.LoadFloat32x8((*[8]float32)(v))
		v1 := archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(v, 32)))
		v2 := archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(v, 64)))
		v3 := archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(v, 96)))
		x := archsimd.BroadcastFloat32x8(*(*float32)(p0))
		y := archsimd.BroadcastFloat32x8(*(*float32)(p1))
		a0 = x.MulAdd(v0, a0)
		b0 = v0.MulAdd(y, b0) // v0's last use: no copy (see attendQK2x4AVX2)
		a1 = x.MulAdd(v1, a1)
		b1 = v1.MulAdd(y, b1)
		a2 = x.MulAdd(v2, a2)
		b2 = v2.MulAdd(y, b2)
		a3 = x.MulAdd(v3, a3)
		b3 = v3.MulAdd(y, b3)
		if t--; t == 0 {
			break
		}
		v, p0, p1 = unsafe.Add(v, vs), unsafe.Add(p0, 4), unsafe.Add(p1, 4)
	}
	a0.Store((*[8]float32)(o0))
	a1.Store((*[8]float32)(unsafe.Add(o0, 32)))
	a2.Store((*[8]float32)(unsafe.Add(o0, 64)))
	a3.Store((*[8]float32)(unsafe.Add(o0, 96)))
	b0.Store((*[8]float32)(o1))
	b1.Store((*[8]float32)(unsafe.Add(o1, 32)))
	b2.Store((*[8]float32)(unsafe.Add(o1, 64)))
	b3.Store((*[8]float32)(unsafe.Add(o1, 96)))
}

// attendPV2x1AVX2 is attendPV2x4AVX2 for 8 lanes, with two accumulators
// per output row (even and odd positions).
//
//go:noinline
func attendPV2x1AVX2(p0, p1, v unsafe.Pointer, vs uintptr, npos int, o0, o1 unsafe.Pointer) {
	var a0, b0, c0, d0 archsimd.Float32x8
	t := npos
	for ; t >= 2; t -= 2 {
		v0 := archsimd.LoadFloat32x8((*[8]float32)(v))
		v1 := archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(v, vs)))
		a0 = archsimd.BroadcastFloat32x8(*(*float32)(p0)).MulAdd(v0, a0)
		b0 = archsimd.BroadcastFloat32x8(*(*float32)(p1)).MulAdd(v0, b0)
		c0 = archsimd.BroadcastFloat32x8(*(*float32)(unsafe.Add(p0, 4))).MulAdd(v1, c0)
		d0 = archsimd.BroadcastFloat32x8(*(*float32)(unsafe.Add(p1, 4))).MulAdd(v1, d0)
		if t == 2 {
			break
		}
		v, p0, p1 = unsafe.Add(v, 2*vs), unsafe.Add(p0, 8), unsafe.Add(p1, 8)
	}
	if t == 1 { // an odd npos: the last position, where the pointers are
		v0 := archsimd.LoadFloat32x8((*[8]float32)(v))
		a0 = archsimd.BroadcastFloat32x8(*(*float32)(p0)).MulAdd(v0, a0)
		b0 = archsimd.BroadcastFloat32x8(*(*float32)(p1)).MulAdd(v0, b0)
	}
	a0.Add(c0).Store((*[8]float32)(o0))
	b0.Add(d0).Store((*[8]float32)(o1))
}

// attendExpAVX2 is attendExpSIMD with AVX2, for rows with room for whole
// 8-lane vectors (w ≥ npos rounded up to 8, w ≤ lds): one pass for the
// maximum and one for the exponentials and their sum, the lanes past npos
// of the last vector masked out of both (a lane-index comparison, as AVX2
// has no mask registers).
func attendExpAVX2(s []float32, lds, npos, w, G int, sums []float32) bool {
	nv := (npos + 7) &^ 7
	if !hasAVX2() || w < nv || lds < nv {
		return false
	}
	s, sums = s[:(G-1)*lds+nv], sums[:G]
	lane := archsimd.LoadInt32x8(&[8]int32{0, 1, 2, 3, 4, 5, 6, 7})
	valid := archsimd.BroadcastInt32x8(int32(npos - (nv - 8))).Greater(lane)
	ninf := archsimd.BroadcastFloat32x8(float32(math.Inf(-1)))
	for g := range G {
		row := s[g*lds : g*lds+nv]
		last := archsimd.LoadFloat32x8Slice(row[nv-8:]).Merge(ninf, valid)
		m := last
		for t := 0; t+8 < nv; t += 8 {
			m = archsimd.LoadFloat32x8Slice(row[t : t+8]).Max(m)
		}
		var lanes [8]float32
		m.Store(&lanes)
		vm := archsimd.BroadcastFloat32x8(maxGo(lanes[:]))
		var sum archsimd.Float32x8
		for t := 0; t+8 < nv; t += 8 {
			e := expVec8(archsimd.LoadFloat32x8Slice(row[t : t+8]).Sub(vm))
			e.StoreSlice(row[t : t+8])
			sum = sum.Add(e)
		}
		e := expVec8(last.Sub(vm)).Masked(valid)
		e.StoreSlice(row[nv-8:])
		sums[g] = hsumClear8(sum.Add(e))
	}
	archsimd.ClearAVXUpperBits()
	return true
}
