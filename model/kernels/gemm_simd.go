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
	var acc [8]archsimd.Float32x16
	avx512Loop(kc, a, b, &acc)
	va := archsimd.BroadcastFloat32x16(alpha)
	if beta == 0 {
		for i := range simdMR {
			row := c[i*ldc : i*ldc+32]
			acc[2*i].Mul(va).StoreSlice(row[0:16])
			acc[2*i+1].Mul(va).StoreSlice(row[16:32])
		}
		return
	}
	vb := archsimd.BroadcastFloat32x16(beta)
	for i := range simdMR {
		updateRow16(c[i*ldc:i*ldc+32], va, vb, acc[2*i], acc[2*i+1])
	}
}

// avx512Loop accumulates the kc rank-1 updates of a 4×32 tile into acc
// (row i in acc[2i], acc[2i+1]). It is a separate function with no float
// arguments so that all 15 vector registers the compiler allocates are
// free for the loop: with alpha and beta live across it, an accumulator
// spills to the stack and the loop runs 4× slower.
//
//go:noinline
func avx512Loop(kc int, a, b []float32, acc *[8]archsimd.Float32x16) {
	var c00, c01, c10, c11, c20, c21, c30, c31 archsimd.Float32x16
	a = a[:kc*simdMR]
	b = b[:kc*simdNR]
	for len(a) >= simdMR && len(b) >= simdNR {
		b0 := archsimd.LoadFloat32x16Slice(b[0:16])
		b1 := archsimd.LoadFloat32x16Slice(b[16:32])
		x := archsimd.BroadcastFloat32x16(a[0])
		c00 = x.MulAdd(b0, c00)
		c01 = x.MulAdd(b1, c01)
		x = archsimd.BroadcastFloat32x16(a[1])
		c10 = x.MulAdd(b0, c10)
		c11 = x.MulAdd(b1, c11)
		x = archsimd.BroadcastFloat32x16(a[2])
		c20 = x.MulAdd(b0, c20)
		c21 = x.MulAdd(b1, c21)
		x = archsimd.BroadcastFloat32x16(a[3])
		c30 = x.MulAdd(b0, c30)
		c31 = x.MulAdd(b1, c31)
		a = a[simdMR:]
		b = b[simdNR:]
	}
	acc[0], acc[1], acc[2], acc[3] = c00, c01, c10, c11
	acc[4], acc[5], acc[6], acc[7] = c20, c21, c30, c31
}

// updateRow16 sets c[0:32] = alpha·(v0, v1) + beta·c[0:32].
func updateRow16(c []float32, va, vb, v0, v1 archsimd.Float32x16) {
	c0 := archsimd.LoadFloat32x16Slice(c[0:16])
	c1 := archsimd.LoadFloat32x16Slice(c[16:32])
	v0.Mul(va).Add(c0.Mul(vb)).StoreSlice(c[0:16])
	v1.Mul(va).Add(c1.Mul(vb)).StoreSlice(c[16:32])
}
