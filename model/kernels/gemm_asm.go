//go:build goexperiment.simd && amd64

package kernels

import (
	"simd/archsimd"
	"unsafe"

	"github.com/herdml/herd/model/kernels/internal/avx512"
)

// AVX-512 assembly micro-kernel geometry (avx512.Gemm8x32): 8 rows × 32
// columns, sixteen accumulators (the AVX2 one, avx512.Gemm6x16, is 6×16
// in twelve, see avx2MR). Go's compiler allocates only 15 vector
// registers to the archsimd kernels (see simdMR), so this tile is written
// in assembly; it ran at 224–227 GFLOP per CPU-second against 148–157
// for the archsimd 4×32 tile it replaced (BenchmarkMicroKernel, Zen 5). The model's row counts
// (tokens, features, 16 decoding rows) are multiples of 8, so it leaves
// no edge tiles where 12 rows would.
const (
	asmMR = 8
	asmNR = 32
)

// AVX2 micro-kernel geometry (avx512.Gemm6x16): 6 rows × 16 columns (two
// 8-float vectors) in twelve accumulators, with the two B vectors and two
// broadcasts all 16 YMM registers. It is in assembly because the Go
// compiler allocates 15 vector registers to archsimd code: the archsimd
// 4×16 tile it replaced had 8 accumulators.
const (
	avx2MR = 6
	avx2NR = 16
)

// newBestGoGemm returns the fastest pure-Go GEMM of this build: the
// assembly AVX-512 tile when the CPU has AVX-512, the assembly AVX2 one
// when it has AVX2 and FMA, else the portable one.
func newBestGoGemm() (*goGemm, string) {
	switch {
	case archsimd.X86.AVX512():
		return tile8x32.newGemm(), "cpu/go-simd"
	case archsimd.X86.AVX2() && archsimd.X86.FMA():
		return tile6x16.newGemm(), "cpu/go-simd-avx2"
	}
	return newGoGemm(portableMR, portableNR, kernelPortable, nil, nil), "cpu/go"
}

// asmTile is an assembly GEMM tile (see avx512.Gemm8x32) with the three
// ways of reading A as microKernel, rowsKernel and colsKernel.
type asmTile struct {
	mr, nr int
	f      func(kc int, a unsafe.Pointer, ak, ar uintptr, b, c unsafe.Pointer, ldc uintptr, alpha, beta float32)
}

// The assembly tiles: 8×32 on AVX-512, 6×16 on AVX2 with FMA.
var (
	tile8x32 = asmTile{asmMR, asmNR, avx512.Gemm8x32}
	tile6x16 = asmTile{avx2MR, avx2NR, avx512.Gemm6x16}
)

// kernel is the tile on packed panels (see microKernel).
func (t asmTile) kernel(kc int, a, b []float32, c []float32, ldc int, alpha, beta float32) {
	if kc <= 0 {
		scaleTile(c, ldc, t.mr, t.nr, alpha, beta)
		return
	}
	a, b, c = a[:kc*t.mr], b[:kc*t.nr], c[:(t.mr-1)*ldc+t.nr]
	t.f(kc, unsafe.Pointer(&a[0]), uintptr(4*t.mr), 4, unsafe.Pointer(&b[0]), unsafe.Pointer(&c[0]), uintptr(ldc)*4, alpha, beta)
}

// rows is the tile with the rows of A read in place (see rowsKernel).
func (t asmTile) rows(kc int, a []float32, lda int, b []float32, c []float32, ldc int, alpha, beta float32) {
	if kc <= 0 {
		scaleTile(c, ldc, t.mr, t.nr, alpha, beta)
		return
	}
	a, b, c = a[:(t.mr-1)*lda+kc], b[:kc*t.nr], c[:(t.mr-1)*ldc+t.nr]
	t.f(kc, unsafe.Pointer(&a[0]), 4, uintptr(lda)*4, unsafe.Pointer(&b[0]), unsafe.Pointer(&c[0]), uintptr(ldc)*4, alpha, beta)
}

// cols is the tile with a transposed A read in place (see colsKernel).
func (t asmTile) cols(kc int, a []float32, lda int, b []float32, c []float32, ldc int, alpha, beta float32) {
	if kc <= 0 {
		scaleTile(c, ldc, t.mr, t.nr, alpha, beta)
		return
	}
	a, b, c = a[:(kc-1)*lda+t.mr], b[:kc*t.nr], c[:(t.mr-1)*ldc+t.nr]
	t.f(kc, unsafe.Pointer(&a[0]), uintptr(lda)*4, 4, unsafe.Pointer(&b[0]), unsafe.Pointer(&c[0]), uintptr(ldc)*4, alpha, beta)
}

// newGemm is the blocked GEMM on the tile.
func (t asmTile) newGemm() *goGemm { return newGoGemm(t.mr, t.nr, t.kernel, t.rows, t.cols) }

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
	tile8x32.rows(in, x, ldx, panel, y, ldy, 1, beta)
}
