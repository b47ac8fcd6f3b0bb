//go:build !(goexperiment.simd && amd64)

package kernels

// bf16SIMDTiers is empty: builds without GOEXPERIMENT=simd have only the
// portable BF16 kernel.
func bf16SIMDTiers() []bf16Tier { return nil }
