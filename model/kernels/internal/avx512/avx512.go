//go:build goexperiment.simd && amd64

// Package avx512 holds herd's AVX-512 (and AVX2) kernels written in Go
// assembly,
// where Go's compiler, which allocates 15 vector registers to archsimd
// code, cannot keep a large register tile. It is a package of its own
// because a package that uses cgo (the kernels, in openblas builds) may
// not contain Go assembly. The caller checks the CPU (AVX-512F for
// Gemm8x32, AVX2 and FMA for Gemm6x16) and the bounds.
package avx512

import "unsafe"

// Gemm8x32 computes an 8×32 tile of C = alpha·A·B + beta·C over kc ≥ 0
// steps, C not read when beta is ±0, with sixteen accumulators (20 of the
// 32 AVX-512 registers). B is a packed panel of kc steps of 32 floats;
// element i of step p of A is at a + p·ak + i·ar bytes, so one kernel
// reads a packed panel (ak = 32, ar = 4), the rows of a row-major A in
// place (ak = 4, ar = 4·lda) and a transposed A in place (ak = 4·lda,
// ar = 4). Rows of C are ldc bytes apart.
//
//go:noescape
func Gemm8x32(kc int, a unsafe.Pointer, ak, ar uintptr, b, c unsafe.Pointer, ldc uintptr, alpha, beta float32)

// Gemm6x16 is Gemm8x32 for CPUs with AVX2 and FMA but not AVX-512: a 6×16
// tile in twelve accumulators, the 16 YMM registers all in use. B is a
// packed panel of kc steps of 16 floats.
//
//go:noescape
func Gemm6x16(kc int, a unsafe.Pointer, ak, ar uintptr, b, c unsafe.Pointer, ldc uintptr, alpha, beta float32)
