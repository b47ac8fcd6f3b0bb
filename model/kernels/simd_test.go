//go:build goexperiment.simd && amd64

package kernels

import (
	"simd/archsimd"
	"testing"
	"unsafe"

	"github.com/herdml/herd/internal/benchutil"
)

// extraTestBackends adds the SIMD kernels this CPU can run but NewCPUGo
// does not pick (the AVX2 one on an AVX-512 machine), so every kernel of
// the build is tested.
func extraTestBackends() []testBackend {
	var out []testBackend
	if archsimd.X86.AVX2() && archsimd.X86.FMA() {
		out = append(out, testBackend{"avx2(2)", func() *CPU {
			g := newGoGemm(avx2MR, avx2NR, kernelAVX2, rowsAVX2, colsAVX2)
			c := newCPU(2, g.gemm, "cpu/go-simd-avx2")
			c.par = &parGemm{g: g}
			return c
		}})
	}
	return out
}

// BenchmarkMicroKernel measures the GEMM micro-kernels' inner loops alone
// on packed panels of kc = 256 steps that stay in L1, in GFLOP per
// CPU-second (steadier than wall time on a shared machine).
func BenchmarkMicroKernel(b *testing.B) {
	const kc, ldRows = 256, 768
	a, bp := make([]float32, kc*simdMR), make([]float32, kc*simdNR)
	for i := range a {
		a[i] = float32(i%7) * 0.01
	}
	for i := range bp {
		bp[i] = float32(i%5) * 0.01
	}
	run := func(name string, flops float64, f func()) {
		b.Run(name, func(b *testing.B) {
			c0 := benchutil.CPUSeconds()
			for b.Loop() {
				f()
			}
			b.ReportMetric(flops*float64(b.N)/(benchutil.CPUSeconds()-c0)/1e9, "GFLOP/cpu-s")
		})
	}
	if archsimd.X86.AVX512() {
		var acc [8]archsimd.Float32x16
		run("avx512_4x32", 2*kc*simdMR*simdNR, func() { avx512Loop(kc, a, bp, &acc) })
		// A read in place from four rows of a row-major matrix.
		rows := make([]float32, 4*ldRows)
		run("avx512_4x32_rows", 2*kc*simdMR*simdNR, func() {
			avx512RowsP(kc, unsafe.Pointer(&rows[0]), ldRows*4, unsafe.Pointer(&bp[0]), &acc)
		})
		// A transposed, read in place: the four values of a step
		// adjacent, the steps a row of a [kc×ldRows] matrix apart.
		cols := make([]float32, kc*ldRows)
		run("avx512_4x32_cols", 2*kc*simdMR*simdNR, func() {
			avx512LoopP(kc, unsafe.Pointer(&cols[0]), ldRows*4, unsafe.Pointer(&bp[0]), &acc)
		})
	}
	if archsimd.X86.AVX2() && archsimd.X86.FMA() {
		var acc [8]archsimd.Float32x8
		run("avx2_4x16", 2*kc*avx2MR*avx2NR, func() { avx2Loop(kc, a, bp, &acc) })
	}
}
