package kernels

// RefGemm is a plain triple-loop GEMM with float64 accumulation. It is the
// oracle the fast backends are tested against; it is slow on purpose.
func RefGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			ci := &c[i*ldc+j]
			if beta == 0 {
				*ci = float32(float64(alpha) * s)
			} else {
				*ci = float32(float64(alpha)*s + float64(beta)*float64(*ci))
			}
		}
	}
}

// NewSerial returns the reference backend for tests: the CPU backend with
// one worker, so every pass runs on the calling goroutine, and RefGemm,
// the float64-accumulating triple loop, as its GEMM, so it shares no GEMM
// code with the fast backends it checks. It has no goroutines to stop;
// Close is optional.
func NewSerial() *CPU { return newCPU(1, RefGemm, "serial/reference") }
