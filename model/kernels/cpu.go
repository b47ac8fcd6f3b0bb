package kernels

import (
	"fmt"
	"sync"
)

// gemmFunc is a single-threaded SGEMM with the Backend.Gemm signature.
type gemmFunc func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

// CPU is the fast CPU Backend: a persistent worker pool for Parallel and a
// blocked SGEMM (a packed pure-Go kernel, or OpenBLAS with one BLAS thread
// per call; see NewCPU for which) that Gemm runs on every
// worker: OpenBLAS on blocks of C, the pure-Go kernel on blocks of C
// against panels of op(B) that the workers pack once, together (parGemm).
//
// The GEMM depends on the build:
//
//	GOEXPERIMENT=simd go build              "cpu/go-simd"    (assembly tile, AVX-512;
//	                                         "cpu/go-simd-avx2" on AVX2-only CPUs)
//	go build -tags openblas                 "cpu/openblas"   (cgo + libopenblas-dev; with
//	                                         GOEXPERIMENT=simd too only on CPUs without AVX-512)
//	go build                                "cpu/go"         (portable scalar Go)
//
// NewCPUGo always uses the pure-Go kernel of the build, NewCPUBLAS OpenBLAS. ExpSlice and the
// vector helpers are vectorized only under GOEXPERIMENT=simd.
//
// A CPU is safe for use by several goroutines. Parallel and Gemm run one
// job at a time on the pool; a call made while another is running (from a
// second goroutine, or from inside a Task) runs on the calling goroutine
// alone, so nesting never deadlocks. Call Close when done with it.
type CPU struct {
	pool   *pool
	serial gemmFunc
	name   string
	// matVec is MatVec's single-threaded kernel and matVecMax the most
	// rows for which it beats Gemm (MatVecMaxRows).
	matVec    matVecFunc
	matVecMax int

	// gemm is the reusable Task for Gemm; guarded by pool.mu.
	gemm gemmTask
	// par, when set (the pure-Go GEMM), runs a multi-threaded Gemm with
	// op(B) packed once for all workers; guarded by pool.mu.
	par *parGemm
	ops cpuOps

	closeOnce sync.Once
}

// NewCPU returns a CPU backend with the given number of workers (the
// calling goroutine counts as one); workers <= 0 means
// runtime.GOMAXPROCS(0). It uses the fastest GEMM of the build on this
// CPU: the pure-Go assembly tile on AVX-512 CPUs in GOEXPERIMENT=simd
// builds, which beats OpenBLAS even on OpenBLAS's own AVX-512 kernels
// (training step of config M 282–296 GFLOP/s against 218–265 on a quiet
// 2-core AVX-512 machine, and 152–157 with OPENBLAS_CORETYPE=Haswell; see
// BenchmarkTrainStepM in package model); otherwise OpenBLAS when built
// with the openblas tag, and the best pure-Go GEMM when not.
func NewCPU(workers int) *CPU {
	if !goGemmBeatsBLAS() {
		if c, ok := NewCPUBLAS(workers); ok {
			return c
		}
	}
	return NewCPUGo(workers)
}

// NewCPUBLAS returns a CPU backend on OpenBLAS (one BLAS thread per worker)
// whatever NewCPU would choose, and false in builds without the openblas
// tag.
func NewCPUBLAS(workers int) (*CPU, bool) {
	f, name, ok := blasGemm()
	if !ok {
		return nil, false
	}
	c := newCPU(workers, f, name)
	if mv, ok := blasMatVec(); ok {
		c.matVec, c.matVecMax = mv, 1
	}
	return c, true
}

// NewCPUGo returns a CPU backend that uses the pure-Go GEMM even in
// openblas builds, so the two can be compared. With GOEXPERIMENT=simd on a
// CPU with AVX-512 the micro-kernel uses simd/archsimd ("cpu/go-simd");
// otherwise it is portable scalar Go ("cpu/go").
func NewCPUGo(workers int) *CPU {
	g, name := newBestGoGemm()
	c := newCPU(workers, g.gemm, name)
	c.par = &parGemm{g: g}
	return c
}

// newCPUPortable returns a CPU backend on the portable scalar kernel, so
// tests and benchmarks can reach it in SIMD builds too.
func newCPUPortable(workers int) *CPU {
	g := newGoGemm(portableMR, portableNR, kernelPortable, nil, nil)
	c := newCPU(workers, g.gemm, "cpu/go")
	c.par = &parGemm{g: g}
	return c
}

func newCPU(workers int, f gemmFunc, name string) *CPU {
	c := &CPU{pool: newPool(workers), serial: f, name: name, matVec: matVecGo, matVecMax: matVecGoMaxRows()}
	c.gemm.cpu = c
	return c
}

// Close stops the worker goroutines. Afterwards the backend still works,
// running everything on the calling goroutine.
func (c *CPU) Close() {
	c.closeOnce.Do(c.pool.close)
}

// Workers implements Backend.
func (c *CPU) Workers() int { return c.pool.workers }

// Name implements Backend.
func (c *CPU) Name() string { return c.name }

// Parallel implements Backend. Chunks are handed out through an atomic
// counter, so uneven chunks balance across workers. It allocates nothing.
// A call made while another Parallel or Gemm of this backend is running
// (including from inside a Task) runs all of its chunks on the calling
// goroutine. A panic in a Task crashes the program.
func (c *CPU) Parallel(n, grain int, t Task) {
	if n <= 0 {
		return
	}
	c.pool.parallel(n, chunkSize(n, grain, c.pool.workers), t)
}

// GemmSerial implements Backend.
func (c *CPU) GemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, cm []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, cm, ldc)
	c.serial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cm, ldc)
}

// Gemm implements Backend: C is cut into blocks of whole rows (and, when
// there are few rows, columns), and each block is one single-threaded
// SGEMM run on whichever worker claims it.
func (c *CPU) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, cm []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, cm, ldc)
	if m == 0 || n == 0 {
		return
	}
	p := c.pool
	mb, nb := gemmBlocks(m, n, k, p.workers)
	if (mb >= m && nb >= n) || p.workers == 1 || p.closed.Load() || !p.mu.TryLock() {
		c.serial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cm, ldc)
		return
	}
	if c.par != nil && k > 0 && alpha != 0 {
		c.par.run(p, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cm, ldc)
		p.mu.Unlock()
		return
	}
	g := &c.gemm
	g.transA, g.transB = transA, transB
	g.m, g.n, g.k = m, n, k
	g.alpha, g.beta = alpha, beta
	g.a, g.lda, g.b, g.ldb, g.c, g.ldc = a, lda, b, ldb, cm, ldc
	g.mb, g.nb = mb, nb
	g.colBlocks = (n + nb - 1) / nb
	blocks := (m + mb - 1) / mb * g.colBlocks
	p.runLocked(blocks, 1, blocks, g)
	g.a, g.b, g.c = nil, nil, nil
	p.mu.Unlock()
}

// gemmTask runs the blocks [lo, hi) of a Gemm, numbered row-major over the
// grid of mb×nb blocks of C.
type gemmTask struct {
	cpu            *CPU
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
	mb, nb         int
	colBlocks      int
}

// Run implements Task.
func (g *gemmTask) Run(lo, hi int) {
	for blk := lo; blk < hi; blk++ {
		i0 := blk / g.colBlocks * g.mb
		j0 := blk % g.colBlocks * g.nb
		mm := min(g.mb, g.m-i0)
		nn := min(g.nb, g.n-j0)
		var a, b []float32
		if g.transA {
			a = g.a[i0:]
		} else {
			a = g.a[i0*g.lda:]
		}
		if g.transB {
			b = g.b[j0*g.ldb:]
		} else {
			b = g.b[j0:]
		}
		g.cpu.serial(g.transA, g.transB, mm, nn, g.k, g.alpha, a, g.lda, b, g.ldb, g.beta, g.c[i0*g.ldc+j0:], g.ldc)
	}
}

// gemmBlocks picks the block shape for a multi-threaded Gemm: about four
// blocks per worker for load balance, rows first (a row block reads B
// whole and A and C once), never so small that per-block packing and call
// overhead dominate. mb >= m and nb >= n means "do not split".
func gemmBlocks(m, n, k, workers int) (mb, nb int) {
	const (
		minFlops = 1 << 21 // below ~2 MFLOP a split costs more than it saves
		rowAlign = 16
		colAlign = 64
	)
	if workers <= 1 || 2*m*n*k < minFlops {
		return m, n
	}
	target := 4 * workers
	mb = max(rowAlign, roundUp((m+target-1)/target, rowAlign))
	rowBlocks := (m + mb - 1) / mb
	nb = n
	if rowBlocks < target {
		want := (target + rowBlocks - 1) / rowBlocks
		nb = max(colAlign, roundUp((n+want-1)/want, colAlign))
	}
	return mb, nb
}

// checkGemm panics with a description of the problem when the GEMM
// arguments are inconsistent: negative sizes, a leading dimension smaller
// than a row, or a slice too short for the matrix it holds. Out-of-range
// arguments would otherwise corrupt memory in the BLAS path.
func checkGemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("kernels: Gemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	ar, ac := storedShape(transA, m, k)
	br, bc := storedShape(transB, k, n)
	checkMatrix("A", ar, ac, a, lda)
	checkMatrix("B", br, bc, b, ldb)
	checkMatrix("C", m, n, c, ldc)
}

// storedShape returns the rows and columns of a matrix as stored, given
// the shape of op(X) and whether op transposes.
func storedShape(trans bool, rows, cols int) (int, int) {
	if trans {
		return cols, rows
	}
	return rows, cols
}

func checkMatrix(name string, rows, cols int, s []float32, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("kernels: Gemm: ld%s=%d is less than the %d columns of %s as stored", name, ld, cols, name))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(s) < need {
		panic(fmt.Sprintf("kernels: Gemm: %s is %d×%d with stride %d and needs %d elements, has %d", name, rows, cols, ld, need, len(s)))
	}
}
