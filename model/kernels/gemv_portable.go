//go:build !(goexperiment.simd && amd64)

package kernels

// matVecSIMD reports false: builds without GOEXPERIMENT=simd run the
// portable matrix-vector kernel.
func matVecSIMD(a *mvArgs, lo, hi int) bool { return false }

// matVecGoMaxRows is MatVecMaxRows for the portable kernel.
func matVecGoMaxRows() int { return 8 }

// weightedRowsSIMD reports false: builds without GOEXPERIMENT=simd use
// the scalar loop of weightedRows.
func weightedRowsSIMD(out, p []float32, ldp int, v []float32, ldv, rows, npos, hd int) bool {
	return false
}
