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

// Serial is a single-goroutine Backend built on RefGemm. It exists for
// tests that want an independent, obviously-correct backend.
type Serial struct{}

// Gemm implements Backend.
func (Serial) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	RefGemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// GemmSerial implements Backend.
func (Serial) GemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	RefGemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Parallel implements Backend by running t over the whole range at once.
func (Serial) Parallel(n, grain int, t Task) {
	if n > 0 {
		t.Run(0, n)
	}
}

// Workers implements Backend.
func (Serial) Workers() int { return 1 }

// Name implements Backend.
func (Serial) Name() string { return "serial/reference" }
