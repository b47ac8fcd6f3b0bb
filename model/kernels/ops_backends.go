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

// rowGrain sizes chunks so each holds at least ~32K multiply-adds, which
// keeps dispatch cost negligible.
func rowGrain(cols int) int { return max(1, 32768/max(cols, 1)) }

// RMSNorm implements Ops.
func (c *CPU) RMSNorm(x, w, y, rstd []float32, rows, cols int, eps float32) {
	t := c.ops.rms.get()
	*t = rmsnormTask{x: x, y: y, w: w, rstd: rstd, c: cols, eps: eps}
	c.Parallel(rows, rowGrain(cols), t)
	c.ops.rms.put(t)
}

// RMSNormBackward implements Ops.
func (c *CPU) RMSNormBackward(x, w, rstd, dy, dx, dw []float32, rows, cols int) {
	t := c.ops.rmsBwd.get()
	*t = rmsnormBwdTask{x: x, dy: dy, dx: dx, w: w, rstd: rstd, c: cols}
	c.Parallel(rows, rowGrain(cols), t)
	c.ops.rmsBwd.put(t)
	u := c.ops.rmsDW.get()
	*u = rmsnormDWTask{x: x, dy: dy, dw: dw, rstd: rstd, c: cols, n: rows}
	c.Parallel(cols, 16, u)
	c.ops.rmsDW.put(u)
}

// SwiGLU implements Ops.
func (c *CPU) SwiGLU(g, u, h, sig []float32) {
	t := c.ops.swi.get()
	*t = swigluTask{g: g, u: u, h: h, sig: sig}
	c.Parallel(len(g), 4096, t)
	c.ops.swi.put(t)
}

// SwiGLUBackward implements Ops.
func (c *CPU) SwiGLUBackward(g, u, sig, dh, dg, du []float32) {
	t := c.ops.swiBwd.get()
	*t = swigluBwdTask{g: g, u: u, sig: sig, dh: dh, dg: dg, du: du}
	c.Parallel(len(g), 4096, t)
	c.ops.swiBwd.put(t)
}

// Rope implements Ops.
func (c *CPU) Rope(x []float32, rows, heads, headDim int, pos []int32, cos, sin []float32, inverse bool) {
	t := c.ops.rope.get()
	*t = ropeTask{x: x, heads: heads, headDim: headDim, pos: pos, cos: cos, sin: sin, inverse: inverse}
	c.Parallel(rows, rowGrain(heads*headDim), t)
	c.ops.rope.put(t)
}

// CrossEntropy implements Ops.
func (c *CPU) CrossEntropy(logits []float32, rows, vocab int, targets []int32, nll, lse []float32) {
	t := c.ops.xent.get()
	*t = xentTask{logits: logits, nll: nll, lse: lse, targets: targets, v: vocab}
	c.Parallel(rows, rowGrain(vocab), t)
	c.ops.xent.put(t)
}

// CrossEntropyBackward implements Ops.
func (c *CPU) CrossEntropyBackward(logits, lse, coef []float32, rows, vocab int, targets []int32, dlogits []float32) {
	t := c.ops.xeBwd.get()
	*t = xentBwdTask{logits: logits, dlogits: dlogits, lse: lse, coef: coef, targets: targets, v: vocab}
	c.Parallel(rows, rowGrain(vocab), t)
	c.ops.xeBwd.put(t)
}

// Attention implements Ops: (row, head) pairs are spread over the workers,
// each running single-threaded GEMMs.
func (c *CPU) Attention(a *AttentionArgs) {
	t := c.ops.attn.get()
	*t = attnTask{a: a, gemm: c}
	c.Parallel(a.B*a.Heads, 1, t)
	c.ops.attn.put(t)
}

// AttentionBackward implements Ops: (row, kv head) pairs are spread over
// the workers, so the query heads sharing a kv head accumulate its
// gradients without races.
func (c *CPU) AttentionBackward(a *AttentionArgs) {
	t := c.ops.attn.get()
	*t = attnTask{a: a, gemm: c, bwd: true}
	c.Parallel(a.B*a.KVHeads, 1, t)
	c.ops.attn.put(t)
}

// RMSNorm implements Ops.
func (Serial) RMSNorm(x, w, y, rstd []float32, rows, cols int, eps float32) {
	t := rmsnormTask{x: x, y: y, w: w, rstd: rstd, c: cols, eps: eps}
	t.Run(0, rows)
}

// RMSNormBackward implements Ops.
func (Serial) RMSNormBackward(x, w, rstd, dy, dx, dw []float32, rows, cols int) {
	t := rmsnormBwdTask{x: x, dy: dy, dx: dx, w: w, rstd: rstd, c: cols}
	t.Run(0, rows)
	u := rmsnormDWTask{x: x, dy: dy, dw: dw, rstd: rstd, c: cols, n: rows}
	u.Run(0, cols)
}

// SwiGLU implements Ops.
func (Serial) SwiGLU(g, u, h, sig []float32) {
	t := swigluTask{g: g, u: u, h: h, sig: sig}
	t.Run(0, len(g))
}

// SwiGLUBackward implements Ops.
func (Serial) SwiGLUBackward(g, u, sig, dh, dg, du []float32) {
	t := swigluBwdTask{g: g, u: u, sig: sig, dh: dh, dg: dg, du: du}
	t.Run(0, len(g))
}

// Rope implements Ops.
func (Serial) Rope(x []float32, rows, heads, headDim int, pos []int32, cos, sin []float32, inverse bool) {
	t := ropeTask{x: x, heads: heads, headDim: headDim, pos: pos, cos: cos, sin: sin, inverse: inverse}
	t.Run(0, rows)
}

// CrossEntropy implements Ops.
func (Serial) CrossEntropy(logits []float32, rows, vocab int, targets []int32, nll, lse []float32) {
	t := xentTask{logits: logits, nll: nll, lse: lse, targets: targets, v: vocab}
	t.Run(0, rows)
}

// CrossEntropyBackward implements Ops.
func (Serial) CrossEntropyBackward(logits, lse, coef []float32, rows, vocab int, targets []int32, dlogits []float32) {
	t := xentBwdTask{logits: logits, dlogits: dlogits, lse: lse, coef: coef, targets: targets, v: vocab}
	t.Run(0, rows)
}

// Attention implements Ops.
func (s Serial) Attention(a *AttentionArgs) {
	t := attnTask{a: a, gemm: s}
	t.Run(0, a.B*a.Heads)
}

// AttentionBackward implements Ops.
func (s Serial) AttentionBackward(a *AttentionArgs) {
	t := attnTask{a: a, gemm: s, bwd: true}
	t.Run(0, a.B*a.KVHeads)
}
