//go:build goexperiment.simd && amd64

package kernels

import (
	"simd/archsimd"
	"unsafe"
)

// matVecAVX2 is matVecSIMD's AVX2 tier, for CPUs with AVX2 and FMA but no
// AVX-512: the structure of the AVX-512 kernel on 8-lane registers.
// Blocks of four weight rows are dotted with two rows of x at a time
// (eight accumulators, eleven of the sixteen YMM registers with the two
// x vectors and the weight vector) by matVec4x2pAVX2, and with a last
// single row by matVec4x1pAVX2 (two accumulators per weight row, so eight
// FMA chains hide the FMA latency); both run on raw pointers so that no
// vector spills. The elements past the last multiple of 8 are added in
// scalar code; weight rows past the last block of four go through
// dotAVX2.
//
// Measured on a 2-core AMD EPYC (AVX-512 hardware; the AVX2 tier reached
// with GODEBUG=cpu.avx512f=off), load average about 2 from other jobs:
//
//   - BenchmarkMatVecTiers (one goroutine, weights in GB/s; AVX-512 /
//     AVX2 / portable kernel, one run): 768×256 n=1 83 / 97 / 11, n=2
//     97 / 75 / 6.9, n=4 55 / 40 / 2.7, n=8 31 / 21 / 1.4; 1536×512 n=1
//     71 / 77 / 5.9, n=8 31 / 21 / 1.2. One row of x is bound by the
//     loads, so 8 lanes match 16; with more rows the kernel is bound by
//     the FMAs and runs at 65–75% of the AVX-512 one.
//   - BenchmarkGenerateM1/matvec (config M, 128 tokens, three interleaved
//     runs of 20 iterations): 1107–1127 tokens/s with the portable kernel
//     and helpers on AVX2 (the commit before this tier), 2008–2785 with
//     it, 2516–3962 on AVX-512, 903–1146 in the portable build. What
//     remains on AVX2 is mostly this kernel (55% of the profile, bound by
//     memory) and the attention's scalar loops (axpyGo, 14%).
func matVecAVX2(a *mvArgs, lo, hi int) {
	y, x, w, n, in, acc := a.y, a.x, a.w, a.n, a.in, a.acc
	ldy, ldx, ldw := a.ldy, a.ldx, a.ldw
	var s [8]float32
	k8 := in &^ 7
	r := lo
	for ; r+4 <= hi; r += 4 {
		wb := w[r*ldw : (r+3)*ldw+in]
		j := 0
		for ; j+2 <= n; j += 2 {
			matVec4x2RowsAVX2(wb, ldw, x[j*ldx:(j+1)*ldx+in], ldx, in, k8, &s)
			store4(y[j*ldy+r:j*ldy+r+4], s[0], s[1], s[2], s[3], acc)
			store4(y[(j+1)*ldy+r:(j+1)*ldy+r+4], s[4], s[5], s[6], s[7], acc)
		}
		if j < n {
			matVec4x1RowsAVX2(wb, ldw, x[j*ldx:j*ldx+in], in, k8, &s)
			store4(y[j*ldy+r:j*ldy+r+4], s[0], s[1], s[2], s[3], acc)
		}
	}
	for ; r < hi; r++ {
		wr := w[r*ldw : r*ldw+in]
		for j := range n {
			d := dotAVX2(x[j*ldx:j*ldx+in], wr)
			if acc {
				d += y[j*ldy+r]
			}
			y[j*ldy+r] = d
		}
	}
	archsimd.ClearAVXUpperBits()
}

// matVec4x2RowsAVX2 stores in s the dot products of the four weight rows
// at w (ldw apart, 3·ldw+in floats) with the two rows of x (ldx apart,
// ldx+in floats): s[0:4] for the first x row, s[4:8] for the second. The
// first k8 elements (a multiple of 8) are done by matVec4x2pAVX2, the
// rest here.
func matVec4x2RowsAVX2(w []float32, ldw int, x []float32, ldx, in, k8 int, s *[8]float32) {
	w, x = w[:3*ldw+in], x[:ldx+in]
	if k8 > 0 {
		matVec4x2pAVX2(unsafe.Pointer(&w[0]), uintptr(ldw)*4, unsafe.Pointer(&x[0]), uintptr(ldx)*4, k8, s)
	} else {
		*s = [8]float32{}
	}
	for i := k8; i < in; i++ {
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

// matVec4x1RowsAVX2 stores in s[0:4] the dot products of the four weight
// rows at w (ldw apart, 3·ldw+in floats) with x (in floats): the first k8
// elements by matVec4x1pAVX2, the rest here.
func matVec4x1RowsAVX2(w []float32, ldw int, x []float32, in, k8 int, s *[8]float32) {
	w, x = w[:3*ldw+in], x[:in]
	if k8 > 0 {
		matVec4x1pAVX2(unsafe.Pointer(&w[0]), uintptr(ldw)*4, unsafe.Pointer(&x[0]), k8, s)
	} else {
		s[0], s[1], s[2], s[3] = 0, 0, 0, 0
	}
	for i := k8; i < in; i++ {
		u := x[i]
		s[0] += u * w[i]
		s[1] += u * w[ldw+i]
		s[2] += u * w[2*ldw+i]
		s[3] += u * w[3*ldw+i]
	}
}

// reduce4x8 returns the lane sums of a, b, c and d as one 4-lane vector:
// three in-lane horizontal adds leave each sum split over the two
// 128-bit halves, which one add joins.
func reduce4x8(a, b, c, d archsimd.Float32x8) archsimd.Float32x4 {
	v := a.AddPairsGrouped(b).AddPairsGrouped(c.AddPairsGrouped(d))
	return v.GetLo().Add(v.GetHi())
}

// load8 loads the 8 floats at p.
func load8(p unsafe.Pointer) archsimd.Float32x8 {
	return archsimd.LoadFloat32x8((*[8]float32)(p))
}

// matVec4x2pAVX2 stores in s the dot products of the four weight rows at
// w (rows ws bytes apart) with the two rows of x at x (xs bytes apart):
// s[0:4] for the first x row, s[4:8] for the second. It covers the first
// k8 elements of the rows, a multiple of 8 and at least 8 (0 would loop
// forever); the caller checks that they are in bounds and adds the rest.
// It is matVec4x2p on 8 lanes: raw pointers that advance, the body
// unrolled twice.
//
//go:noinline
func matVec4x2pAVX2(w unsafe.Pointer, ws uintptr, x unsafe.Pointer, xs uintptr, k8 int, s *[8]float32) {
	var a0, a1, a2, a3, b0, b1, b2, b3 archsimd.Float32x8
	w0, w1, w2, w3 := w, unsafe.Add(w, ws), unsafe.Add(w, 2*ws), unsafe.Add(w, 3*ws)
	xa, xb := x, unsafe.Add(x, xs)
	if k8&8 != 0 {
		u, v := load8(xa), load8(xb)
		p := load8(w0)
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = load8(w1)
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = load8(w2)
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = load8(w3)
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
		if k8 == 8 {
			reduce4x8(a0, a1, a2, a3).Store((*[4]float32)(s[0:4]))
			reduce4x8(b0, b1, b2, b3).Store((*[4]float32)(s[4:8]))
			return
		}
		xa, xb, w0, w1, w2, w3 = unsafe.Add(xa, 32), unsafe.Add(xb, 32), unsafe.Add(w0, 32), unsafe.Add(w1, 32), unsafe.Add(w2, 32), unsafe.Add(w3, 32)
	}
	// The pointers advance only while another 16 elements follow, so that
	// none points past its row (unsafe.Add's rule).
	for k := k8 >> 4; ; {
		u, v := load8(xa), load8(xb)
		p := load8(w0)
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = load8(w1)
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = load8(w2)
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = load8(w3)
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
		u, v = load8(unsafe.Add(xa, 32)), load8(unsafe.Add(xb, 32))
		p = load8(unsafe.Add(w0, 32))
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = load8(unsafe.Add(w1, 32))
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = load8(unsafe.Add(w2, 32))
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = load8(unsafe.Add(w3, 32))
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
		if k--; k == 0 {
			break
		}
		xa, xb, w0, w1, w2, w3 = unsafe.Add(xa, 64), unsafe.Add(xb, 64), unsafe.Add(w0, 64), unsafe.Add(w1, 64), unsafe.Add(w2, 64), unsafe.Add(w3, 64)
	}
	reduce4x8(a0, a1, a2, a3).Store((*[4]float32)(s[0:4]))
	reduce4x8(b0, b1, b2, b3).Store((*[4]float32)(s[4:8]))
}

// matVec4x1pAVX2 stores in s[0:4] the dot products of the four weight
// rows at w (rows ws bytes apart) with the row of x at x, over the first
// k8 elements (a multiple of 8, at least 8; see matVec4x2pAVX2). Two
// accumulators per weight row (even and odd vectors) keep eight FMA
// chains in flight.
//
//go:noinline
func matVec4x1pAVX2(w unsafe.Pointer, ws uintptr, x unsafe.Pointer, k8 int, s *[8]float32) {
	var a0, a1, a2, a3, c0, c1, c2, c3 archsimd.Float32x8
	w0, w1, w2, w3 := w, unsafe.Add(w, ws), unsafe.Add(w, 2*ws), unsafe.Add(w, 3*ws)
	if k8&8 != 0 {
		u := load8(x)
		a0 = load8(w0).MulAdd(u, a0)
		a1 = load8(w1).MulAdd(u, a1)
		a2 = load8(w2).MulAdd(u, a2)
		a3 = load8(w3).MulAdd(u, a3)
		if k8 == 8 {
			reduce4x8(a0, a1, a2, a3).Store((*[4]float32)(s[0:4]))
			return
		}
		x, w0, w1, w2, w3 = unsafe.Add(x, 32), unsafe.Add(w0, 32), unsafe.Add(w1, 32), unsafe.Add(w2, 32), unsafe.Add(w3, 32)
	}
	for k := k8 >> 4; ; {
		u, v := load8(x), load8(unsafe.Add(x, 32))
		a0 = load8(w0).MulAdd(u, a0)
		c0 = load8(unsafe.Add(w0, 32)).MulAdd(v, c0)
		a1 = load8(w1).MulAdd(u, a1)
		c1 = load8(unsafe.Add(w1, 32)).MulAdd(v, c1)
		a2 = load8(w2).MulAdd(u, a2)
		c2 = load8(unsafe.Add(w2, 32)).MulAdd(v, c2)
		a3 = load8(w3).MulAdd(u, a3)
		c3 = load8(unsafe.Add(w3, 32)).MulAdd(v, c3)
		if k--; k == 0 {
			break
		}
		x, w0, w1, w2, w3 = unsafe.Add(x, 64), unsafe.Add(w0, 64), unsafe.Add(w1, 64), unsafe.Add(w2, 64), unsafe.Add(w3, 64)
	}
	reduce4x8(a0.Add(c0), a1.Add(c1), a2.Add(c2), a3.Add(c3)).Store((*[4]float32)(s[0:4]))
}
