//go:build goexperiment.simd && amd64

package kernels

import (
	"simd/archsimd"
	"unsafe"
)

// matVecBF16SIMD is RunBF16's AVX-512 kernel, with an AVX2 tier for CPUs
// with AVX2 and FMA but no AVX-512; it reports false on CPUs with
// neither. It is matVecSIMD (and matVecAVX2) with each weight vector
// loaded as 16 (8) BF16 values and widened exactly (zero-extended to 32
// bits, shifted left by 16): the same blocks of four weight rows, the same
// accumulators and the same scalar tails, so its sums equal the F32
// kernel's on the widened weights. Rows shorter than one vector go to the
// portable kernel.
func matVecBF16SIMD(a *mvArgs, lo, hi int) bool {
	switch {
	case archsimd.X86.AVX512():
		matVecBF16Lanes(a, lo, hi, 16)
	case hasAVX2():
		matVecBF16Lanes(a, lo, hi, 8)
	default:
		return false
	}
	return true
}

// matVecBF16Lanes is matVecBF16SIMD on vectors of 16 lanes (AVX-512) or
// 8 (AVX2); the CPU must have the instructions.
func matVecBF16Lanes(a *mvArgs, lo, hi, lanes int) {
	if a.in < lanes {
		matVecBF16Portable(a, lo, hi)
		return
	}
	y, x, w, n, in, acc := a.y, a.x, a.wh, a.n, a.in, a.acc
	ldy, ldx, ldw := a.ldy, a.ldx, a.ldw
	var s [8]float32
	kv := in &^ (lanes - 1)
	// ws: the bytes from one weight row of a block to the next; cs: from
	// one chunk of 16 elements of a row to the next (see bf16Blocked).
	ws, cs := uintptr(ldw)*2, uintptr(32)
	if bf16Blocked(in) {
		ws, cs = 32, 128
	}
	r := lo
	for ; r+4 <= hi; r += 4 {
		wb := w[r*ldw : (r+3)*ldw+in]
		j := 0
		for ; j+2 <= n; j += 2 {
			xb := x[j*ldx : (j+1)*ldx+in]
			wp, xp := unsafe.Pointer(&wb[0]), unsafe.Pointer(&xb[0])
			if lanes == 16 {
				matVecBF16x4x2p(wp, ws, cs, xp, uintptr(ldx)*4, kv, &s)
			} else {
				matVecBF16x4x2pAVX2(wp, ws, cs, xp, uintptr(ldx)*4, kv, &s)
			}
			for i := kv; i < in; i++ {
				u, v := xb[i], xb[ldx+i]
				p0, p1, p2, p3 := bf16f(wb[i]), bf16f(wb[ldw+i]), bf16f(wb[2*ldw+i]), bf16f(wb[3*ldw+i])
				s[0] += u * p0
				s[1] += u * p1
				s[2] += u * p2
				s[3] += u * p3
				s[4] += v * p0
				s[5] += v * p1
				s[6] += v * p2
				s[7] += v * p3
			}
			store4(y[j*ldy+r:j*ldy+r+4], s[0], s[1], s[2], s[3], acc)
			store4(y[(j+1)*ldy+r:(j+1)*ldy+r+4], s[4], s[5], s[6], s[7], acc)
		}
		if j < n {
			xr := x[j*ldx : j*ldx+in]
			wp, xp := unsafe.Pointer(&wb[0]), unsafe.Pointer(&xr[0])
			if lanes == 16 {
				matVecBF16x4x1p(wp, ws, cs, xp, kv, &s)
			} else {
				matVecBF16x4x1pAVX2(wp, ws, cs, xp, kv, &s)
			}
			for i := kv; i < in; i++ {
				u := xr[i]
				s[0] += u * bf16f(wb[i])
				s[1] += u * bf16f(wb[ldw+i])
				s[2] += u * bf16f(wb[2*ldw+i])
				s[3] += u * bf16f(wb[3*ldw+i])
			}
			store4(y[j*ldy+r:j*ldy+r+4], s[0], s[1], s[2], s[3], acc)
		}
	}
	matVecBF16Rows(a, r, hi)
	archsimd.ClearAVXUpperBits()
}

// ldh16 loads the 16 BF16 values at p widened to F32 (AVX-512).
func ldh16(p unsafe.Pointer) archsimd.Float32x16 {
	return archsimd.LoadUint16x16((*[16]uint16)(p)).ExtendToUint32().ShiftAllLeft(16).AsFloat32x16()
}

// ldf16 loads the 16 floats at p.
func ldf16(p unsafe.Pointer) archsimd.Float32x16 {
	return archsimd.LoadFloat32x16((*[16]float32)(p))
}

// ldh8 loads the 8 BF16 values at p widened to F32 (AVX2).
func ldh8(p unsafe.Pointer) archsimd.Float32x8 {
	return archsimd.LoadUint16x8((*[8]uint16)(p)).ExtendToUint32().ShiftAllLeft(16).AsFloat32x8()
}

// matVecBF16x4x2p is matVec4x2p on BF16 weight rows (ws bytes apart): the
// dot products of four weight rows with two rows of x over the first k16
// elements (a multiple of 16, at least 16), in matVec4x2p's order.
//
//go:noinline
func matVecBF16x4x2p(w unsafe.Pointer, ws, cs uintptr, x unsafe.Pointer, xs uintptr, k16 int, s *[8]float32) {
	var a0, a1, a2, a3, b0, b1, b2, b3 archsimd.Float32x16
	w0, w1, w2, w3 := w, unsafe.Add(w, ws), unsafe.Add(w, 2*ws), unsafe.Add(w, 3*ws)
	xa, xb := x, unsafe.Add(x, xs)
	if k16&16 != 0 {
		u, v := ldf16(xa), ldf16(xb)
		p := ldh16(w0)
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = ldh16(w1)
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = ldh16(w2)
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = ldh16(w3)
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
		if k16 == 16 {
			reduce4(a0, a1, a2, a3).Store((*[4]float32)(s[0:4]))
			reduce4(b0, b1, b2, b3).Store((*[4]float32)(s[4:8]))
			return
		}
		xa, xb, w0, w1, w2, w3 = unsafe.Add(xa, 64), unsafe.Add(xb, 64), unsafe.Add(w0, cs), unsafe.Add(w1, cs), unsafe.Add(w2, cs), unsafe.Add(w3, cs)
	}
	// The pointers advance only while another 32 elements follow, so that
	// none points past its row (unsafe.Add's rule).
	for k := k16 >> 5; ; {
		u, v := ldf16(xa), ldf16(xb)
		p := ldh16(w0)
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = ldh16(w1)
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = ldh16(w2)
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = ldh16(w3)
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
		u, v = ldf16(unsafe.Add(xa, 64)), ldf16(unsafe.Add(xb, 64))
		p = ldh16(unsafe.Add(w0, cs))
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = ldh16(unsafe.Add(w1, cs))
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = ldh16(unsafe.Add(w2, cs))
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = ldh16(unsafe.Add(w3, cs))
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
		if k--; k == 0 {
			break
		}
		xa, xb, w0, w1, w2, w3 = unsafe.Add(xa, 128), unsafe.Add(xb, 128), unsafe.Add(w0, 2*cs), unsafe.Add(w1, 2*cs), unsafe.Add(w2, 2*cs), unsafe.Add(w3, 2*cs)
	}
	reduce4(a0, a1, a2, a3).Store((*[4]float32)(s[0:4]))
	reduce4(b0, b1, b2, b3).Store((*[4]float32)(s[4:8]))
}

// matVecBF16x4x1p is matVec4x1p on BF16 weight rows (ws bytes apart): the
// dot products of four weight rows with one row of x over the first k16
// elements (a multiple of 16, at least 16), two accumulators per row.
//
//go:noinline
func matVecBF16x4x1p(w unsafe.Pointer, ws, cs uintptr, x unsafe.Pointer, k16 int, s *[8]float32) {
	var a0, a1, a2, a3, c0, c1, c2, c3 archsimd.Float32x16
	w0, w1, w2, w3 := w, unsafe.Add(w, ws), unsafe.Add(w, 2*ws), unsafe.Add(w, 3*ws)
	if k16&16 != 0 {
		u := ldf16(x)
		a0 = ldh16(w0).MulAdd(u, a0)
		a1 = ldh16(w1).MulAdd(u, a1)
		a2 = ldh16(w2).MulAdd(u, a2)
		a3 = ldh16(w3).MulAdd(u, a3)
		if k16 == 16 {
			reduce4(a0, a1, a2, a3).Store((*[4]float32)(s[0:4]))
			return
		}
		x, w0, w1, w2, w3 = unsafe.Add(x, 64), unsafe.Add(w0, cs), unsafe.Add(w1, cs), unsafe.Add(w2, cs), unsafe.Add(w3, cs)
	}
	for k := k16 >> 5; ; {
		u, v := ldf16(x), ldf16(unsafe.Add(x, 64))
		a0 = ldh16(w0).MulAdd(u, a0)
		c0 = ldh16(unsafe.Add(w0, cs)).MulAdd(v, c0)
		a1 = ldh16(w1).MulAdd(u, a1)
		c1 = ldh16(unsafe.Add(w1, cs)).MulAdd(v, c1)
		a2 = ldh16(w2).MulAdd(u, a2)
		c2 = ldh16(unsafe.Add(w2, cs)).MulAdd(v, c2)
		a3 = ldh16(w3).MulAdd(u, a3)
		c3 = ldh16(unsafe.Add(w3, cs)).MulAdd(v, c3)
		if k--; k == 0 {
			break
		}
		x, w0, w1, w2, w3 = unsafe.Add(x, 128), unsafe.Add(w0, 2*cs), unsafe.Add(w1, 2*cs), unsafe.Add(w2, 2*cs), unsafe.Add(w3, 2*cs)
	}
	reduce4(a0.Add(c0), a1.Add(c1), a2.Add(c2), a3.Add(c3)).Store((*[4]float32)(s[0:4]))
}

// matVecBF16x4x2pAVX2 is matVec4x2pAVX2 on BF16 weight rows: k8 elements,
// a multiple of 8 and at least 8.
//
//go:noinline
func matVecBF16x4x2pAVX2(w unsafe.Pointer, ws, cs uintptr, x unsafe.Pointer, xs uintptr, k8 int, s *[8]float32) {
	var a0, a1, a2, a3, b0, b1, b2, b3 archsimd.Float32x8
	w0, w1, w2, w3 := w, unsafe.Add(w, ws), unsafe.Add(w, 2*ws), unsafe.Add(w, 3*ws)
	xa, xb := x, unsafe.Add(x, xs)
	if k8&8 != 0 {
		u, v := load8(xa), load8(xb)
		p := ldh8(w0)
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = ldh8(w1)
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = ldh8(w2)
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = ldh8(w3)
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
		if k8 == 8 {
			reduce4x8(a0, a1, a2, a3).Store((*[4]float32)(s[0:4]))
			reduce4x8(b0, b1, b2, b3).Store((*[4]float32)(s[4:8]))
			return
		}
		xa, xb, w0, w1, w2, w3 = unsafe.Add(xa, 32), unsafe.Add(xb, 32), unsafe.Add(w0, 16), unsafe.Add(w1, 16), unsafe.Add(w2, 16), unsafe.Add(w3, 16)
	}
	for k := k8 >> 4; ; {
		u, v := load8(xa), load8(xb)
		p := ldh8(w0)
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = ldh8(w1)
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = ldh8(w2)
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = ldh8(w3)
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
		u, v = load8(unsafe.Add(xa, 32)), load8(unsafe.Add(xb, 32))
		p = ldh8(unsafe.Add(w0, 16))
		a0 = p.MulAdd(u, a0)
		b0 = p.MulAdd(v, b0)
		p = ldh8(unsafe.Add(w1, 16))
		a1 = p.MulAdd(u, a1)
		b1 = p.MulAdd(v, b1)
		p = ldh8(unsafe.Add(w2, 16))
		a2 = p.MulAdd(u, a2)
		b2 = p.MulAdd(v, b2)
		p = ldh8(unsafe.Add(w3, 16))
		a3 = p.MulAdd(u, a3)
		b3 = p.MulAdd(v, b3)
		if k--; k == 0 {
			break
		}
		xa, xb, w0, w1, w2, w3 = unsafe.Add(xa, 64), unsafe.Add(xb, 64), unsafe.Add(w0, cs), unsafe.Add(w1, cs), unsafe.Add(w2, cs), unsafe.Add(w3, cs)
	}
	reduce4x8(a0, a1, a2, a3).Store((*[4]float32)(s[0:4]))
	reduce4x8(b0, b1, b2, b3).Store((*[4]float32)(s[4:8]))
}

// matVecBF16x4x1pAVX2 is matVec4x1pAVX2 on BF16 weight rows: k8
// elements, a multiple of 8 and at least 8, two accumulators per row.
//
//go:noinline
func matVecBF16x4x1pAVX2(w unsafe.Pointer, ws, cs uintptr, x unsafe.Pointer, k8 int, s *[8]float32) {
	var a0, a1, a2, a3, c0, c1, c2, c3 archsimd.Float32x8
	w0, w1, w2, w3 := w, unsafe.Add(w, ws), unsafe.Add(w, 2*ws), unsafe.Add(w, 3*ws)
	if k8&8 != 0 {
		u := load8(x)
		a0 = ldh8(w0).MulAdd(u, a0)
		a1 = ldh8(w1).MulAdd(u, a1)
		a2 = ldh8(w2).MulAdd(u, a2)
		a3 = ldh8(w3).MulAdd(u, a3)
		if k8 == 8 {
			reduce4x8(a0, a1, a2, a3).Store((*[4]float32)(s[0:4]))
			return
		}
		x, w0, w1, w2, w3 = unsafe.Add(x, 32), unsafe.Add(w0, 16), unsafe.Add(w1, 16), unsafe.Add(w2, 16), unsafe.Add(w3, 16)
	}
	for k := k8 >> 4; ; {
		u, v := load8(x), load8(unsafe.Add(x, 32))
		a0 = ldh8(w0).MulAdd(u, a0)
		c0 = ldh8(unsafe.Add(w0, 16)).MulAdd(v, c0)
		a1 = ldh8(w1).MulAdd(u, a1)
		c1 = ldh8(unsafe.Add(w1, 16)).MulAdd(v, c1)
		a2 = ldh8(w2).MulAdd(u, a2)
		c2 = ldh8(unsafe.Add(w2, 16)).MulAdd(v, c2)
		a3 = ldh8(w3).MulAdd(u, a3)
		c3 = ldh8(unsafe.Add(w3, 16)).MulAdd(v, c3)
		if k--; k == 0 {
			break
		}
		x, w0, w1, w2, w3 = unsafe.Add(x, 64), unsafe.Add(w0, cs), unsafe.Add(w1, cs), unsafe.Add(w2, cs), unsafe.Add(w3, cs)
	}
	reduce4x8(a0.Add(c0), a1.Add(c1), a2.Add(c2), a3.Add(c3)).Store((*[4]float32)(s[0:4]))
}

// BF16Fast reports whether RunBF16 has a SIMD kernel on this build and
// CPU (AVX-512, or AVX2 and FMA), which decodes faster than the F32
// kernels because it reads half the bytes. The portable kernel is bound
// by its scalar widening, not by memory, and runs slower than F32.
func BF16Fast() bool { return archsimd.X86.AVX512() || hasAVX2() }
