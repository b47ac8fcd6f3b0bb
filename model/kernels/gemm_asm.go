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

// goGemmBeatsBLAS reports whether NewCPU should prefer the pure-Go GEMM
// to OpenBLAS: on CPUs with AVX-512, where the 8×32 assembly tile runs.
// On AVX2-only CPUs OpenBLAS keeps the job (its Haswell kernels run a
// 2048³ sgemm at about 105 GFLOP/s per core here, the 6×16 tile alone
// 111, so there is no clear win to justify the switch).
func goGemmBeatsBLAS() bool { return archsimd.X86.AVX512() }

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

// packedKernel is the tile Packed uses on this CPU: the AVX-512 one, or
// the AVX2 one; ok is false on CPUs with neither.
func packedKernel() (mr, nr int, rows rowsKernel, ok bool) {
	switch {
	case archsimd.X86.AVX512():
		return tile8x32.mr, tile8x32.nr, rows8x32, true
	case archsimd.X86.AVX2() && archsimd.X86.FMA():
		return tile6x16.mr, tile6x16.nr, rows6x16, true
	}
	return 0, 0, nil, false
}

// rows8x32 and rows6x16 are the tiles' rows kernels as plain functions: a
// method value (tile8x32.rows) is a closure allocated where it is taken.
func rows8x32(kc int, a []float32, lda int, b []float32, c []float32, ldc int, alpha, beta float32) {
	tile8x32.rows(kc, a, lda, b, c, ldc, alpha, beta)
}

func rows6x16(kc int, a []float32, lda int, b []float32, c []float32, ldc int, alpha, beta float32) {
	tile6x16.rows(kc, a, lda, b, c, ldc, alpha, beta)
}
