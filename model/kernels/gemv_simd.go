//go:build goexperiment.simd && amd64

package kernels

import (
	"simd/archsimd"
	"unsafe"
)

// matVecSIMD is the AVX-512 matrix-vector kernel (see matVecFunc): blocks
// of four weight rows, each dotted with two rows of x at a time (eight
// 16-lane accumulators), the eight sums reduced across lanes together.
// The block of W (4·in floats) stays in L1 while every pair of x rows
// passes over it, so with many rows the kernel is bound by the FMA units,
// not by memory: the pair loop (matVec4x2p) runs on raw pointers to keep
// all accumulators and row addresses in registers. CPUs with AVX2 and
// FMA but no AVX-512 run matVecAVX2; it reports false on CPUs with
// neither.
func matVecSIMD(a *mvArgs, lo, hi int) bool {
	if !archsimd.X86.AVX512() {
		if hasAVX2() {
			matVecAVX2(a, lo, hi)
			return true
		}
		return false
	}
	y, x, w, n, in, acc := a.y, a.x, a.w, a.n, a.in, a.acc
	ldy, ldx, ldw := a.ldy, a.ldx, a.ldw
	var s [8]float32
	k16 := in &^ 15
	r := lo
	for ; r+4 <= hi; r += 4 {
		w0 := w[r*ldw : r*ldw+in]
		w1 := w[(r+1)*ldw : (r+1)*ldw+in]
		w2 := w[(r+2)*ldw : (r+2)*ldw+in]
		w3 := w[(r+3)*ldw : (r+3)*ldw+in]
		j := 0
		for ; j+2 <= n; j += 2 {
			if k16 > 0 {
				matVec4x2Rows(w[r*ldw:(r+3)*ldw+in], ldw, x[j*ldx:(j+1)*ldx+in], ldx, in, k16, &s)
			} else {
				matVec4x2(w0, w1, w2, w3, x[j*ldx:j*ldx+in], x[(j+1)*ldx:(j+1)*ldx+in], &s)
			}
			store4(y[j*ldy+r:j*ldy+r+4], s[0], s[1], s[2], s[3], acc)
			store4(y[(j+1)*ldy+r:(j+1)*ldy+r+4], s[4], s[5], s[6], s[7], acc)
		}
		if j < n {
			if k16 > 0 {
				matVec4x1Rows(w[r*ldw:(r+3)*ldw+in], ldw, x[j*ldx:j*ldx+in], in, k16, &s)
			} else {
				matVec4x1(w0, w1, w2, w3, x[j*ldx:j*ldx+in], &s)
			}
			store4(y[j*ldy+r:j*ldy+r+4], s[0], s[1], s[2], s[3], acc)
		}
	}
	for ; r < hi; r++ {
		wr := w[r*ldw : r*ldw+in]
		for j := range n {
			d, _ := dotSIMD(x[j*ldx:j*ldx+in], wr)
			if acc {
				d += y[j*ldy+r]
			}
			y[j*ldy+r] = d
		}
	}
	archsimd.ClearAVXUpperBits()
	return true
}

// matVec4x2Rows is matVec4x2 for the four weight rows at w (ldw apart,
// 3·ldw+in floats) and the two rows of x (ldx apart, ldx+in floats), with
// the first k16 ≥ 16 elements, a multiple of 16, done by matVec4x2p and
// the rest here.
func matVec4x2Rows(w []float32, ldw int, x []float32, ldx, in, k16 int, s *[8]float32) {
	w, x = w[:3*ldw+in], x[:ldx+in]
	matVec4x2p(unsafe.Pointer(&w[0]), uintptr(ldw)*4, unsafe.Pointer(&x[0]), uintptr(ldx)*4, k16, s)
	for i := k16; i < in; i++ {
		u, v := x[i], x[ldx+i]
		p0, p1, p2, p3 := w[i], w[ldw+i], w[2*ldw+i], w[3*ldw+i]
		s[0] += u * p0
		s[1] += u * p1
		s[2] += u * p2
		s[3] += u * p3
		s[4] += v * p0
		s[5] += v * p1
		s[6] += v * p2
		s[7] += v * p3
	}
}

// reduce4 returns the lane sums of a, b, c and d as one 4-lane vector.
func reduce4(a, b, c, d archsimd.Float32x16) archsimd.Float32x4 {
	h := func(v archsimd.Float32x16) archsimd.Float32x4 {
		v8 := v.GetLo().Add(v.GetHi())
		return v8.GetLo().Add(v8.GetHi())
	}
	return h(a).AddPairs(h(b)).AddPairs(h(c).AddPairs(h(d)))
}

// matVec4x2 stores in s the dot products of w0…w3 with xa (s[0:4]) and
// with xb (s[4:8]); all slices have the same length. It takes no float
// arguments so that the loop has every vector register the compiler
// allocates (see avx512Loop).
//
//go:noinline
func matVec4x2(w0, w1, w2, w3, xa, xb []float32, s *[8]float32) {
	var a0, a1, a2, a3, b0, b1, b2, b3 archsimd.Float32x16
	k := len(xa)
	w0, w1, w2, w3, xb = w0[:k], w1[:k], w2[:k], w3[:k], xb[:k]
	i := 0
	for ; i+16 <= k; i += 16 {
		u := archsimd.LoadFloat32x16Slice(xa[i : i+16])
		v := archsimd.LoadFloat32x16Slice(xb[i : i+16])
		p := archsimd.LoadFloat32x16Slice(w0[i : i+16])
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = archsimd.LoadFloat32x16Slice(w1[i : i+16])
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = archsimd.LoadFloat32x16Slice(w2[i : i+16])
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = archsimd.LoadFloat32x16Slice(w3[i : i+16])
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
	}
	if i < k {
		u := loadPart(xa[i:])
		v := loadPart(xb[i:])
		p := loadPart(w0[i:])
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = loadPart(w1[i:])
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = loadPart(w2[i:])
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = loadPart(w3[i:])
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
	}
	reduce4(a0, a1, a2, a3).Store((*[4]float32)(s[0:4]))
	reduce4(b0, b1, b2, b3).Store((*[4]float32)(s[4:8]))
}

// matVec4x1 stores in s[0:4] the dot products of w0…w3 with xa. Two
// accumulators per row (even and odd vectors) keep eight FMA chains in
// flight.
//
//go:noinline
func matVec4x1(w0, w1, w2, w3, xa []float32, s *[8]float32) {
	var a0, a1, a2, a3, c0, c1, c2, c3 archsimd.Float32x16
	k := len(xa)
	w0, w1, w2, w3 = w0[:k], w1[:k], w2[:k], w3[:k]
	i := 0
	// The slices advance instead of being indexed, so that each load has
	// one length check and no slice arithmetic.
	for len(xa) >= 32 && len(w0) >= 32 && len(w1) >= 32 && len(w2) >= 32 && len(w3) >= 32 {
		u := archsimd.LoadFloat32x16Slice(xa)
		v := archsimd.LoadFloat32x16Slice(xa[16:])
		a0 = archsimd.LoadFloat32x16Slice(w0).MulAdd(u, a0)
		c0 = archsimd.LoadFloat32x16Slice(w0[16:]).MulAdd(v, c0)
		a1 = archsimd.LoadFloat32x16Slice(w1).MulAdd(u, a1)
		c1 = archsimd.LoadFloat32x16Slice(w1[16:]).MulAdd(v, c1)
		a2 = archsimd.LoadFloat32x16Slice(w2).MulAdd(u, a2)
		c2 = archsimd.LoadFloat32x16Slice(w2[16:]).MulAdd(v, c2)
		a3 = archsimd.LoadFloat32x16Slice(w3).MulAdd(u, a3)
		c3 = archsimd.LoadFloat32x16Slice(w3[16:]).MulAdd(v, c3)
		xa, w0, w1, w2, w3 = xa[32:], w0[32:], w1[32:], w2[32:], w3[32:]
	}
	k = len(xa)
	for ; i < k; i += 16 {
		u := loadPart(xa[i:])
		a0 = loadPart(w0[i:]).MulAdd(u, a0)
		a1 = loadPart(w1[i:]).MulAdd(u, a1)
		a2 = loadPart(w2[i:]).MulAdd(u, a2)
		a3 = loadPart(w3[i:]).MulAdd(u, a3)
	}
	reduce4(a0.Add(c0), a1.Add(c1), a2.Add(c2), a3.Add(c3)).Store((*[4]float32)(s[0:4]))
}

// matVecGoMaxRows is MatVecMaxRows for the pure-Go kernel: 64 with
// AVX-512; 64 with AVX2 and FMA too, where the AVX2 kernel still beats
// the 6×16 tile's Gemm (which packs W per call) 1.2–1.7× at 64 rows and
// 1.6–2.2× at 32 (BenchmarkMatVec under GODEBUG=cpu.avx512f=off, 2
// cores); 8 for the portable kernel otherwise.
func matVecGoMaxRows() int {
	if archsimd.X86.AVX512() || hasAVX2() {
		return 64
	}
	return 8
}

// matVec4x2p stores in s the dot products of the four weight rows at w
// (rows ws bytes apart) with the two rows of x at x (xs bytes apart):
// s[0:4] for the first x row, s[4:8] for the second. It covers the first
// k16 elements of the rows, a multiple of 16 and at least 16 (0 would
// loop forever); the caller checks that they are in bounds and adds the
// rest. Raw pointers that advance keep the loop's integer registers to
// the six row addresses and a counter, and every load a constant offset
// from one of them: with six slices, the loop reloads their headers from
// the stack and spills a vector. The body is unrolled twice.
//
//go:noinline
func matVec4x2p(w unsafe.Pointer, ws uintptr, x unsafe.Pointer, xs uintptr, k16 int, s *[8]float32) {
	var a0, a1, a2, a3, b0, b1, b2, b3 archsimd.Float32x16
	w0, w1, w2, w3 := w, unsafe.Add(w, ws), unsafe.Add(w, 2*ws), unsafe.Add(w, 3*ws)
	xa, xb := x, unsafe.Add(x, xs)
	if k16&16 != 0 {
		u := archsimd.LoadFloat32x16((*[16]float32)(xa))
		v := archsimd.LoadFloat32x16((*[16]float32)(xb))
		p := archsimd.LoadFloat32x16((*[16]float32)(w0))
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = archsimd.LoadFloat32x16((*[16]float32)(w1))
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = archsimd.LoadFloat32x16((*[16]float32)(w2))
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = archsimd.LoadFloat32x16((*[16]float32)(w3))
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
		if k16 == 16 {
			reduce4(a0, a1, a2, a3).Store((*[4]float32)(s[0:4]))
			reduce4(b0, b1, b2, b3).Store((*[4]float32)(s[4:8]))
			return
		}
		xa, xb, w0, w1, w2, w3 = unsafe.Add(xa, 64), unsafe.Add(xb, 64), unsafe.Add(w0, 64), unsafe.Add(w1, 64), unsafe.Add(w2, 64), unsafe.Add(w3, 64)
	}
	// The pointers advance only while another 32 elements follow, so that
	// none points past its row (unsafe.Add's rule).
	for k := k16 >> 5; ; {
		u := archsimd.LoadFloat32x16((*[16]float32)(xa))
		v := archsimd.LoadFloat32x16((*[16]float32)(xb))
		p := archsimd.LoadFloat32x16((*[16]float32)(w0))
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = archsimd.LoadFloat32x16((*[16]float32)(w1))
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = archsimd.LoadFloat32x16((*[16]float32)(w2))
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = archsimd.LoadFloat32x16((*[16]float32)(w3))
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
		u = archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(xa, 64)))
		v = archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(xb, 64)))
		p = archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(w0, 64)))
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(w1, 64)))
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(w2, 64)))
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(w3, 64)))
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
		if k--; k == 0 {
			break
		}
		xa, xb, w0, w1, w2, w3 = unsafe.Add(xa, 128), unsafe.Add(xb, 128), unsafe.Add(w0, 128), unsafe.Add(w1, 128), unsafe.Add(w2, 128), unsafe.Add(w3, 128)
	}
	reduce4(a0, a1, a2, a3).Store((*[4]float32)(s[0:4]))
	reduce4(b0, b1, b2, b3).Store((*[4]float32)(s[4:8]))
}

// matVec4x1Rows stores in s[0:4] the dot products of the four weight rows
// at w (ldw apart, 3·ldw+in floats) with x (in floats): the first k16 ≥ 16
// elements, a multiple of 16, by matVec4x1p, the rest here.
func matVec4x1Rows(w []float32, ldw int, x []float32, in, k16 int, s *[8]float32) {
	w, x = w[:3*ldw+in], x[:in]
	matVec4x1p(unsafe.Pointer(&w[0]), uintptr(ldw)*4, unsafe.Pointer(&x[0]), k16, s)
	for i := k16; i < in; i++ {
		u := x[i]
		s[0] += u * w[i]
		s[1] += u * w[ldw+i]
		s[2] += u * w[2*ldw+i]
		s[3] += u * w[3*ldw+i]
	}
}

// matVec4x1p stores in s[0:4] the dot products of the four weight rows at
// w (rows ws bytes apart) with the row of x at x, over the first k16
// elements (a multiple of 16, at least 16). Like matVec4x2p it runs on
// raw pointers that advance, with two accumulators per weight row (eight
// FMA chains); the slice-based matVec4x1 it replaces for rows of 16 or
// more elements checked five lengths per step and decoded one row of x
// 6–15% slower than the 8-lane AVX2 kernel (BenchmarkMatVecTiers, n=1).
//
//go:noinline
func matVec4x1p(w unsafe.Pointer, ws uintptr, x unsafe.Pointer, k16 int, s *[8]float32) {
	var a0, a1, a2, a3, c0, c1, c2, c3 archsimd.Float32x16
	w0, w1, w2, w3 := w, unsafe.Add(w, ws), unsafe.Add(w, 2*ws), unsafe.Add(w, 3*ws)
	ld := func(p unsafe.Pointer) archsimd.Float32x16 { return archsimd.LoadFloat32x16((*[16]float32)(p)) }
	if k16&16 != 0 {
		u := ld(x)
		a0 = ld(w0).MulAdd(u, a0)
		a1 = ld(w1).MulAdd(u, a1)
		a2 = ld(w2).MulAdd(u, a2)
		a3 = ld(w3).MulAdd(u, a3)
		if k16 == 16 {
			reduce4(a0, a1, a2, a3).Store((*[4]float32)(s[0:4]))
			return
		}
		x, w0, w1, w2, w3 = unsafe.Add(x, 64), unsafe.Add(w0, 64), unsafe.Add(w1, 64), unsafe.Add(w2, 64), unsafe.Add(w3, 64)
	}
	for k := k16 >> 5; ; {
		u, v := ld(x), ld(unsafe.Add(x, 64))
		a0 = ld(w0).MulAdd(u, a0)
		c0 = ld(unsafe.Add(w0, 64)).MulAdd(v, c0)
		a1 = ld(w1).MulAdd(u, a1)
		c1 = ld(unsafe.Add(w1, 64)).MulAdd(v, c1)
		a2 = ld(w2).MulAdd(u, a2)
		c2 = ld(unsafe.Add(w2, 64)).MulAdd(v, c2)
		a3 = ld(w3).MulAdd(u, a3)
		c3 = ld(unsafe.Add(w3, 64)).MulAdd(v, c3)
		if k--; k == 0 {
			break
		}
		x, w0, w1, w2, w3 = unsafe.Add(x, 128), unsafe.Add(w0, 128), unsafe.Add(w1, 128), unsafe.Add(w2, 128), unsafe.Add(w3, 128)
	}
	reduce4(a0.Add(c0), a1.Add(c1), a2.Add(c2), a3.Add(c3)).Store((*[4]float32)(s[0:4]))
}
