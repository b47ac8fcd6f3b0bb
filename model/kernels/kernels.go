// Package kernels is herd's compute seam: a row-major float32 GEMM, the
// fused passes of a Llama layer (RMSNorm, RoPE, attention, SwiGLU,
// softmax cross-entropy), a parallel-for over a persistent worker pool, and
// fast float32 transcendental functions. Everything the model computes goes through a
// Backend, so a GPU implementation can be added later behind the same
// interface without touching the model code.
package kernels

// Task is a unit of parallel work over an index range. Callers keep Task
// values (pointers to small structs) alive across calls so that dispatching
// work allocates nothing in steady state.
type Task interface {
	// Run processes indices [lo, hi).
	Run(lo, hi int)
}

// Backend is the compute seam used by the model.
//
// Matrices are row-major. op(A) is A or Aᵀ as selected by transA; op(A) is
// m×k, op(B) is k×n and C is m×n. lda, ldb and ldc are the row strides
// (leading dimensions) of the matrices as stored.
type Backend interface {
	// Gemm computes C = alpha·op(A)·op(B) + beta·C, splitting the work
	// across the backend's workers. Inside a Task run by Parallel use
	// GemmSerial (a Gemm made there runs on the calling goroutine only in
	// the CPU backend, and may deadlock in others).
	Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	// GemmSerial is Gemm on the calling goroutine only. It is safe to call
	// concurrently from several Tasks on disjoint outputs.
	GemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	// Parallel runs t over [0, n), split into contiguous chunks of at least
	// grain indices, on all workers (the caller included), and returns when
	// every chunk is done.
	Parallel(n, grain int, t Task)
	// Workers is the number of goroutines Parallel uses.
	Workers() int
	// Name describes the backend, e.g. "cpu/openblas" or "cpu/go".
	Name() string
	// Ops are the fused non-GEMM passes of a layer.
	Ops
}
