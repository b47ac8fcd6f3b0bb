package kernels

import "sync"

// taskPool recycles Task structs so that dispatching a pass on the CPU
// backend allocates nothing in steady state while staying safe for
// concurrent callers. It is a plain free list rather than a sync.Pool,
// which drops its items at every garbage collection and would allocate
// again afterwards.
type taskPool[T any] struct {
	mu   sync.Mutex
	free []*T
}

func (tp *taskPool[T]) get() *T {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if n := len(tp.free); n > 0 {
		t := tp.free[n-1]
		tp.free = tp.free[:n-1]
		return t
	}
	return new(T)
}

func (tp *taskPool[T]) put(t *T) {
	var zero T
	*t = zero
	tp.mu.Lock()
	tp.free = append(tp.free, t)
	tp.mu.Unlock()
}

// cpuOps are the CPU backend's task pools, one per pass.
type cpuOps struct {
	rms    taskPool[rmsnormTask]
	rmsBwd taskPool[rmsnormBwdTask]
	rmsDW  taskPool[rmsnormDWTask]
	swi    taskPool[swigluTask]
	swiBwd taskPool[swigluBwdTask]
	rope   taskPool[ropeTask]
	xent   taskPool[xentTask]
	xeBwd  taskPool[xentBwdTask]
	attn   taskPool[attnTask]
}

// dispatch runs one pass on c's workers: task, whose Run covers [0, n),
// split into chunks of at least grain, through a Task struct recycled
// from tp so that nothing is allocated in steady state.
func dispatch[T any, P interface {
	*T
	Task
}](c *CPU, tp *taskPool[T], n, grain int, task T) {
	t := tp.get()
	*t = task
	c.Parallel(n, grain, P(t))
	tp.put(t)
}

// rowGrain sizes chunks so each holds at least ~32K multiply-adds, which
// keeps dispatch cost negligible.
func rowGrain(cols int) int { return max(1, 32768/max(cols, 1)) }

// RMSNorm implements Ops.
func (c *CPU) RMSNorm(x, w, y, rstd []float32, rows, cols int, eps float32) {
	dispatch(c, &c.ops.rms, rows, rowGrain(cols), rmsnormTask{x: x, y: y, w: w, rstd: rstd, c: cols, eps: eps})
}

// RMSNormBackward implements Ops.
func (c *CPU) RMSNormBackward(x, w, rstd, dy, dx, dw []float32, rows, cols int) {
	dispatch(c, &c.ops.rmsBwd, rows, rowGrain(cols), rmsnormBwdTask{x: x, dy: dy, dx: dx, w: w, rstd: rstd, c: cols})
	dispatch(c, &c.ops.rmsDW, cols, 16, rmsnormDWTask{x: x, dy: dy, dw: dw, rstd: rstd, c: cols, n: rows})
}

// SwiGLU implements Ops.
func (c *CPU) SwiGLU(g, u, h, sig []float32) {
	dispatch(c, &c.ops.swi, len(g), 4096, swigluTask{g: g, u: u, h: h, sig: sig})
}

// SwiGLUBackward implements Ops.
func (c *CPU) SwiGLUBackward(g, u, sig, dh, dg, du []float32) {
	dispatch(c, &c.ops.swiBwd, len(g), 4096, swigluBwdTask{g: g, u: u, sig: sig, dh: dh, dg: dg, du: du})
}

// Rope implements Ops.
func (c *CPU) Rope(x []float32, rows, heads, headDim int, pos []int32, cos, sin []float32, inverse bool) {
	dispatch(c, &c.ops.rope, rows, rowGrain(heads*headDim), ropeTask{x: x, heads: heads, headDim: headDim, pos: pos, cos: cos, sin: sin, inverse: inverse})
}

// RopeRows is the Rope pass on the calling goroutine, for callers that
// already run inside a Task (a decoding step's attention, per slot).
// It calls the task's Run directly, so the task stays on the stack.
func RopeRows(x []float32, rows, heads, headDim int, pos []int32, cos, sin []float32, inverse bool) {
	t := ropeTask{x: x, heads: heads, headDim: headDim, pos: pos, cos: cos, sin: sin, inverse: inverse}
	t.Run(0, rows)
}

// CrossEntropy implements Ops.
func (c *CPU) CrossEntropy(logits []float32, rows, vocab int, targets []int32, nll, lse []float32) {
	dispatch(c, &c.ops.xent, rows, rowGrain(vocab), xentTask{logits: logits, nll: nll, lse: lse, targets: targets, v: vocab})
}

// CrossEntropyBackward implements Ops.
func (c *CPU) CrossEntropyBackward(logits, lse, coef []float32, rows, vocab int, targets []int32, dlogits []float32) {
	dispatch(c, &c.ops.xeBwd, rows, rowGrain(vocab), xentBwdTask{logits: logits, dlogits: dlogits, lse: lse, coef: coef, targets: targets, v: vocab})
}

// Attention implements Ops: (row, head) pairs are spread over the workers,
// each running single-threaded GEMMs.
func (c *CPU) Attention(a *AttentionArgs) {
	dispatch(c, &c.ops.attn, a.B*a.Heads, 1, attnTask{a: a, gemm: c})
}

// AttentionBackward implements Ops: (row, kv head) pairs are spread over
// the workers, so the query heads sharing a kv head accumulate its
// gradients without races.
func (c *CPU) AttentionBackward(a *AttentionArgs) {
	dispatch(c, &c.ops.attn, a.B*a.KVHeads, 1, attnTask{a: a, gemm: c, bwd: true})
}
