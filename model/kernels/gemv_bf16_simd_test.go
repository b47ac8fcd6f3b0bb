//go:build goexperiment.simd && amd64

package kernels

import "simd/archsimd"

// bf16SIMDTiers lists the AVX-512 and AVX2 BF16 kernels with their F32
// twins, each called directly so that an AVX-512 machine tests both.
func bf16SIMDTiers() []bf16Tier {
	return []bf16Tier{
		{name: "avx512", bf16: func(a *mvArgs, lo, hi int) { matVecBF16Lanes(a, lo, hi, 16) }, f32: matVecSIMD16, minIn: 16, disabled: !archsimd.X86.AVX512()},
		{name: "avx2", bf16: func(a *mvArgs, lo, hi int) { matVecBF16Lanes(a, lo, hi, 8) }, f32: matVecAVX2, minIn: 8, disabled: !hasAVX2()},
	}
}

// matVecSIMD16 is matVecSIMD where it runs the AVX-512 kernel.
func matVecSIMD16(a *mvArgs, lo, hi int) { matVecSIMD(a, lo, hi) }
