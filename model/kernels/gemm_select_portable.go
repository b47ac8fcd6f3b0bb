//go:build !(goexperiment.simd && amd64)

package kernels

// newBestGoGemm returns the fastest pure-Go GEMM of this build: the
// portable scalar kernel (build with GOEXPERIMENT=simd for the SIMD one).
func newBestGoGemm() (*goGemm, string) {
	return newGoGemm(portableMR, portableNR, kernelPortable, nil, nil), "cpu/go"
}

// goGemmBeatsBLAS reports that the portable kernel never beats OpenBLAS.
func goGemmBeatsBLAS() bool { return false }
