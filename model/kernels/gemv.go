package kernels

import "fmt"

// MatVecMaxRows is the most rows of x for which MatVec on be is faster
// than be.Gemm of the same product, measured by BenchmarkMatVec on the
// decoding shapes (2 cores, AVX-512): the AVX-512 kernel beats the packed
// pure-Go GEMM, which packs all of W per call, up to 64 rows and more
// (2.5–4.5× at 16 to 64 rows); the portable kernel up to 8 (equal at
// 16); with OpenBLAS, cblas_sgemv beats cblas_sgemm 4× for one row, while
// sgemm wins from two.
func MatVecMaxRows(be Backend) int {
	if c, ok := be.(*CPU); ok {
		return c.matVecMax
	}
	return matVecGoMaxRows()
}

// matVecBlock is the number of weight rows a kernel call handles together:
// each block of W is read from memory once and stays in L1 while it is
// dotted with every row of x.
const matVecBlock = 4

// MatVec computes y = x·Wᵀ (or y += x·Wᵀ) for a few rows of x, the
// products of decoding: x is n×in, W is out×in (a weight matrix as stored,
// each output a dot product of two contiguous rows) and y is n×out, all
// row-major and dense. The work is split by output rows over the
// backend's workers, so W, which dominates the memory traffic, is read
// once in all. A MatVec holds the reusable Task, so steady-state calls
// allocate nothing; keep one per goroutine (it is not safe for concurrent
// use). The zero value is ready to use.
type MatVec struct {
	t  matVecTask
	pt packedTask
}

// Run computes y = x·Wᵀ, or y += x·Wᵀ when accumulate, on be's workers.
// It is meant for small n (up to MatVecMaxRows) but correct for any.
func (mv *MatVec) Run(be Backend, y, x, w []float32, n, in, out int, accumulate bool) {
	if n < 0 || in < 0 || out < 0 {
		panic(fmt.Sprintf("kernels: MatVec: negative size n=%d in=%d out=%d", n, in, out))
	}
	if len(x) < n*in || len(w) < out*in || len(y) < n*out {
		panic(fmt.Sprintf("kernels: MatVec: n=%d in=%d out=%d needs x, w, y of %d, %d, %d elements; have %d, %d, %d",
			n, in, out, n*in, out*in, n*out, len(x), len(w), len(y)))
	}
	if n == 0 || out == 0 {
		return
	}
	t := &mv.t
	t.mvArgs = mvArgs{y: y[:n*out], x: x[:n*in], w: w[:out*in], ldy: out, ldx: in, ldw: in, n: n, in: in, acc: accumulate}
	mv.dispatch(be, matVecKernelOf(be), out, in, 4)
}

// dispatch runs mv.t's product, its arguments set, with kernel over
// blocks of matVecBlock output rows on be's workers, wsize bytes per
// weight, and drops the task's references to the caller's slices.
func (mv *MatVec) dispatch(be Backend, kernel matVecFunc, out, in, wsize int) {
	t := &mv.t
	t.out = out
	t.kernel = kernel
	blocks := (out + matVecBlock - 1) / matVecBlock
	// At least ~32 KB of weights per chunk, so that dispatch stays small
	// next to the memory traffic.
	grain := max(1, (32<<10)/(matVecBlock*wsize*max(in, 1)))
	be.Parallel(blocks, grain, t)
	t.y, t.x, t.w, t.wh = nil, nil, nil, nil
}

// mvArgs describe y = x·Wᵀ (+ y when acc) over strided rows: x is n rows
// of in values ldx apart, W has rows of in values ldw apart, and output r
// of row j is y[j*ldy+r]. Strides let the kernels read a head's slice of a
// KV cache in place (see AttendCached).
type mvArgs struct {
	y, x, w       []float32
	wh            []uint16 // W as BF16 (RunBF16), in place of w
	ldy, ldx, ldw int
	n, in         int
	acc           bool
}

// matVecFunc computes outputs [lo, hi) of a's product on the calling
// goroutine.
type matVecFunc func(a *mvArgs, lo, hi int)

// matVecKernelOf is the backend's single-threaded matrix-vector kernel:
// the CPU backend's own (OpenBLAS in openblas builds where it is faster),
// otherwise the best pure-Go kernel of the build.
func matVecKernelOf(be Backend) matVecFunc {
	if c, ok := be.(*CPU); ok && c.matVec != nil {
		return c.matVec
	}
	return matVecGo
}

// matVecTask runs MatVec over blocks of matVecBlock output rows.
type matVecTask struct {
	mvArgs
	out    int
	kernel matVecFunc
}

// Run implements Task.
func (t *matVecTask) Run(lo, hi int) {
	t.kernel(&t.mvArgs, lo*matVecBlock, min(hi*matVecBlock, t.out))
}

// matVecGo is the pure-Go kernel: the SIMD one where the build and CPU
// have it, else the portable one.
func matVecGo(a *mvArgs, lo, hi int) {
	if matVecSIMD(a, lo, hi) {
		return
	}
	matVecPortable(a, lo, hi)
}

// matVecPortable is the scalar kernel: four weight rows at a time, dotted
// with two rows of x at a time (eight independent sums), then one.
func matVecPortable(a *mvArgs, lo, hi int) {
	y, x, w, n, in, acc := a.y, a.x, a.w, a.n, a.in, a.acc
	ldy, ldx, ldw := a.ldy, a.ldx, a.ldw
	r := lo
	for ; r+4 <= hi; r += 4 {
		w0 := w[r*ldw : r*ldw+in]
		w1 := w[(r+1)*ldw : (r+1)*ldw+in]
		w2 := w[(r+2)*ldw : (r+2)*ldw+in]
		w3 := w[(r+3)*ldw : (r+3)*ldw+in]
		j := 0
		for ; j+2 <= n; j += 2 {
			xa := x[j*ldx : j*ldx+in]
			xb := x[(j+1)*ldx : (j+1)*ldx+in]
			var a0, a1, a2, a3, b0, b1, b2, b3 float32
			for i := range xa {
				u, v := xa[i], xb[i]
				p0, p1, p2, p3 := w0[i], w1[i], w2[i], w3[i]
				a0 += u * p0
				a1 += u * p1
				a2 += u * p2
				a3 += u * p3
				b0 += v * p0
				b1 += v * p1
				b2 += v * p2
				b3 += v * p3
			}
			store4(y[j*ldy+r:j*ldy+r+4], a0, a1, a2, a3, acc)
			store4(y[(j+1)*ldy+r:(j+1)*ldy+r+4], b0, b1, b2, b3, acc)
		}
		if j < n {
			xa := x[j*ldx : j*ldx+in]
			var a0, a1, a2, a3 float32
			for i := range xa {
				u := xa[i]
				a0 += u * w0[i]
				a1 += u * w1[i]
				a2 += u * w2[i]
				a3 += u * w3[i]
			}
			store4(y[j*ldy+r:j*ldy+r+4], a0, a1, a2, a3, acc)
		}
	}
	for ; r < hi; r++ {
		wr := w[r*ldw : r*ldw+in]
		for j := range n {
			s := dotGo(x[j*ldx:j*ldx+in], wr)
			if acc {
				s += y[j*ldy+r]
			}
			y[j*ldy+r] = s
		}
	}
}

// store4 writes (or with acc adds) four sums to y[0:4].
func store4(y []float32, a0, a1, a2, a3 float32, acc bool) {
	y = y[:4]
	if acc {
		a0 += y[0]
		a1 += y[1]
		a2 += y[2]
		a3 += y[3]
	}
	y[0], y[1], y[2], y[3] = a0, a1, a2, a3
}
