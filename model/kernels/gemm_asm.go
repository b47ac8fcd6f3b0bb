//go:build goexperiment.simd && amd64

package kernels

import (
	"simd/archsimd"
	"unsafe"

	"github.com/herdml/herd/model/kernels/internal/avx512"
)

// AVX-512 assembly micro-kernel geometry (avx512.Gemm8x32): 8 rows × 32
// columns, sixteen accumulators. Go's compiler allocates only 15 vector
// registers to the archsimd kernels (see simdMR), so this tile is written
// in assembly; it ran at 224–227 GFLOP per CPU-second against 148–157
// for the archsimd 4×32 tile it replaced (BenchmarkMicroKernel, Zen 5). The model's row counts
// (tokens, features, 16 decoding rows) are multiples of 8, so it leaves
// no edge tiles where 12 rows would.
const (
	asmMR = 8
	asmNR = 32
)

// kernelAsm is the 8×32 micro-kernel on packed panels (see microKernel).
func kernelAsm(kc int, a, b []float32, c []float32, ldc int, alpha, beta float32) {
	if kc <= 0 {
		scaleTile(c, ldc, asmMR, asmNR, alpha, beta)
		return
	}
	a, b, c = a[:kc*asmMR], b[:kc*asmNR], c[:(asmMR-1)*ldc+asmNR]
	avx512.Gemm8x32(kc, unsafe.Pointer(&a[0]), 4*asmMR, 4, unsafe.Pointer(&b[0]), unsafe.Pointer(&c[0]), uintptr(ldc)*4, alpha, beta)
}

// rowsAsm is kernelAsm with the eight rows of A read in place (see
// rowsKernel).
func rowsAsm(kc int, a []float32, lda int, b []float32, c []float32, ldc int, alpha, beta float32) {
	if kc <= 0 {
		scaleTile(c, ldc, asmMR, asmNR, alpha, beta)
		return
	}
	a, b, c = a[:(asmMR-1)*lda+kc], b[:kc*asmNR], c[:(asmMR-1)*ldc+asmNR]
	avx512.Gemm8x32(kc, unsafe.Pointer(&a[0]), 4, uintptr(lda)*4, unsafe.Pointer(&b[0]), unsafe.Pointer(&c[0]), uintptr(ldc)*4, alpha, beta)
}

// colsAsm is kernelAsm with a transposed A read in place (see
// colsKernel).
func colsAsm(kc int, a []float32, lda int, b []float32, c []float32, ldc int, alpha, beta float32) {
	if kc <= 0 {
		scaleTile(c, ldc, asmMR, asmNR, alpha, beta)
		return
	}
	a, b, c = a[:(kc-1)*lda+asmMR], b[:kc*asmNR], c[:(asmMR-1)*ldc+asmNR]
	avx512.Gemm8x32(kc, unsafe.Pointer(&a[0]), uintptr(lda)*4, 4, unsafe.Pointer(&b[0]), unsafe.Pointer(&c[0]), uintptr(ldc)*4, alpha, beta)
}

// scaleTile sets an mr×nr tile of c to beta·c (alpha·0 + beta·c), without
// reading c when beta is 0: a product over no steps.
func scaleTile(c []float32, ldc, mr, nr int, alpha, beta float32) {
	for i := range mr {
		row := c[i*ldc : i*ldc+nr]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// packedWidth and packedRows are the panel width and row block of Packed:
// the assembly tile's, on CPUs with AVX-512.
func packedWidth() int {
	if archsimd.X86.AVX512() {
		return asmNR
	}
	return 0
}

func packedRows() int { return asmMR }

// packedTile computes the asmMR×asmNR block y = x·panelᵀ (+ y when acc)
// of RunPacked: the rows of x (ldx apart) read in place, the panel's in
// steps, the rows of y ldy apart.
func packedTile(in int, x []float32, ldx int, panel, y []float32, ldy int, acc bool) {
	var beta float32
	if acc {
		beta = 1
	}
	rowsAsm(in, x, ldx, panel, y, ldy, 1, beta)
}
