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
	full    int      // outputs covered by whole panels
	pack    packTask // Pack's task, kept so that repacking allocates nothing
}

// CanPack reports whether this build and CPU have a packed-product kernel
// (the AVX-512 assembly GEMM tile of simd builds); without one, Pack
// refuses and callers keep MatVec or Gemm.
func CanPack() bool { return packedWidth() > 0 }

// Pack rearranges w [out×in] into p, reusing p's memory, and reports
// whether it did (see CanPack). It runs on be's workers. p refers to w
// afterwards: change w and p is stale until packed again.
func (p *Packed) Pack(be Backend, w []float32, out, in int) bool {
	nr := packedWidth()
	if nr == 0 {
		return false
	}
	if out < 0 || in <= 0 || len(w) < out*in {
		panic(fmt.Sprintf("kernels: Pack: w of %d elements for out=%d in=%d", len(w), out, in))
	}
	p.w, p.in, p.out, p.full = w[:out*in], in, out, out/nr*nr
	if need := p.full * in; cap(p.panels) >= need {
		p.panels = p.panels[:need]
	} else {
		p.panels = make([]float32, need)
	}
	p.pack = packTask{p: p, nr: nr}
	be.Parallel(p.full/nr, max(1, 16384/(nr*in)), &p.pack)
	p.pack.p = nil
	return true
}

// packTask packs panels [lo, hi) of a Packed.
type packTask struct {
	p  *Packed
	nr int
}

func (t *packTask) Run(lo, hi int) {
	p, nr := t.p, t.nr
	packPanels(p.panels[lo*nr*p.in:], false, p.w, p.in, lo*nr, (hi-lo)*nr, 0, p.in, nr)
}

// RunPacked computes y = x·Wᵀ, or y += x·Wᵀ when accumulate, for the n
// rows of x [n×in] and the packed W of p, on be's workers: y is n×out.
// Whole panels of outputs times blocks of rows go through the packed
// kernel; the rows past the last whole block and the outputs past the
// last whole panel through the matrix-vector kernel.
func (mv *MatVec) RunPacked(be Backend, y, x []float32, p *Packed, n int, accumulate bool) {
	in, out := p.in, p.out
	if n < 0 || len(x) < n*in || len(y) < n*out {
		panic(fmt.Sprintf("kernels: RunPacked: n=%d in=%d out=%d needs x, y of %d, %d elements; have %d, %d", n, in, out, n*in, n*out, len(x), len(y)))
	}
	if n == 0 || out == 0 {
		return
	}
	t := &mv.pt
	t.mvArgs = mvArgs{y: y[:n*out], x: x[:n*in], w: p.w, ldy: out, ldx: in, ldw: in, n: n, in: in, acc: accumulate}
	t.p, t.nr = p, packedWidth()
	units := p.full / t.nr
	if p.full < out {
		units++ // the outputs past the whole panels
	}
	be.Parallel(units, 1, t)
	t.y, t.x, t.w, t.p = nil, nil, nil, nil
}

// packedTask runs RunPacked over panels of outputs.
type packedTask struct {
	mvArgs
	p  *Packed
	nr int
}

func (t *packedTask) Run(lo, hi int) {
	p, nr, n := t.p, t.nr, t.n
	mr := packedRows()
	for j := lo; j < hi; j++ {
		o := j * nr
		if o >= p.full {
			matVecGo(&t.mvArgs, o, p.out)
			continue
		}
		r := 0
		for ; r+mr <= n; r += mr {
			packedTile(p.in, t.x[r*p.in:], p.in, p.panels[o*p.in:], t.y[r*p.out+o:], p.out, t.acc)
		}
		if r < n {
			rest := t.mvArgs
			rest.n = n - r
			rest.x, rest.y = t.x[r*p.in:], t.y[r*p.out:]
			matVecGo(&rest, o, o+nr)
		}
	}
}
