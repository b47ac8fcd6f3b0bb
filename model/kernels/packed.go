package kernels

import "fmt"

// Packed is a weight matrix W [out×in] rearranged once for products with
// many rows, such as a decoding step of a batch of sequences: the
// outputs in panels of the build's packed-kernel width, each panel the in
// steps of its outputs side by side, so the product broadcasts rows of x
// against whole vectors of outputs with no sums across lanes and no
// packing per call (which a GEMM pays on every call: for 16 rows, as much
// as the arithmetic). It keeps W too, for the outputs and rows a panel
// does not cover. The zero value is empty; Pack fills it, reusing its
// memory.
type Packed struct {
	w       []float32
	panels  []float32
	in, out int
	full    int        // outputs covered by whole panels
	mr, nr  int        // the tile: rows of x and outputs (panel width)
	tile    rowsKernel // the tile's kernel, x read in place
	pack    packTask   // Pack's task, kept so that repacking allocates nothing
}

// CanPack reports whether this build and CPU have a packed-product kernel
// (the assembly GEMM tiles of simd builds, AVX-512 or AVX2); without one,
// Pack refuses and callers keep MatVec or Gemm.
func CanPack() bool {
	_, _, _, ok := packedKernel()
	return ok
}

// Pack rearranges w [out×in] into p, reusing p's memory, and reports
// whether it did (see CanPack). It runs on be's workers. p refers to w
// afterwards: change w and p is stale until packed again.
func (p *Packed) Pack(be Backend, w []float32, out, in int) bool {
	mr, nr, tile, ok := packedKernel()
	if !ok {
		return false
	}
	p.packWith(be, w, out, in, mr, nr, tile)
	return true
}

// packWith is Pack for the mr×nr tile given (tests reach the AVX2 tile on
// AVX-512 CPUs through it).
func (p *Packed) packWith(be Backend, w []float32, out, in, mr, nr int, tile rowsKernel) {
	if out < 0 || in <= 0 || len(w) < out*in {
		panic(fmt.Sprintf("kernels: Pack: w of %d elements for out=%d in=%d", len(w), out, in))
	}
	p.w, p.in, p.out, p.full = w[:out*in], in, out, out/nr*nr
	p.mr, p.nr, p.tile = mr, nr, tile
	if need := p.full * in; cap(p.panels) >= need {
		p.panels = p.panels[:need]
	} else {
		p.panels = make([]float32, need)
	}
	p.pack = packTask{p: p}
	be.Parallel(p.full/nr, max(1, 16384/(nr*in)), &p.pack)
	p.pack.p = nil
}

// packTask packs panels [lo, hi) of a Packed.
type packTask struct {
	p *Packed
}

func (t *packTask) Run(lo, hi int) {
	p, nr := t.p, t.p.nr
	packPanels(p.panels[lo*nr*p.in:], false, p.w, p.in, lo*nr, (hi-lo)*nr, 0, p.in, nr)
}

// RunPacked computes y = x·Wᵀ, or y += x·Wᵀ when accumulate, for the n
// rows of x [n×in] and the packed W of p, on be's workers: y is n×out.
// Whole panels of outputs times blocks of rows go through the packed
// kernel; the rows past the last whole block and the outputs past the
// last whole panel through the matrix-vector kernel.
func (mv *MatVec) RunPacked(be Backend, y, x []float32, p *Packed, n int, accumulate bool) {
	mv.pt.set[0] = PackedProduct{Y: y, W: p}
	mv.RunPackedSet(be, x, n, accumulate, mv.pt.set[:1])
}

// PackedProduct is one product of RunPackedSet: Y = x·Wᵀ (+ Y) for the
// packed W.
type PackedProduct struct {
	Y []float32
	W *Packed
}

// MaxPackedSet is the most products one RunPackedSet call takes.
const MaxPackedSet = 4

// RunPackedSet is RunPacked for up to MaxPackedSet products of the same
// rows x (all W with the same in), in one parallel pass: a layer's query,
// key and value projections, or its gate and up projections, cost one
// dispatch to the workers instead of one each.
func (mv *MatVec) RunPackedSet(be Backend, x []float32, n int, accumulate bool, ps []PackedProduct) {
	if len(ps) == 0 || len(ps) > MaxPackedSet {
		panic(fmt.Sprintf("kernels: RunPackedSet: %d products, want 1 to %d", len(ps), MaxPackedSet))
	}
	in := ps[0].W.in
	if n < 0 || len(x) < n*in {
		panic(fmt.Sprintf("kernels: RunPackedSet: n=%d in=%d needs x of %d elements; have %d", n, in, n*in, len(x)))
	}
	t := &mv.pt
	t.n, t.acc, t.x, t.jobs = n, accumulate, x[:n*in], len(ps)
	units := 0
	for i, pp := range ps {
		p := pp.W
		if p.in != in || len(pp.Y) < n*p.out {
			panic(fmt.Sprintf("kernels: RunPackedSet: product %d has in=%d (want %d) and y of %d elements (want %d)", i, p.in, in, len(pp.Y), n*p.out))
		}
		u := (p.out + p.nr - 1) / p.nr // whole panels, then the outputs past them
		t.job[i] = packedJob{PackedProduct: PackedProduct{Y: pp.Y[:n*p.out], W: p}, first: units, units: u}
		units += u
	}
	if n > 0 && units > 0 {
		be.Parallel(units, 1, t)
	}
	for i := range t.job {
		t.job[i] = packedJob{}
	}
	t.set, t.x = [MaxPackedSet]PackedProduct{}, nil
}

// packedJob is one product of a packedTask: its units (panels of
// outputs) are [first, first+units) of the task's.
type packedJob struct {
	PackedProduct
	first, units int
}

// packedTask runs RunPackedSet over panels of outputs.
type packedTask struct {
	job  [MaxPackedSet]packedJob
	jobs int
	set  [MaxPackedSet]PackedProduct // RunPacked's one-product set
	x    []float32
	n    int
	acc  bool
}

func (t *packedTask) Run(lo, hi int) {
	n := t.n
	j := 0
	for u := lo; u < hi; u++ {
		for u >= t.job[j].first+t.job[j].units {
			j++
		}
		jb := &t.job[j]
		p, y := jb.W, jb.Y
		mr, nr := p.mr, p.nr
		args := mvArgs{y: y, x: t.x, w: p.w, ldy: p.out, ldx: p.in, ldw: p.in, n: n, in: p.in, acc: t.acc}
		o := (u - jb.first) * nr
		if o >= p.full {
			matVecGo(&args, o, p.out)
			continue
		}
		r := 0
		for ; r+mr <= n; r += mr {
			var beta float32
			if t.acc {
				beta = 1
			}
			p.tile(p.in, t.x[r*p.in:], p.in, p.panels[o*p.in:], y[r*p.out+o:], p.out, 1, beta)
		}
		if r < n {
			args.n = n - r
			args.x, args.y = t.x[r*p.in:], y[r*p.out:]
			matVecGo(&args, o, o+nr)
		}
	}
}
