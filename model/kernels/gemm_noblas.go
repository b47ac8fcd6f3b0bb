//go:build !(cgo && openblas)

package kernels

// blasGemm reports that this build has no BLAS library; NewCPU then uses
// the pure-Go GEMM. Build with -tags openblas (and cgo) to use OpenBLAS.
func blasGemm() (gemmFunc, string, bool) { return nil, "", false }

// blasMatVec reports that this build has no BLAS matrix-vector kernel.
func blasMatVec() (matVecFunc, bool) { return nil, false }
