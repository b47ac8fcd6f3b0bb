//go:build goexperiment.simd && amd64

package kernels

import "simd/archsimd"

// AVX-512 micro-kernel geometry: 4 rows × 32 columns (two 16-float
// vectors) gives 8 vector accumulators, plus 2 B vectors and the A
// broadcasts. The Go compiler allocates 15 vector registers here, and
// larger tiles (6×32, 4×48, …) spill and run 30–60% slower.
const (
	simdMR = 4
	simdNR = 32
)

// newBestGoGemm returns the fastest pure-Go GEMM of this build: the
// archsimd AVX-512 kernel when the CPU has AVX-512, else the portable one.
func newBestGoGemm() (*goGemm, string) {
	if archsimd.X86.AVX512() {
		return newGoGemm(simdMR, simdNR, kernelAVX512), "cpu/go-simd"
	}
	return newGoGemm(portableMR, portableNR, kernelPortable), "cpu/go"
}

// kernelAVX512 is the 4×32 micro-kernel (see microKernel).
func kernelAVX512(kc int, a, b []float32, c []float32, ldc int, alpha, beta float32) {
	var c00, c01, c10, c11, c20, c21, c30, c31 archsimd.Float32x16
	a = a[:kc*simdMR]
	b = b[:kc*simdNR]
	for len(a) >= simdMR && len(b) >= simdNR {
		b0 := archsimd.LoadFloat32x16Slice(b[0:16])
		b1 := archsimd.LoadFloat32x16Slice(b[16:32])
		x := archsimd.BroadcastFloat32x16(a[0])
		c00 = b0.MulAdd(x, c00)
		c01 = b1.MulAdd(x, c01)
		x = archsimd.BroadcastFloat32x16(a[1])
		c10 = b0.MulAdd(x, c10)
		c11 = b1.MulAdd(x, c11)
		x = archsimd.BroadcastFloat32x16(a[2])
		c20 = b0.MulAdd(x, c20)
		c21 = b1.MulAdd(x, c21)
		x = archsimd.BroadcastFloat32x16(a[3])
		c30 = b0.MulAdd(x, c30)
		c31 = b1.MulAdd(x, c31)
		a = a[simdMR:]
		b = b[simdNR:]
	}
	va := archsimd.BroadcastFloat32x16(alpha)
	if beta == 0 {
		c00.Mul(va).StoreSlice(c[0:16])
		c01.Mul(va).StoreSlice(c[16:32])
		c = c[ldc:]
		c10.Mul(va).StoreSlice(c[0:16])
		c11.Mul(va).StoreSlice(c[16:32])
		c = c[ldc:]
		c20.Mul(va).StoreSlice(c[0:16])
		c21.Mul(va).StoreSlice(c[16:32])
		c = c[ldc:]
		c30.Mul(va).StoreSlice(c[0:16])
		c31.Mul(va).StoreSlice(c[16:32])
		return
	}
	vb := archsimd.BroadcastFloat32x16(beta)
	updateRow16(c[0:32], va, vb, c00, c01)
	c = c[ldc:]
	updateRow16(c[0:32], va, vb, c10, c11)
	c = c[ldc:]
	updateRow16(c[0:32], va, vb, c20, c21)
	c = c[ldc:]
	updateRow16(c[0:32], va, vb, c30, c31)
}

// updateRow16 sets c[0:32] = alpha·(v0, v1) + beta·c[0:32].
func updateRow16(c []float32, va, vb, v0, v1 archsimd.Float32x16) {
	c0 := archsimd.LoadFloat32x16Slice(c[0:16])
	c1 := archsimd.LoadFloat32x16Slice(c[16:32])
	v0.Mul(va).Add(c0.Mul(vb)).StoreSlice(c[0:16])
	v1.Mul(va).Add(c1.Mul(vb)).StoreSlice(c[16:32])
}
