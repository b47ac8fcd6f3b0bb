//go:build !(goexperiment.simd && amd64)

package kernels

// matVecSIMD reports false: builds without GOEXPERIMENT=simd run the
// portable matrix-vector kernel.
func matVecSIMD(a *mvArgs, lo, hi int) bool { return false }

// matVecGoMaxRows is MatVecMaxRows for the portable kernel.
func matVecGoMaxRows() int { return 8 }

// attendScoresSIMD, attendExpSIMD and attendValuesSIMD report false: builds without
// GOEXPERIMENT=simd run the scalar loops of attendScores and
// attendValues.
func attendScoresSIMD(s []float32, lds int, q, kt []float32, ldk, npos, w, G, hd int) bool {
	return false
}

func attendValuesSIMD(out, p []float32, ldp int, v []float32, ldv, npos, G, hd int) bool {
	return false
}

func attendExpSIMD(s []float32, lds, npos, w, G int, sums []float32) bool { return false }

// packedKernel reports false: builds without GOEXPERIMENT=simd have no
// packed-product kernel (see CanPack).
func packedKernel() (mr, nr int, rows rowsKernel, ok bool) { return 0, 0, nil, false }

// matVecBF16SIMD reports false: builds without GOEXPERIMENT=simd run the
// portable BF16 matrix-vector kernel.
func matVecBF16SIMD(a *mvArgs, lo, hi int) bool { return false }

// BF16Fast reports false: builds without GOEXPERIMENT=simd have only the
// portable BF16 kernel, bound by its scalar widening and slower than the
// F32 kernels (and OpenBLAS); see the SIMD build's BF16Fast.
func BF16Fast() bool { return false }
