//go:build goexperiment.simd && amd64

package kernels

import (
	"simd/archsimd"
	"unsafe"
)

// AVX2 micro-kernel geometry: 4 rows × 16 columns (two 8-float vectors)
// gives 8 vector accumulators, plus 2 B vectors and the A broadcasts. The
// Go compiler allocates 15 vector registers to archsimd code, and larger
// tiles spill and run 30–60% slower.
const (
	avx2MR = 4
	avx2NR = 16
)

// newBestGoGemm returns the fastest pure-Go GEMM of this build: the
// assembly AVX-512 kernel when the CPU has AVX-512, the archsimd AVX2 one
// when it has AVX2 and FMA, else the portable one.
func newBestGoGemm() (*goGemm, string) {
	switch {
	case archsimd.X86.AVX512():
		return newGoGemm(asmMR, asmNR, kernelAsm, rowsAsm, colsAsm), "cpu/go-simd"
	case archsimd.X86.AVX2() && archsimd.X86.FMA():
		return newGoGemm(avx2MR, avx2NR, kernelAVX2, rowsAVX2, colsAVX2), "cpu/go-simd-avx2"
	}
	return newGoGemm(portableMR, portableNR, kernelPortable, nil, nil), "cpu/go"
}

// kernelAVX2 is the 4×16 micro-kernel on 8-float vectors (see
// microKernel), for CPUs without AVX-512.
func kernelAVX2(kc int, a, b []float32, c []float32, ldc int, alpha, beta float32) {
	var acc [8]archsimd.Float32x8
	avx2Loop(kc, a, b, &acc)
	storeTile256(&acc, c, ldc, alpha, beta)
}

// rowsAVX2 is kernelAVX2 with the four rows of A read in place (see
// rowsKernel).
func rowsAVX2(kc int, a []float32, lda int, b []float32, c []float32, ldc int, alpha, beta float32) {
	var acc [8]archsimd.Float32x8
	if kc > 0 {
		a, b = a[:3*lda+kc], b[:kc*avx2NR]
		avx2RowsP(kc, unsafe.Pointer(&a[0]), uintptr(lda)*4, unsafe.Pointer(&b[0]), &acc)
	}
	storeTile256(&acc, c, ldc, alpha, beta)
}

// avx2RowsP is avx2LoopP reading the four rows of A where they are
// stored (lda bytes apart) instead of from a packed panel: the broadcasts
// come from four pointers that advance one float per step.
//
//go:noinline
func avx2RowsP(kc int, a unsafe.Pointer, lda uintptr, b unsafe.Pointer, acc *[8]archsimd.Float32x8) {
	var c00, c01, c10, c11, c20, c21, c30, c31 archsimd.Float32x8
	a1, a2, a3 := unsafe.Add(a, lda), unsafe.Add(a, 2*lda), unsafe.Add(a, 3*lda)
	for k := kc; ; {
		b0 := archsimd.LoadFloat32x8((*[8]float32)(b))
		b1 := archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(b, 32)))
		x := archsimd.BroadcastFloat32x8(*(*float32)(a))
		c00 = x.MulAdd(b0, c00)
		c01 = x.MulAdd(b1, c01)
		x = archsimd.BroadcastFloat32x8(*(*float32)(a1))
		c10 = x.MulAdd(b0, c10)
		c11 = x.MulAdd(b1, c11)
		x = archsimd.BroadcastFloat32x8(*(*float32)(a2))
		c20 = x.MulAdd(b0, c20)
		c21 = x.MulAdd(b1, c21)
		x = archsimd.BroadcastFloat32x8(*(*float32)(a3))
		c30 = x.MulAdd(b0, c30)
		c31 = x.MulAdd(b1, c31)
		if k--; k == 0 {
			break
		}
		a, a1, a2, a3 = unsafe.Add(a, 4), unsafe.Add(a1, 4), unsafe.Add(a2, 4), unsafe.Add(a3, 4)
		b = unsafe.Add(b, 4*avx2NR)
	}
	acc[0], acc[1], acc[2], acc[3] = c00, c01, c10, c11
	acc[4], acc[5], acc[6], acc[7] = c20, c21, c30, c31
}

// storeTile256 writes the 4×16 tile acc: c = alpha·acc + beta·c, without
// reading c when beta is 0, and leaves the vector registers clean for the
// scalar SSE code that runs next (see hsumClear).
func storeTile256(acc *[8]archsimd.Float32x8, c []float32, ldc int, alpha, beta float32) {
	va := archsimd.BroadcastFloat32x8(alpha)
	vb := archsimd.BroadcastFloat32x8(beta)
	for i := range avx2MR {
		row := c[i*ldc : i*ldc+16]
		v0, v1 := acc[2*i].Mul(va), acc[2*i+1].Mul(va)
		if beta != 0 {
			v0 = archsimd.LoadFloat32x8Slice(row[0:8]).MulAdd(vb, v0)
			v1 = archsimd.LoadFloat32x8Slice(row[8:16]).MulAdd(vb, v1)
		}
		v0.StoreSlice(row[0:8])
		v1.StoreSlice(row[8:16])
	}
	archsimd.ClearAVXUpperBits()
}

// avx2Loop accumulates the kc rank-1 updates of a 4×16 tile of packed
// panels into acc (row i in acc[2i], acc[2i+1]). It is a separate
// function with no float arguments so that all 15 vector registers the
// compiler allocates are free for the loop: with alpha and beta live
// across it, an accumulator spills to the stack.
func avx2Loop(kc int, a, b []float32, acc *[8]archsimd.Float32x8) {
	if kc <= 0 {
		*acc = [8]archsimd.Float32x8{}
		return
	}
	a, b = a[:kc*avx2MR], b[:kc*avx2NR]
	avx2LoopP(kc, unsafe.Pointer(&a[0]), 4*avx2MR, unsafe.Pointer(&b[0]), acc)
}

// colsAVX2 is kernelAVX2 with a transposed A read in place (see
// colsKernel).
func colsAVX2(kc int, a []float32, lda int, b []float32, c []float32, ldc int, alpha, beta float32) {
	var acc [8]archsimd.Float32x8
	if kc > 0 {
		a, b = a[:(kc-1)*lda+avx2MR], b[:kc*avx2NR]
		avx2LoopP(kc, unsafe.Pointer(&a[0]), uintptr(lda)*4, unsafe.Pointer(&b[0]), &acc)
	}
	storeTile256(&acc, c, ldc, alpha, beta)
}

// avx2LoopP is avx2Loop on raw pointers to the panels (kc ≥ 1 steps of 4
// and 16 floats, the steps of A as bytes apart: 16 for a packed panel,
// more for a transposed A read in place; the caller checks the bounds).
// Pointers that advance leave the loop three integer registers and every
// load a constant offset, with no slice bookkeeping.
//
//go:noinline
func avx2LoopP(kc int, a unsafe.Pointer, as uintptr, b unsafe.Pointer, acc *[8]archsimd.Float32x8) {
	var c00, c01, c10, c11, c20, c21, c30, c31 archsimd.Float32x8
	for k := kc; ; {
		b0 := archsimd.LoadFloat32x8((*[8]float32)(b))
		b1 := archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(b, 32)))
		x := archsimd.BroadcastFloat32x8(*(*float32)(a))
		c00 = x.MulAdd(b0, c00)
		c01 = x.MulAdd(b1, c01)
		x = archsimd.BroadcastFloat32x8(*(*float32)(unsafe.Add(a, 4)))
		c10 = x.MulAdd(b0, c10)
		c11 = x.MulAdd(b1, c11)
		x = archsimd.BroadcastFloat32x8(*(*float32)(unsafe.Add(a, 8)))
		c20 = x.MulAdd(b0, c20)
		c21 = x.MulAdd(b1, c21)
		x = archsimd.BroadcastFloat32x8(*(*float32)(unsafe.Add(a, 12)))
		c30 = x.MulAdd(b0, c30)
		c31 = x.MulAdd(b1, c31)
		if k--; k == 0 {
			break
		}
		a, b = unsafe.Add(a, as), unsafe.Add(b, 4*avx2NR)
	}
	acc[0], acc[1], acc[2], acc[3] = c00, c01, c10, c11
	acc[4], acc[5], acc[6], acc[7] = c20, c21, c30, c31
}
