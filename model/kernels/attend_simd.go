//go:build goexperiment.simd && amd64

package kernels

import (
	"math"
	"simd/archsimd"
	"unsafe"
)

// attendScoresSIMD is attendScores on AVX-512: pairs of query rows times
// blocks of 64 positions (four 16-lane vectors, eight accumulators), then
// of 16; each step of the head dimension is one broadcast per query row
// and one load per vector of positions. Positions past the last whole
// vector that fits in w are done by the scalar loop. Without AVX-512, or
// where the rows of s have room for 8-lane vectors only, its AVX2 twin
// (attend_avx2.go) runs; it reports false where neither applies.
func attendScoresSIMD(s []float32, lds int, q, kt []float32, ldk, npos, w, G, hd int) bool {
	if archsimd.X86.AVX512() && attendScoresBy(16, attendQK2x4, attendQK2x1, s, lds, q, kt, ldk, npos, w, G, hd) {
		return true
	}
	return attendScoresAVX2(s, lds, q, kt, ldk, npos, w, G, hd)
}

// qkKernel is the type of the score kernels attendQK2x4, attendQK2x1
// and their AVX2 twins.
type qkKernel func(kt unsafe.Pointer, ks uintptr, q0, q1 unsafe.Pointer, hd int, s0, s1 unsafe.Pointer)

// attendScoresBy is the body of attendScoresSIMD and its AVX2 twin, for
// vectors of lanes positions (a power of two): it runs big on blocks of four vectors and
// small on single vectors, for pairs of query rows, and the scalar loop
// on the positions past the last whole vector that fits in w. It reports
// false where the rows of s have no room for whole vectors.
func attendScoresBy(lanes int, big, small qkKernel, s []float32, lds int, q, kt []float32, ldk, npos, w, G, hd int) bool {
	nv := (npos + lanes - 1) &^ (lanes - 1) // positions done by whole vectors
	if nv > w {
		nv = npos &^ (lanes - 1)
	}
	if nv > lds {
		return false // the rows of s would overlap
	}
	if nv > 0 {
		s, kt, q := s[:(G-1)*lds+nv], kt[:(hd-1)*ldk+nv], q[:G*hd]
		ks := uintptr(ldk) * 4
		for g := 0; g < G; g += 2 {
			g1 := min(g+1, G-1) // an odd last row is done twice
			q0, q1 := unsafe.Pointer(&q[g*hd]), unsafe.Pointer(&q[g1*hd])
			s0, s1 := s[g*lds:g*lds+nv], s[g1*lds:g1*lds+nv]
			t := 0
			for ; t+4*lanes <= nv; t += 4 * lanes {
				big(unsafe.Pointer(&kt[t]), ks, q0, q1, hd, unsafe.Pointer(&s0[t]), unsafe.Pointer(&s1[t]))
			}
			for ; t < nv; t += lanes {
				small(unsafe.Pointer(&kt[t]), ks, q0, q1, hd, unsafe.Pointer(&s0[t]), unsafe.Pointer(&s1[t]))
			}
		}
	}
	for g := range G {
		for t := nv; t < npos; t++ {
			var d float32
			for i, qi := range q[g*hd : (g+1)*hd] {
				d += qi * kt[i*ldk+t]
			}
			s[g*lds+t] = d
		}
	}
	archsimd.ClearAVXUpperBits()
	return true
}

// attendQK2x4 stores at s0 and s1 the scores of 64 positions for the
// query rows at q0 and q1: Σ_i q[i]·kt[i][0:64] over the hd ≥ 1 rows of
// kt, ks bytes apart. The caller checks the bounds.
//
//go:noinline
func attendQK2x4(kt unsafe.Pointer, ks uintptr, q0, q1 unsafe.Pointer, hd int, s0, s1 unsafe.Pointer) {
	var a0, a1, a2, a3, b0, b1, b2, b3 archsimd.Float32x16
	for i := hd; ; {
		k0 := archsimd.LoadFloat32x16((*[16]float32)(kt))
		k1 := archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(kt, 64)))
		k2 := archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(kt, 128)))
		k3 := archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(kt, 192)))
		x := archsimd.BroadcastFloat32x16(*(*float32)(q0))
		a0 = x.MulAdd(k0, a0)
		a1 = x.MulAdd(k1, a1)
		a2 = x.MulAdd(k2, a2)
		a3 = x.MulAdd(k3, a3)
		x = archsimd.BroadcastFloat32x16(*(*float32)(q1))
		b0 = x.MulAdd(k0, b0)
		b1 = x.MulAdd(k1, b1)
		b2 = x.MulAdd(k2, b2)
		b3 = x.MulAdd(k3, b3)
		// Advance only while another step follows (unsafe.Add's rule).
		if i--; i == 0 {
			break
		}
		kt, q0, q1 = unsafe.Add(kt, ks), unsafe.Add(q0, 4), unsafe.Add(q1, 4)
	}
	a0.Store((*[16]float32)(s0))
	a1.Store((*[16]float32)(unsafe.Add(s0, 64)))
	a2.Store((*[16]float32)(unsafe.Add(s0, 128)))
	a3.Store((*[16]float32)(unsafe.Add(s0, 192)))
	b0.Store((*[16]float32)(s1))
	b1.Store((*[16]float32)(unsafe.Add(s1, 64)))
	b2.Store((*[16]float32)(unsafe.Add(s1, 128)))
	b3.Store((*[16]float32)(unsafe.Add(s1, 192)))
}

// attendQK2x1 is attendQK2x4 for 16 positions, with two accumulators
// per query row (even and odd steps of the head dimension).
//
//go:noinline
func attendQK2x1(kt unsafe.Pointer, ks uintptr, q0, q1 unsafe.Pointer, hd int, s0, s1 unsafe.Pointer) {
	var a0, a1, b0, b1 archsimd.Float32x16
	i := hd
	for ; i >= 2; i -= 2 {
		k0 := archsimd.LoadFloat32x16((*[16]float32)(kt))
		k1 := archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(kt, ks)))
		a0 = archsimd.BroadcastFloat32x16(*(*float32)(q0)).MulAdd(k0, a0)
		a1 = archsimd.BroadcastFloat32x16(*(*float32)(unsafe.Add(q0, 4))).MulAdd(k1, a1)
		b0 = archsimd.BroadcastFloat32x16(*(*float32)(q1)).MulAdd(k0, b0)
		b1 = archsimd.BroadcastFloat32x16(*(*float32)(unsafe.Add(q1, 4))).MulAdd(k1, b1)
		if i == 2 {
			break
		}
		kt, q0, q1 = unsafe.Add(kt, 2*ks), unsafe.Add(q0, 8), unsafe.Add(q1, 8)
	}
	if i == 1 { // an odd hd: the last row, where the pointers are
		k0 := archsimd.LoadFloat32x16((*[16]float32)(kt))
		a0 = archsimd.BroadcastFloat32x16(*(*float32)(q0)).MulAdd(k0, a0)
		b0 = archsimd.BroadcastFloat32x16(*(*float32)(q1)).MulAdd(k0, b0)
	}
	a0.Add(a1).Store((*[16]float32)(s0))
	b0.Add(b1).Store((*[16]float32)(s1))
}

// attendValuesSIMD is attendValues on AVX-512 for head sizes that are a
// multiple of 16: pairs of output rows times 64, then 32 lanes of the
// head (one position per step), then 16 (two positions per step in
// separate accumulators), so each value row is loaded once per pair of
// query rows. Without AVX-512, or for head sizes that are a multiple of 8
// only, its AVX2 twin runs. It reports false where neither applies.
func attendValuesSIMD(out, p []float32, ldp int, v []float32, ldv, npos, G, hd int) bool {
	if !archsimd.X86.AVX512() || hd%16 != 0 {
		return attendValuesAVX2(out, p, ldp, v, ldv, npos, G, hd)
	}
	attendValuesBy([3]pvBlock{{64, attendPV2x4}, {32, attendPV2x2}, {16, attendPV2x1}}, out, p, ldp, v, ldv, npos, G, hd)
	return true
}

// pvKernel is the type of the value kernels attendPV2x4, attendPV2x2,
// attendPV2x1 and their AVX2 twins.
type pvKernel func(p0, p1, v unsafe.Pointer, vs uintptr, npos int, o0, o1 unsafe.Pointer)

// pvBlock is a value kernel and the lanes of the head it covers.
type pvBlock struct {
	lanes  int
	kernel pvKernel
}

// attendValuesBy is the body of attendValuesSIMD and its AVX2 twin: for
// pairs of output rows, it runs each kernel of blocks, widest first, on
// as many of its blocks of lanes as fit in what the wider ones left of
// the head, which the last one (lanes > 0) must divide. Entries with no
// lanes are skipped.
func attendValuesBy(blocks [3]pvBlock, out, p []float32, ldp int, v []float32, ldv, npos, G, hd int) {
	out, p, v = out[:G*hd], p[:(G-1)*ldp+npos], v[:(npos-1)*ldv+hd]
	vs := uintptr(ldv) * 4
	for g := 0; g < G; g += 2 {
		g1 := min(g+1, G-1)
		p0, p1 := unsafe.Pointer(&p[g*ldp]), unsafe.Pointer(&p[g1*ldp])
		o0, o1 := out[g*hd:(g+1)*hd], out[g1*hd:(g1+1)*hd]
		c := 0
		for _, b := range blocks {
			for ; b.lanes > 0 && c+b.lanes <= hd; c += b.lanes {
				b.kernel(p0, p1, unsafe.Pointer(&v[c]), vs, npos, unsafe.Pointer(&o0[c]), unsafe.Pointer(&o1[c]))
			}
		}
	}
	archsimd.ClearAVXUpperBits()
}

// attendPV2x4 stores at o0 and o1 the sums Σ_t p[t]·v[t][0:64] for the
// probability rows at p0 and p1 over npos ≥ 1 value rows vs bytes apart:
// one position per step, eight accumulators, four loads and two
// broadcasts, which fit in the 16 vector registers the compiler uses
// (two positions per step would not: see attendPV2x2). The caller checks
// the bounds.
//
//go:noinline
func attendPV2x4(p0, p1, v unsafe.Pointer, vs uintptr, npos int, o0, o1 unsafe.Pointer) {
	var a0, a1, a2, a3, b0, b1, b2, b3 archsimd.Float32x16
	for t := npos; ; {
		v0 := archsimd.LoadFloat32x16((*[16]float32)(v))
		v1 := archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(v, 64)))
		v2 := archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(v, 128)))
		v3 := archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(v, 192)))
		// The multiply-add overwrites its receiver's register: the last
		// use of each vector is the receiver, so nothing is copied.
		x := archsimd.BroadcastFloat32x16(*(*float32)(p0))
		y := archsimd.BroadcastFloat32x16(*(*float32)(p1))
		a0 = x.MulAdd(v0, a0)
		b0 = v0.MulAdd(y, b0)
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
	a0.Store((*[16]float32)(o0))
	a1.Store((*[16]float32)(unsafe.Add(o0, 64)))
	a2.Store((*[16]float32)(unsafe.Add(o0, 128)))
	a3.Store((*[16]float32)(unsafe.Add(o0, 192)))
	b0.Store((*[16]float32)(o1))
	b1.Store((*[16]float32)(unsafe.Add(o1, 64)))
	b2.Store((*[16]float32)(unsafe.Add(o1, 128)))
	b3.Store((*[16]float32)(unsafe.Add(o1, 192)))
}

// attendPV2x2 is attendPV2x4 for 32 lanes, four accumulators. (Two
// positions per step in eight accumulators spilled two of them to the
// stack each step, the compiler hoisting all the step's loads, and ran at
// half this speed on a Zen 5.)
//
//go:noinline
func attendPV2x2(p0, p1, v unsafe.Pointer, vs uintptr, npos int, o0, o1 unsafe.Pointer) {
	var a0, a1, b0, b1 archsimd.Float32x16
	for t := npos; ; {
		v0 := archsimd.LoadFloat32x16((*[16]float32)(v))
		v1 := archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(v, 64)))
		x := archsimd.BroadcastFloat32x16(*(*float32)(p0))
		y := archsimd.BroadcastFloat32x16(*(*float32)(p1))
		a0 = x.MulAdd(v0, a0)
		b0 = v0.MulAdd(y, b0)
		a1 = x.MulAdd(v1, a1)
		b1 = v1.MulAdd(y, b1)
		if t--; t == 0 {
			break
		}
		v, p0, p1 = unsafe.Add(v, vs), unsafe.Add(p0, 4), unsafe.Add(p1, 4)
	}
	a0.Store((*[16]float32)(o0))
	a1.Store((*[16]float32)(unsafe.Add(o0, 64)))
	b0.Store((*[16]float32)(o1))
	b1.Store((*[16]float32)(unsafe.Add(o1, 64)))
}

// attendPV2x1 is attendPV2x4 for 16 lanes, two positions per step in
// separate accumulators.
//
//go:noinline
func attendPV2x1(p0, p1, v unsafe.Pointer, vs uintptr, npos int, o0, o1 unsafe.Pointer) {
	var a0, b0, c0, d0 archsimd.Float32x16
	t := npos
	for ; t >= 2; t -= 2 {
		v0 := archsimd.LoadFloat32x16((*[16]float32)(v))
		v1 := archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(v, vs)))
		a0 = archsimd.BroadcastFloat32x16(*(*float32)(p0)).MulAdd(v0, a0)
		b0 = archsimd.BroadcastFloat32x16(*(*float32)(p1)).MulAdd(v0, b0)
		c0 = archsimd.BroadcastFloat32x16(*(*float32)(unsafe.Add(p0, 4))).MulAdd(v1, c0)
		d0 = archsimd.BroadcastFloat32x16(*(*float32)(unsafe.Add(p1, 4))).MulAdd(v1, d0)
		if t == 2 {
			break
		}
		v, p0, p1 = unsafe.Add(v, 2*vs), unsafe.Add(p0, 8), unsafe.Add(p1, 8)
	}
	if t == 1 {
		v0 := archsimd.LoadFloat32x16((*[16]float32)(v))
		a0 = archsimd.BroadcastFloat32x16(*(*float32)(p0)).MulAdd(v0, a0)
		b0 = archsimd.BroadcastFloat32x16(*(*float32)(p1)).MulAdd(v0, b0)
	}
	a0.Add(c0).Store((*[16]float32)(o0))
	b0.Add(d0).Store((*[16]float32)(o1))
}

// attendExpSIMD is attendExp on AVX-512 for rows with room for whole
// vectors (w ≥ npos rounded up to 16, w ≤ lds): one pass for the maximum
// and one for the exponentials and their sum, the lanes past npos of the
// last vector masked out of both. Without AVX-512, or for rows with
// room for 8-lane vectors only, its AVX2 twin runs. It reports false
// where neither applies.
func attendExpSIMD(s []float32, lds, npos, w, G int, sums []float32) bool {
	nv := (npos + 15) &^ 15
	if !archsimd.X86.AVX512() || w < nv || lds < nv {
		return attendExpAVX2(s, lds, npos, w, G, sums)
	}
	s, sums = s[:(G-1)*lds+nv], sums[:G]
	valid := archsimd.Mask32x16FromBits(0xffff >> (nv - npos))
	ninf := archsimd.BroadcastFloat32x16(float32(math.Inf(-1)))
	for g := range G {
		row := s[g*lds : g*lds+nv]
		last := archsimd.LoadFloat32x16Slice(row[nv-16:]).Merge(ninf, valid)
		m := last
		for t := 0; t+16 < nv; t += 16 {
			m = archsimd.LoadFloat32x16Slice(row[t : t+16]).Max(m)
		}
		var lanes [16]float32
		m.Store(&lanes)
		vm := archsimd.BroadcastFloat32x16(maxGo(lanes[:]))
		var sum archsimd.Float32x16
		for t := 0; t+16 < nv; t += 16 {
			e := expVec(archsimd.LoadFloat32x16Slice(row[t : t+16]).Sub(vm))
			e.StoreSlice(row[t : t+16])
			sum = sum.Add(e)
		}
		e := expVec(last.Sub(vm)).Masked(valid)
		e.StoreSlice(row[nv-16:])
		sums[g] = hsumClear(sum.Add(e))
	}
	archsimd.ClearAVXUpperBits()
	return true
}
