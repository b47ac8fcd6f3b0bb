//go:build goexperiment.simd && amd64

package kernels

import "simd/archsimd"

// extraTestBackends adds the SIMD kernels this CPU can run but NewCPUGo
// does not pick (the AVX2 one on an AVX-512 machine), so every kernel of
// the build is tested.
func extraTestBackends() []testBackend {
	var out []testBackend
	if archsimd.X86.AVX2() && archsimd.X86.FMA() {
		out = append(out, testBackend{"avx2(2)", func() *CPU {
			g := newGoGemm(avx2MR, avx2NR, kernelAVX2)
			return newCPU(2, g.gemm, "cpu/go-simd-avx2")
		}})
	}
	return out
}
