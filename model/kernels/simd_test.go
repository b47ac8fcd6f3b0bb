//go:build goexperiment.simd && amd64

package kernels

import (
	"simd/archsimd"
	"testing"

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
	a, bp := make([]float32, kc*avx2MR), make([]float32, kc*asmNR)
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
		// The assembly 8×32 tile, storing to a C that stays in L1.
		a8, c := make([]float32, kc*asmMR), make([]float32, asmMR*asmNR)
		for i := range a8 {
			a8[i] = float32(i%7) * 0.01
		}
		run("asm_8x32", 2*kc*asmMR*asmNR, func() { kernelAsm(kc, a8, bp, c, asmNR, 1, 0) })
		rows := make([]float32, asmMR*ldRows)
		run("asm_8x32_rows", 2*kc*asmMR*asmNR, func() { rowsAsm(kc, rows, ldRows, bp, c, asmNR, 1, 0) })
		cols := make([]float32, kc*ldRows)
		run("asm_8x32_cols", 2*kc*asmMR*asmNR, func() { colsAsm(kc, cols, ldRows, bp, c, asmNR, 1, 0) })
	}
	if archsimd.X86.AVX2() && archsimd.X86.FMA() {
		var acc [8]archsimd.Float32x8
		run("avx2_4x16", 2*kc*avx2MR*avx2NR, func() { avx2Loop(kc, a, bp, &acc) })
	}
}
