//go:build !(goexperiment.simd && amd64)

package kernels

// extraTestBackends lists kernels beyond those of testBackends; builds
// without GOEXPERIMENT=simd have none.
func extraTestBackends() []testBackend { return nil }

// extraPackers is empty: these builds have no packed-product kernel.
func extraPackers() []packer { return nil }
