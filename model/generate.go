package model

import (
	"fmt"

	"github.com/herdml/herd/model/kernels"
)

// Decoder runs incremental (KV-cached) inference for a fixed number of
// sequence slots. Each slot holds one sequence; slots advance independently,
// so sequences of different lengths share every matrix multiplication.
type Decoder struct {
	m      *Model
	slots  int
	maxLen int
	// k and v are the caches, per layer. Keys are stored transposed for
	// the attention kernel: [slot][KD][ldk], position t of a slot at
	// column t (see kernels.AttendCached). Values are [slot][maxLen][KD].
	k, v [][]float32
	ldk  int // kernels.KeyStride(maxLen)
	lens []int
	seen []bool // per slot, scratch for Step's argument check
	// processed counts the tokens run forward by Step.
	processed int64
	// mv runs the projections of steps with at most mvMax rows (decoding
	// one or a few tokens) as matrix-vector products: the weights are read
	// once, without the packing of a GEMM.
	mv    kernels.MatVec
	mvMax int
	// packs hold the weights rearranged for the packed product, used for
	// steps of at least packMin rows (0: never) and packed on first use
	// after each reset (packed[i]): per layer the projections ProjQ …
	// ProjDown, then the head.
	packs   []kernels.Packed
	packed  []bool
	packMin int
	set     [kernels.MaxPackedSet]kernels.PackedProduct // projectSet's scratch
	// half holds the weights as BF16 for the matrix-vector steps of fewer
	// than halfRows+1 rows (0: never; see Model.SetDecodeWeights), indexed
	// as packs and converted on first use after each reset (halved[i]) into
	// memory kept across resets.
	half     [][]uint16
	halved   []bool
	halfRows int
	conv     kernels.BF16Conv

	// scratch, grown on demand
	n                 int
	x, xn, x2, q, att []float32
	kn, vn            []float32
	g, u, h           []float32
	rstd, logits      []float32
	rowSlot, rowPos   []int32
	groups            []int32   // the first row of each slot's rows in the step, then the row count
	scores            []float32 // per row: the attention's scratch (kernels.ScoresLen)
	att1              decodeAttn
	io                layerIO // the buffers of Step's layers
	rows              int     // rows of the step in progress
}

// NewDecoder allocates KV caches for slots sequences of up to maxLen
// tokens. Where the build has the packed product (kernels.CanPack), the
// decoder rearranges each weight matrix on its first use in a step of
// packMinRows rows or more and keeps that copy: create a new decoder
// after changing the weights (generate takes a fresh or reset one per
// call).
func (m *Model) NewDecoder(slots, maxLen int) (*Decoder, error) {
	if err := m.checkDecoder(slots, maxLen); err != nil {
		return nil, err
	}
	d := &Decoder{m: m}
	d.reset(slots, maxLen)
	return d, nil
}

// checkDecoder refuses decoder shapes the model cannot run.
func (m *Model) checkDecoder(slots, maxLen int) error {
	c := &m.Config
	if slots <= 0 || maxLen <= 0 {
		return fmt.Errorf("decoder: slots (%d) and maxLen (%d) must be positive", slots, maxLen)
	}
	if c.HasScoreHead() {
		return fmt.Errorf("decoder: the model is a %s (a reward model) and has no language-model head to generate with", SequenceClassifier)
	}
	if maxLen > c.MaxPositionEmbeddings {
		return fmt.Errorf("decoder: maxLen %d exceeds max_position_embeddings %d", maxLen, c.MaxPositionEmbeddings)
	}
	return nil
}

// reusedDecoder is NewDecoder for generate: it takes the decoder the last
// call put back (see putDecoder), when there is one, and reshapes it,
// reusing its KV memory where it is large enough.
func (m *Model) reusedDecoder(slots, maxLen int) (*Decoder, error) {
	if err := m.checkDecoder(slots, maxLen); err != nil {
		return nil, err
	}
	d := m.spare.Swap(nil)
	if d == nil {
		d = &Decoder{m: m}
	}
	d.reset(slots, maxLen)
	return d, nil
}

// putDecoder keeps d for the next reusedDecoder call.
func (m *Model) putDecoder(d *Decoder) { m.spare.Store(d) }

// reset empties d and shapes it for slots sequences of up to maxLen
// tokens, keeping the memory of its KV caches and scratch where it is
// large enough. Cached values are not cleared: a slot's attention reads
// only the positions written since.
func (d *Decoder) reset(slots, maxLen int) {
	m, c := d.m, &d.m.Config
	if maxLen > d.maxLen {
		d.n = 0 // the attention scratch holds maxLen scores per row: regrow it
	}
	d.slots, d.maxLen, d.ldk, d.processed = slots, maxLen, kernels.KeyStride(maxLen), 0
	d.lens, d.seen = resize(d.lens, slots), resize(d.seen, slots)
	clear(d.lens)
	d.mvMax, d.packMin = 0, 0
	if !m.decodeGemm {
		d.mvMax = kernels.MatVecMaxRows(m.be)
		if kernels.CanPack() {
			d.packMin = packMinRows
		}
	}
	np := c.NumHiddenLayers*int(ProjHead) + 1
	d.packs, d.packed = resize(d.packs, np), resize(d.packed, np)
	clear(d.packed) // the weights may have changed since the last use
	d.halfRows = 0
	if m.decodeWeights == kernels.BF16 && !m.decodeGemm {
		d.halfRows = packMinRows - 1
		d.half, d.halved = resize(d.half, np), resize(d.halved, np)
		clear(d.halved)
	}
	kd := c.KVDim()
	d.k, d.v = resize(d.k, c.NumHiddenLayers), resize(d.v, c.NumHiddenLayers)
	for l := range d.k {
		d.k[l], d.v[l] = resize(d.k[l], slots*kd*d.ldk), resize(d.v[l], slots*maxLen*kd)
	}
	m.rope.ensure(maxLen)
}

// resize returns s with length n, reusing its array when it is large
// enough (the elements are then left as they were).
func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// packMinRows is the fewest rows of a decoding step for which the packed
// product beats MatVec (BenchmarkMatVec, AVX-512, config M's 768×256
// weights: equal at 4 rows, 1.9× faster at 8, 1.5× at 16): below it the
// weights are read once either way and MatVec saves the packing.
const packMinRows = 8

// Len returns the number of tokens cached for a slot.
func (d *Decoder) Len(slot int) int { return d.lens[slot] }

// Processed is the number of tokens Step has run forward.
func (d *Decoder) Processed() int64 { return d.processed }

// Copy makes slot dst hold the same sequence as slot src (its cached keys
// and values), so several continuations share one prefill.
func (d *Decoder) Copy(dst, src int) error {
	if dst < 0 || dst >= d.slots || src < 0 || src >= d.slots {
		return fmt.Errorf("decoder: copy slot %d to %d: out of range [0, %d)", src, dst, d.slots)
	}
	if dst == src {
		return nil
	}
	kd, ldk, n := d.m.Config.KVDim(), d.ldk, d.lens[src]
	for l := range d.k {
		kt := d.k[l]
		for j := range kd {
			copy(kt[(dst*kd+j)*ldk:][:n], kt[(src*kd+j)*ldk:][:n])
		}
		copy(d.v[l][dst*d.maxLen*kd:][:n*kd], d.v[l][src*d.maxLen*kd:][:n*kd])
	}
	d.lens[dst] = d.lens[src]
	return nil
}

// Reset empties a slot so a new sequence can start in it.
func (d *Decoder) Reset(slot int) { d.lens[slot] = 0 }

func (d *Decoder) grow(n int) {
	if n <= d.n {
		return
	}
	c := &d.m.Config
	C, F, V, QD, KD := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.QDim(), c.KVDim()
	f := func(k int) []float32 { return make([]float32, k) }
	d.n = n
	d.x, d.xn, d.x2, d.q, d.att = f(n*C), f(n*C), f(n*C), f(n*QD), f(n*QD)
	d.kn, d.vn = f(n*KD), f(n*KD)
	d.g, d.u, d.h = f(n*F), f(n*F), f(n*F)
	d.rstd, d.logits = f(n), f(n*V)
	d.rowSlot, d.rowPos, d.groups = make([]int32, n), make([]int32, n), make([]int32, 0, n+1)
	d.scores = f(n * kernels.ScoresLen(c.NumAttentionHeads, c.NumKeyValueHeads, d.ldk))
}

// projectSet implements layerRunner for decoding: the projections in one
// packed pass (RunPackedSet) when every one of them takes the packed
// path and their input is not rounded per projection, else one at a
// time.
func (d *Decoder) projectSet(l int, x []float32, n, in int, ps []layerProj) {
	if d.m.InputRounder == nil && d.packMin > 0 && n >= d.packMin {
		set := d.set[:0]
		for _, p := range ps {
			pk := d.packFor(l, p.p, p.w, p.out, in)
			if pk == nil {
				break
			}
			set = append(set, kernels.PackedProduct{Y: p.y, W: pk})
		}
		if len(set) == len(ps) {
			d.mv.RunPackedSet(d.m.be, x, n, false, set)
			return
		}
	}
	d.m.projectEach(d, l, x, n, in, ps)
}

// SetDecodeWeights sets the type decoders created or reset from now on
// (NewDecoder, and Generate's) hold the weights of their matrix-vector
// steps in: kernels.F32 (the default) multiplies the weights as they
// are; kernels.BF16 multiplies a copy rounded to BF16 (nearest even),
// made once per decoder reset, in every step of fewer than 8 rows (one
// token per sequence for up to 7 sequences), which reads half the bytes
// of a memory-bound decoding step; steps of more rows (prefill, large
// batches) keep the F32 weights. Call it before decoding, not
// concurrently with it.
func (m *Model) SetDecodeWeights(t kernels.WeightType) error {
	switch t {
	case kernels.F32, kernels.BF16:
		m.decodeWeights = t
		return nil
	}
	return fmt.Errorf("decoder: weight type %v is not f32 or bf16", t)
}

// projIndex is the index of projection p of layer l in d.packs and
// d.half.
func (d *Decoder) projIndex(l int, p Projection) int {
	if p == ProjHead {
		return len(d.packs) - 1
	}
	return l*int(ProjHead) + int(p)
}

// halfFor returns projection p of layer l as BF16, converting w (out×in)
// on its first use since the decoder's reset.
func (d *Decoder) halfFor(l int, p Projection, w []float32, out, in int) []uint16 {
	i := d.projIndex(l, p)
	if !d.halved[i] {
		d.half[i] = resize(d.half[i], out*in)
		kernels.ToBF16(d.m.be, &d.conv, d.half[i], w, out, in)
		d.halved[i] = true
	}
	return d.half[i]
}

// packFor returns the packed weights of projection p of layer l, packing
// w on its first use since the decoder's reset, or nil where the build
// cannot pack.
func (d *Decoder) packFor(l int, p Projection, w []float32, out, in int) *kernels.Packed {
	i := d.projIndex(l, p)
	if !d.packed[i] {
		d.packed[i] = d.packs[i].Pack(d.m.be, w, out, in)
	}
	if !d.packed[i] {
		return nil
	}
	return &d.packs[i]
}

// project implements layerRunner for decoding: y = x·Wᵀ (+ y when
// accumulate) for projection p of layer l (ProjHead: the head) over n
// rows, by the packed product when n is at least packMin (packing W on
// its first use since the decoder's reset), else by MatVec on the BF16
// copy of W when n is at most halfRows, else by MatVec when n is small
// enough for it to be faster, else by Gemm.
func (d *Decoder) project(l int, p Projection, y, x, w []float32, n, in, out int, accumulate bool) {
	if n <= d.halfRows {
		d.mv.RunBF16(d.m.be, y, x, d.halfFor(l, p, w, out, in), n, in, out, accumulate)
		return
	}
	if d.packMin > 0 && n >= d.packMin {
		if pk := d.packFor(l, p, w, out, in); pk != nil {
			d.mv.RunPacked(d.m.be, y, x, pk, n, accumulate)
			return
		}
	}
	if n <= d.mvMax {
		d.mv.Run(d.m.be, y, x, w, n, in, out, accumulate)
		return
	}
	d.m.linear(y, x, w, n, in, out, accumulate)
}

// Step appends tokens[i] to the sequence in slots[i] for every i (each list
// may have any length, e.g. a whole prompt or one sampled token) and
// returns logits. With allLogits the result has one row of vocab_size
// logits per appended token, in order; otherwise one row per slot entry:
// the logits after its last appended token. The slice belongs to the
// decoder and is overwritten by the next call.
func (d *Decoder) Step(slots []int, tokens [][]int32, allLogits bool) ([]float32, error) {
	m := d.m
	c := &m.Config
	if len(slots) != len(tokens) {
		return nil, fmt.Errorf("decoder: %d slots for %d token lists", len(slots), len(tokens))
	}
	n := 0
	clear(d.seen)
	for i, s := range slots {
		if s < 0 || s >= d.slots {
			return nil, fmt.Errorf("decoder: slot %d out of range [0, %d)", s, d.slots)
		}
		if d.seen[s] {
			return nil, fmt.Errorf("decoder: slot %d appears twice in one step", s)
		}
		d.seen[s] = true
		if d.lens[s]+len(tokens[i]) > d.maxLen {
			return nil, fmt.Errorf("decoder: slot %d would hold %d tokens, more than its %d", s, d.lens[s]+len(tokens[i]), d.maxLen)
		}
		for _, t := range tokens[i] {
			if t < 0 || int(t) >= c.VocabSize {
				return nil, fmt.Errorf("decoder: token %d outside the vocabulary [0, %d)", t, c.VocabSize)
			}
		}
		n += len(tokens[i])
	}
	if n == 0 {
		return nil, nil
	}
	d.processed += int64(n)
	d.grow(n)
	C, V := c.HiddenSize, c.VocabSize
	p := m.Params
	emb := m.views(p).embed
	r := 0
	d.groups = d.groups[:0]
	for i, s := range slots {
		if len(tokens[i]) > 0 {
			d.groups = append(d.groups, int32(r))
		}
		for j, t := range tokens[i] {
			copy(d.x[r*C:(r+1)*C], emb[int(t)*C:int(t)*C+C])
			d.rowSlot[r] = int32(s)
			d.rowPos[r] = int32(d.lens[s] + j)
			r++
		}
	}
	d.groups = append(d.groups, int32(n))
	x, xn := d.x[:n*C], d.xn[:n*C]
	d.io = layerIO{
		x: x, out: x, xn1: xn, rstd1: d.rstd, xn2: xn, rstd2: d.rstd,
		q: d.q, k: d.kn, v: d.vn, att: d.att, x2: d.x2, g: d.g, u: d.u, h: d.h,
	}
	d.rows = n
	for l := range c.NumHiddenLayers {
		m.layer(d, m.layerWeights(p, l), l, &d.io, n)
	}
	for i, s := range slots {
		d.lens[s] += len(tokens[i])
	}
	// Final norm and head, over every row or only each list's last row.
	rows := n
	if !allLogits {
		r, k := 0, 0
		for i := range slots {
			if len(tokens[i]) == 0 {
				continue
			}
			r += len(tokens[i])
			copy(x[k*C:(k+1)*C], x[(r-1)*C:r*C])
			k++
		}
		rows = k
	}
	m.be.RMSNorm(x[:rows*C], m.views(p).norm, xn[:rows*C], d.rstd, rows, C, float32(c.RMSNormEps))
	d.project(-1, ProjHead, d.logits, m.input(-1, ProjHead, xn, rows, C), m.head(p), rows, C, V, false)
	return d.logits[:rows*V], nil
}

// attend implements layerRunner for a decoding step: RoPE at each row's
// position, the rows' keys and values appended to their slots' caches,
// then each row attends to its slot's cache. One parallel pass does it
// all, split by slot (each slot's rows are contiguous, see Step), so a
// row never attends to a position another worker is still writing.
func (d *Decoder) attend(l int, io *layerIO) {
	d.att1 = decodeAttn{d: d, layer: l, io: io}
	d.m.be.Parallel(len(d.groups)-1, 1, &d.att1)
	d.att1.io = nil
}

// decodeAttn runs attend for the slots' row groups [lo, hi) (see
// Decoder.groups).
type decodeAttn struct {
	d     *Decoder
	layer int
	io    *layerIO
}

func (t *decodeAttn) Run(lo, hi int) {
	d, io := t.d, t.io
	c := &d.m.Config
	H, Hkv, hd := c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	QD, KD, ldk := c.QDim(), c.KVDim(), d.ldk
	cos, sin := d.m.rope.cos, d.m.rope.sin
	ns := kernels.ScoresLen(H, Hkv, ldk)
	for g := lo; g < hi; g++ {
		r0, r1 := int(d.groups[g]), int(d.groups[g+1])
		slot := int(d.rowSlot[r0])
		kt := d.k[t.layer][slot*KD*ldk : (slot+1)*KD*ldk]
		vc := d.v[t.layer][slot*d.maxLen*KD : (slot+1)*d.maxLen*KD]
		kernels.RopeRows(io.q[r0*QD:r1*QD], r1-r0, H, hd, d.rowPos[r0:r1], cos, sin, false)
		kernels.RopeRows(io.k[r0*KD:r1*KD], r1-r0, Hkv, hd, d.rowPos[r0:r1], cos, sin, false)
		for r := r0; r < r1; r++ {
			pos := int(d.rowPos[r])
			for j, x := range io.k[r*KD : (r+1)*KD] {
				kt[j*ldk+pos] = x
			}
			copy(vc[pos*KD:(pos+1)*KD], io.v[r*KD:(r+1)*KD])
		}
		for r := r0; r < r1; r++ {
			npos := int(d.rowPos[r]) + 1
			kernels.AttendCached(io.att[r*QD:(r+1)*QD], io.q[r*QD:(r+1)*QD], kt, ldk, vc[:npos*KD], KD,
				d.scores[r*ns:(r+1)*ns], npos, H, Hkv, hd)
		}
	}
}

// FLOPsPerToken is the training cost of one token (forward and backward)
// for sequences of length seqLen, PaLM's convention: 6·N + 12·L·T·(H·d),
// where N counts the parameters of every matrix multiplication (the layers'
// projections and the LM head, not the embedding lookup or norms) and the
// second term is attention's QKᵀ and PV (without causal savings). The
// forward pass alone is a third of it.
func FLOPsPerToken(c Config, seqLen int) float64 {
	return 6*float64(MatmulParams(c)) + 12*float64(c.NumHiddenLayers)*float64(seqLen)*float64(c.QDim())
}

// MatmulParams counts the parameters that take part in matrix
// multiplications: every layer's projections plus the LM head.
func MatmulParams(c Config) int {
	C, F := c.HiddenSize, c.IntermediateSize
	perLayer := C*c.QDim() + 2*C*c.KVDim() + c.QDim()*C + 3*C*F
	return c.NumHiddenLayers*perLayer + c.VocabSize*C
}
