//go:build !(goexperiment.simd && amd64)

package kernels

// matVecSIMD reports false: builds without GOEXPERIMENT=simd run the
// portable matrix-vector kernel.
func matVecSIMD(y, x, w []float32, n, in, out, lo, hi int, acc bool) bool { return false }

// matVecGoMaxRows is MatVecMaxRows for the portable kernel.
func matVecGoMaxRows() int { return 8 }
