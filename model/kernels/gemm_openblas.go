//go:build cgo && openblas

package kernels

/*
#cgo pkg-config: openblas
#include <cblas.h>
*/
import "C"

import "unsafe"

// OpenBLAS runs each call on one thread: the Go pool splits the work, and
// nested BLAS threads on top of the pool's goroutines only oversubscribe
// the cores. Doing it at package initialization happens before any call.
func init() {
	C.openblas_set_num_threads(1)
}

// blasGemm returns the OpenBLAS-backed single-threaded SGEMM.
func blasGemm() (gemmFunc, string, bool) {
	return openblasGemm, "cpu/openblas", true
}

// openblasGemm calls cblas_sgemm on the calling thread. Arguments must
// already be validated.
func openblasGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		// BLAS implementations differ on whether they read C when beta is
		// 0 in this case; scale it ourselves.
		scaleC(m, n, beta, c, ldc)
		return
	}
	var ta, tb C.enum_CBLAS_TRANSPOSE = C.CblasNoTrans, C.CblasNoTrans
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

// blasMatVec returns the OpenBLAS matrix-vector kernel for MatVec.
func blasMatVec() (matVecFunc, bool) { return openblasMatVec, true }

// openblasMatVec computes outputs [lo, hi) of a's product with
// cblas_sgemv for one row of x and cblas_sgemm for several.
func openblasMatVec(a *mvArgs, lo, hi int) {
	rows := hi - lo
	if rows <= 0 || a.n == 0 {
		return
	}
	var beta float32
	if a.acc {
		beta = 1
	}
	if a.in == 0 {
		for j := range a.n {
			scaleC(1, rows, beta, a.y[j*a.ldy+lo:], a.ldy)
		}
		return
	}
	if a.n == 1 {
		C.cblas_sgemv(C.CblasRowMajor, C.CblasNoTrans, C.blasint(rows), C.blasint(a.in),
			1, (*C.float)(unsafe.Pointer(&a.w[lo*a.ldw])), C.blasint(a.ldw),
			(*C.float)(unsafe.Pointer(&a.x[0])), 1,
			C.float(beta), (*C.float)(unsafe.Pointer(&a.y[lo])), 1)
		return
	}
	openblasGemm(false, true, a.n, rows, a.in, 1, a.x, a.ldx, a.w[lo*a.ldw:], a.ldw, beta, a.y[lo:], a.ldy)
}
