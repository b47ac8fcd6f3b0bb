//go:build !(goexperiment.simd && amd64)

package kernels

// Without GOEXPERIMENT=simd there are no vector versions; every helper
// reports false and the caller runs the portable loop.

func expSliceSIMD(dst, src []float32) bool        { return false }
func dotSIMD(a, b []float32) (float32, bool)      { return 0, false }
func axpySIMD(alpha float32, x, y []float32) bool { return false }
func scaleSIMD(alpha float32, x []float32) bool   { return false }
func sumSIMD(x []float32) (float32, bool)         { return 0, false }
func maxSIMD(x []float32) (float32, bool)         { return 0, false }

func swigluSIMD(g, u, h, sig []float32) bool { return false }

func scaleMulSIMD(y, x, w []float32, alpha float32) bool { return false }
