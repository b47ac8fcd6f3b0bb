package model

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/herdml/herd/model/kernels"
)

// Model is a Llama decoder with its parameters, optional gradients, and the
// activation workspace of the last Forward call. A Model is not safe for
// concurrent use.
type Model struct {
	Config Config
	Params *Params
	// Grads has the same layout as Params. Backward accumulates into it;
	// the caller zeroes it (Grads.Zero) between optimizer steps.
	Grads *Params
	// ActivationQuantizer, when set, rewrites the inputs of each layer's
	// feed-forward matmuls in place before they are multiplied (e.g. to
	// emulate FP8 matmuls). Inference only: the backward pass treats it as
	// the identity.
	ActivationQuantizer ActivationQuantizer
	// InputRounder, when set, gives the values each projection (and the
	// language-model head) multiplies in place of its input, e.g. the
	// input rounded as llama.cpp rounds it for F16 or Q8_0 weights. It is
	// applied after ActivationQuantizer. Inference only: the backward
	// pass uses the unrounded inputs.
	InputRounder InputRounder

	be        kernels.Backend
	rope      *ropeTable
	ws        *workspace
	attnBlock int // query rows per attention block (kernels.AttentionArgs.Block)
	// decodeGemm makes decoders run every projection through Gemm, without
	// the matrix-vector fast path (tests and benchmarks compare the two).
	decodeGemm bool
	// decodeWeights is the type decoders hold the weights of their
	// matrix-vector steps in (see SetDecodeWeights).
	decodeWeights kernels.WeightType
	// spare is the decoder the last generate call finished with, kept so
	// that the next call reuses its KV memory: a fresh cache costs a page
	// fault at the first write of every 4 KiB, about a tenth of a
	// decoding step of a small model.
	spare  atomic.Pointer[Decoder]
	pviews viewCache // layer views of Params
	gviews viewCache // layer views of Grads
}

// ActivationQuantizer rewrites a matmul input x [rows, cols] in place:
// the input of layer's gate and up projections (down false) or of its
// down projection (down true).
type ActivationQuantizer interface {
	QuantizeFFNInput(layer int, down bool, x []float32, rows, cols int)
}

// Projection names a matrix multiplication of the model by its weight.
type Projection uint8

// The projections of a layer, and the language-model head.
const (
	ProjQ Projection = iota
	ProjK
	ProjV
	ProjO
	ProjGate
	ProjUp
	ProjDown
	ProjHead // layer -1
)

// InputRounder returns the values projection p of layer multiplies for
// its input x [rows, cols]: x itself, or a buffer of the rounder's that
// stays valid until its next call. It must not modify x.
type InputRounder interface {
	RoundInput(layer int, p Projection, x []float32, rows, cols int) []float32
}

// input is the input projection p of layer l multiplies: x, or what
// InputRounder makes of it.
func (m *Model) input(l int, p Projection, x []float32, rows, cols int) []float32 {
	if m.InputRounder == nil {
		return x
	}
	return m.InputRounder.RoundInput(l, p, x[:rows*cols], rows, cols)
}

// New returns a model with zeroed parameters for a valid configuration.
// Call Params.Init for a fresh model or load weights into Params.
func New(c Config, be kernels.Backend) (*Model, error) {
	c.Normalize()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("model config: %w", err)
	}
	if be == nil {
		return nil, errors.New("model: nil kernels backend")
	}
	l := NewLayout(c)
	return &Model{Config: c, Params: NewParams(l), be: be, rope: newRopeTable(c), attnBlock: 32}, nil
}

// NewWithParams returns a model using p (e.g. loaded from a checkpoint) as
// its parameters; p must have the configuration's layout.
func NewWithParams(c Config, p *Params, be kernels.Backend) (*Model, error) {
	m, err := New(c, be)
	if err != nil {
		return nil, err
	}
	if p == nil || p.Layout.Total != m.Params.Layout.Total || len(p.Layout.Tensors) != len(m.Params.Layout.Tensors) || len(p.Data) != p.Layout.Total {
		return nil, errors.New("model: parameters do not match the configuration's layout")
	}
	m.Params = p
	return m, nil
}

// Backend returns the compute backend the model runs on.
func (m *Model) Backend() kernels.Backend { return m.be }

// Batch is a training or scoring batch of B rows of T tokens each.
type Batch struct {
	B, T int
	// Tokens are the input ids, B·T of them, row-major.
	Tokens []int32
	// Targets are the ids to predict at each position; a negative target
	// means "no prediction here" (its nll is 0 and it gets no gradient).
	// May be nil for a forward pass that only needs logits.
	Targets []int32
	// Weights multiply each token's loss (0 masks a token). nil means 1 for
	// every position with a target.
	Weights []float32
	// DocIDs, when set, give each token's document within its row; they must
	// be non-decreasing along a row. No token attends across a document
	// boundary and positions restart at 0 for each document (the Llama 3
	// document mask). nil means one document per row.
	DocIDs []int32
	// Denominator, when positive, replaces Σ weights as the loss
	// normaliser (use the global count of a gradient-accumulated batch).
	Denominator float64
}

// Validate checks a batch against a configuration.
func (b *Batch) Validate(c *Config) error {
	if b.B <= 0 || b.T <= 0 {
		return fmt.Errorf("batch: B and T must be positive, got %d×%d", b.B, b.T)
	}
	n := b.B * b.T
	if len(b.Tokens) != n {
		return fmt.Errorf("batch: %d tokens for a %d×%d batch", len(b.Tokens), b.B, b.T)
	}
	if b.Targets != nil && len(b.Targets) != n {
		return fmt.Errorf("batch: %d targets for a %d×%d batch", len(b.Targets), b.B, b.T)
	}
	if b.Weights != nil && len(b.Weights) != n {
		return fmt.Errorf("batch: %d weights for a %d×%d batch", len(b.Weights), b.B, b.T)
	}
	if b.DocIDs != nil && len(b.DocIDs) != n {
		return fmt.Errorf("batch: %d document ids for a %d×%d batch", len(b.DocIDs), b.B, b.T)
	}
	if b.T > c.MaxPositionEmbeddings {
		return fmt.Errorf("batch: sequence length %d exceeds max_position_embeddings %d", b.T, c.MaxPositionEmbeddings)
	}
	v := int32(c.VocabSize)
	for i, t := range b.Tokens {
		if t < 0 || t >= v {
			return fmt.Errorf("batch: token %d at row %d position %d is outside the vocabulary [0, %d)", t, i/b.T, i%b.T, v)
		}
	}
	for i, t := range b.Targets {
		if t >= v {
			return fmt.Errorf("batch: target %d at row %d position %d is outside the vocabulary [0, %d)", t, i/b.T, i%b.T, v)
		}
	}
	for i := 1; i < len(b.DocIDs); i++ {
		if i%b.T != 0 && b.DocIDs[i] < b.DocIDs[i-1] {
			return fmt.Errorf("batch: document ids decrease at row %d position %d", i/b.T, i%b.T)
		}
	}
	return nil
}

type layerActs struct {
	x          []float32 // layer input (residual stream) [N,C]
	xn1, rstd1 []float32 // attention-norm output and its 1/rms
	q, k, v    []float32 // projections after RoPE (q, k) [N,QD], [N,KD]
	p          []float32 // attention probabilities [B,H,T,T]
	att        []float32 // attention output before o_proj [N,QD]
	x2         []float32 // residual after attention [N,C]
	xn2, rstd2 []float32 // MLP-norm output and its 1/rms
	g, u, h    []float32 // gate, up, silu(gate)·up [N,F]
	sig        []float32 // sigmoid(gate) [N,F]
}

type workspace struct {
	b, t       int
	pos, start []int32 // per token: position within its document, row index where it starts
	layers     []layerActs
	xf         []float32 // final residual
	xnf, rstdf []float32 // final norm
	logits     []float32 // [N,V]
	nll, lse   []float32
	targets    []int32
	tok        []int32
	hasTargets bool
	dx, dxn    []float32 // [N,C]
	dq, datt   []float32 // [N,QD]
	dk, dv     []float32 // [N,KD]
	dg, du     []float32 // [N,F]
	dlogits    []float32 // [N,V]
	scores     []float32 // [B,num_labels] of the last Scores call
	dhid       []float32 // [N,C] hidden-state gradient of ScoresBackward
	dp         []float32 // [B,H,T,T]
	coef       []float32 // [N]
	attn       kernels.AttentionArgs
	io         layerIO // the layer being run by ForwardHidden
	embedT     embedTask
}

func (m *Model) workspace(b, t int) *workspace {
	if ws := m.ws; ws != nil && ws.b == b && ws.t == t {
		return ws
	}
	c := &m.Config
	n := b * t
	C, F, QD, KD, H := c.HiddenSize, c.IntermediateSize, c.QDim(), c.KVDim(), c.NumAttentionHeads
	f := func(k int) []float32 { return make([]float32, k) }
	ws := &workspace{b: b, t: t, pos: make([]int32, n), start: make([]int32, n), targets: make([]int32, n), tok: make([]int32, n)}
	ws.layers = make([]layerActs, c.NumHiddenLayers)
	for i := range ws.layers {
		ws.layers[i] = layerActs{
			x: f(n * C), xn1: f(n * C), rstd1: f(n), q: f(n * QD), k: f(n * KD), v: f(n * KD),
			p: f(b * H * t * t), att: f(n * QD), x2: f(n * C), xn2: f(n * C), rstd2: f(n),
			g: f(n * F), u: f(n * F), h: f(n * F), sig: f(n * F),
		}
	}
	ws.xf, ws.xnf, ws.rstdf = f(n*C), f(n*C), f(n)
	ws.nll, ws.lse = f(n), f(n)
	ws.dx, ws.dxn = f(n*C), f(n*C)
	ws.dq, ws.datt = f(n*QD), f(n*QD)
	ws.dk, ws.dv = f(n*KD), f(n*KD)
	ws.dg, ws.du = f(n*F), f(n*F)
	ws.dp, ws.coef = f(b*H*t*t), f(n)
	m.ws = ws
	return ws
}

// layerWeights are the views of one layer's tensors in a Params buffer.
type layerWeights struct {
	inNorm, q, k, v, o, postNorm, gate, up, down []float32
}

// viewCache remembers the views of one Params buffer — every layer's
// tensors, the embedding, the final norm and the LM head — so the hot
// loops never look tensors up by name.
type viewCache struct {
	data              *float32
	layers            []layerWeights
	embed, norm, head []float32
}

// views returns the cached views of p (the model's parameters or its
// gradients), rebuilding them when p's buffer changed.
func (m *Model) views(p *Params) *viewCache {
	vc := &m.pviews
	if p != m.Params {
		vc = &m.gviews
	}
	if vc.data == &p.Data[0] {
		return vc
	}
	vc.data = &p.Data[0]
	vc.layers = vc.layers[:0]
	for i := 0; i < m.Config.NumHiddenLayers; i++ {
		g := func(s string) []float32 { return p.Get(fmt.Sprintf("model.layers.%d.%s", i, s)) }
		vc.layers = append(vc.layers, layerWeights{
			inNorm: g("input_layernorm.weight"), q: g("self_attn.q_proj.weight"),
			k: g("self_attn.k_proj.weight"), v: g("self_attn.v_proj.weight"),
			o: g("self_attn.o_proj.weight"), postNorm: g("post_attention_layernorm.weight"),
			gate: g("mlp.gate_proj.weight"), up: g("mlp.up_proj.weight"), down: g("mlp.down_proj.weight"),
		})
	}
	vc.embed = p.Get("model.embed_tokens.weight")
	vc.norm = p.Get("model.norm.weight")
	vc.head = p.Get("lm_head.weight")
	if m.Config.TieWordEmbeddings {
		vc.head = vc.embed
	}
	return vc
}

func (m *Model) layerWeights(p *Params, l int) layerWeights { return m.views(p).layers[l] }

// head returns the LM head matrix [V,C] in p (the embedding when tied).
func (m *Model) head(p *Params) []float32 { return m.views(p).head }

// projectSet implements layerRunner for a batch forward pass: one
// m.linear per projection.
func (m *Model) projectSet(l int, x []float32, n, in int, ps []layerProj) {
	m.projectEach(m, l, x, n, in, ps)
}

// projectEach runs the projections of a projectSet one at a time through
// r.project, each on its input as m.input gives it (rounded or not).
func (m *Model) projectEach(r layerRunner, l int, x []float32, n, in int, ps []layerProj) {
	for _, p := range ps {
		r.project(l, p.p, p.y, m.input(l, p.p, x, n, in), p.w, n, in, p.out, false)
	}
}

// project implements layerRunner for a batch forward pass: m.linear.
func (m *Model) project(_ int, _ Projection, y, x, w []float32, n, in, out int, accumulate bool) {
	m.linear(y, x, w, n, in, out, accumulate)
}

// linear computes y = x·Wᵀ (+ y when accumulate) for x [n,in], W [out,in].
func (m *Model) linear(y, x, w []float32, n, in, out int, accumulate bool) {
	var beta float32
	if accumulate {
		beta = 1
	}
	m.be.Gemm(false, true, n, out, in, 1, x, in, w, in, beta, y, out)
}

// linearBack accumulates dW += dyᵀ·x and computes dx = dy·W (+ dx when
// accumulate) for y = x·Wᵀ.
func (m *Model) linearBack(dx, dw, dy, x, w []float32, n, in, out int, accumulate bool) {
	m.be.Gemm(true, false, out, in, n, 1, dy, out, x, in, 1, dw, in)
	if dx == nil {
		return
	}
	var beta float32
	if accumulate {
		beta = 1
	}
	m.be.Gemm(false, false, n, in, out, 1, dy, out, w, in, beta, dx, in)
}

// Forward runs the model over the batch, keeping the activations needed by
// Backward, and returns the per-token negative log-likelihood of the
// targets (0 where there is none). The returned slice and Logits() belong to
// the model and are overwritten by the next call. A sequence classifier
// (HasScoreHead) has no logits: use ForwardHidden and Scores.
func (m *Model) Forward(b *Batch) ([]float32, error) {
	c := &m.Config
	if c.HasScoreHead() {
		return nil, fmt.Errorf("model: a %s has no language-model head; use ForwardHidden and Scores", SequenceClassifier)
	}
	if err := m.ForwardHidden(b); err != nil {
		return nil, err
	}
	ws := m.ws
	n, C, V := b.B*b.T, c.HiddenSize, c.VocabSize
	if len(ws.logits) != n*V {
		ws.logits, ws.dlogits = make([]float32, n*V), make([]float32, n*V)
	}
	m.linear(ws.logits, m.input(-1, ProjHead, ws.xnf, n, C), m.head(m.Params), n, C, V, false)

	ws.hasTargets = b.Targets != nil
	if b.Targets != nil {
		copy(ws.targets, b.Targets)
	} else {
		for i := range ws.targets {
			ws.targets[i] = -1
		}
	}
	m.be.CrossEntropy(ws.logits, n, V, ws.targets, ws.nll, ws.lse)
	return ws.nll, nil
}

// ForwardHidden runs the model's trunk over the batch up to the final
// RMSNorm (Hidden), keeping the activations needed by BackwardWith and
// ScoresBackward, without computing logits.
func (m *Model) ForwardHidden(b *Batch) error {
	c := &m.Config
	if err := b.Validate(c); err != nil {
		return err
	}
	ws := m.workspace(b.B, b.T)
	n := b.B * b.T
	C := c.HiddenSize
	ws.positions(b)
	m.rope.ensure(b.T)
	p := m.Params

	copy(ws.tok, b.Tokens)
	// Embedding.
	emb := m.views(p).embed
	x := ws.layers[0].x
	for i, tok := range b.Tokens {
		copy(x[i*C:i*C+C], emb[int(tok)*C:int(tok)*C+C])
	}
	for l := range ws.layers {
		a := &ws.layers[l]
		next := ws.xf
		if l+1 < len(ws.layers) {
			next = ws.layers[l+1].x
		}
		ws.io = layerIO{
			x: a.x, out: next, xn1: a.xn1, rstd1: a.rstd1, xn2: a.xn2, rstd2: a.rstd2,
			q: a.q, k: a.k, v: a.v, att: a.att, x2: a.x2, g: a.g, u: a.u, h: a.h, sig: a.sig,
		}
		m.layer(m, m.layerWeights(p, l), l, &ws.io, n)
	}
	m.be.RMSNorm(ws.xf, m.views(p).norm, ws.xnf, ws.rstdf, n, C, float32(c.RMSNormEps))
	ws.hasTargets = false
	return nil
}

// layerIO are the buffers of one layer's forward pass over n rows: its
// input x, its output out (the next layer's input; it may be x itself)
// and the intermediates, which a training pass keeps per layer for the
// backward pass and decoding overwrites layer after layer. sig may be nil.
type layerIO struct {
	x, out                 []float32 // [n,C]
	xn1, rstd1, xn2, rstd2 []float32 // the two RMSNorms' outputs and 1/rms
	q, k, v, att           []float32 // [n,QD], [n,KD], [n,KD], [n,QD]
	x2                     []float32 // residual after attention [n,C]
	g, u, h, sig           []float32 // [n,F]
	// set holds the projections of the layer body's projectSet calls
	// (here, not on the stack, so that passing them to the runner
	// allocates nothing).
	set [3]layerProj
}

// layerRunner is what differs between a batch forward pass and a decoding
// step: how a projection y = x·Wᵀ runs, and attention (RoPE on q and k,
// then attention over the batch's own tokens or over the KV cache) from
// io's q, k and v into io.att.
type layerRunner interface {
	project(l int, p Projection, y, x, w []float32, n, in, out int, accumulate bool)
	// projectSet runs the projections ps of layer l, which multiply the
	// same input rows: a runner may run them together.
	projectSet(l int, x []float32, n, in int, ps []layerProj)
	attend(l int, io *layerIO)
}

// layerProj is one projection of a projectSet: y = x·Wᵀ for W [out, in].
type layerProj struct {
	p    Projection
	y, w []float32
	out  int
}

// layer runs layer l with weights w over the n rows of io: the one layer
// body of ForwardHidden and Decoder.Step.
func (m *Model) layer(r layerRunner, w layerWeights, l int, io *layerIO, n int) {
	c := &m.Config
	C, F, QD, KD := c.HiddenSize, c.IntermediateSize, c.QDim(), c.KVDim()
	eps := float32(c.RMSNormEps)
	m.be.RMSNorm(io.x, w.inNorm, io.xn1, io.rstd1, n, C, eps)
	io.set = [3]layerProj{{ProjQ, io.q, w.q, QD}, {ProjK, io.k, w.k, KD}, {ProjV, io.v, w.v, KD}}
	r.projectSet(l, io.xn1, n, C, io.set[:3])
	r.attend(l, io)
	copy(io.x2[:n*C], io.x[:n*C])
	r.project(l, ProjO, io.x2, m.input(l, ProjO, io.att, n, QD), w.o, n, QD, C, true)
	m.be.RMSNorm(io.x2, w.postNorm, io.xn2, io.rstd2, n, C, eps)
	if aq := m.ActivationQuantizer; aq != nil {
		aq.QuantizeFFNInput(l, false, io.xn2, n, C)
	}
	io.set = [3]layerProj{{ProjGate, io.g, w.gate, F}, {ProjUp, io.u, w.up, F}}
	r.projectSet(l, io.xn2, n, C, io.set[:2])
	m.be.SwiGLU(io.g[:n*F], io.u[:n*F], io.h[:n*F], io.sig)
	if aq := m.ActivationQuantizer; aq != nil {
		aq.QuantizeFFNInput(l, true, io.h, n, F)
	}
	copy(io.out[:n*C], io.x2[:n*C])
	r.project(l, ProjDown, io.out, m.input(l, ProjDown, io.h, n, F), w.down, n, F, C, true)
}

// attend implements layerRunner for a batch forward pass: causal,
// document-masked attention over the batch, keeping the probabilities.
func (m *Model) attend(l int, io *layerIO) {
	ws, c := m.ws, &m.Config
	m.applyRope(ws, io.q, c.NumAttentionHeads, false)
	m.applyRope(ws, io.k, c.NumKeyValueHeads, false)
	m.be.Attention(m.attnArgs(ws, &ws.layers[l]))
}

// Scores returns the sequence classifier's outputs [B, num_labels] for
// the last ForwardHidden (or Forward) call: score.weight times the final
// hidden state of each row's token last[r] (the last non-padding token);
// a row with last[r] < 0 scores 0. The slice belongs to the model.
func (m *Model) Scores(last []int32) ([]float32, error) {
	ws, c := m.ws, &m.Config
	if ws == nil {
		return nil, errors.New("model: Scores called before ForwardHidden")
	}
	if !c.HasScoreHead() {
		return nil, fmt.Errorf("model: Scores needs a %s (score.weight)", SequenceClassifier)
	}
	if len(last) != ws.b {
		return nil, fmt.Errorf("model: Scores got %d last-token indices for %d rows", len(last), ws.b)
	}
	L, C := c.NumLabels, c.HiddenSize
	if len(ws.scores) != ws.b*L {
		ws.scores = make([]float32, ws.b*L)
	}
	w := m.Params.Get(ScoreWeight)
	for r, i := range last {
		out := ws.scores[r*L : (r+1)*L]
		if i < 0 {
			clear(out)
			continue
		}
		if int(i) >= ws.t {
			return nil, fmt.Errorf("model: row %d: last token %d is beyond the sequence length %d", r, i, ws.t)
		}
		h := ws.xnf[(r*ws.t+int(i))*C:][:C]
		for j := range out {
			out[j] = kernels.Dot(w[j*C:(j+1)*C], h)
		}
	}
	return ws.scores, nil
}

// ScoresBackward accumulates into Grads the gradient of
// L = Σ dScores ⊙ Scores(last) for the last ForwardHidden call: into
// score.weight and, through the final hidden states at the rows' last
// tokens, into every weight of the trunk.
func (m *Model) ScoresBackward(last []int32, dScores []float32) error {
	ws, c := m.ws, &m.Config
	if ws == nil {
		return errors.New("model: ScoresBackward called before ForwardHidden")
	}
	if !c.HasScoreHead() {
		return fmt.Errorf("model: ScoresBackward needs a %s (score.weight)", SequenceClassifier)
	}
	L, C, n := c.NumLabels, c.HiddenSize, ws.b*ws.t
	if len(last) != ws.b || len(dScores) != ws.b*L {
		return fmt.Errorf("model: ScoresBackward got %d indices and %d gradients for %d rows of %d labels", len(last), len(dScores), ws.b, L)
	}
	m.EnsureGrads()
	if len(ws.dhid) != n*C {
		ws.dhid = make([]float32, n*C)
	}
	clear(ws.dhid)
	w, gw := m.Params.Get(ScoreWeight), m.Grads.Get(ScoreWeight)
	for r, i := range last {
		if i < 0 || int(i) >= ws.t {
			continue
		}
		k := r*ws.t + int(i)
		h, dh := ws.xnf[k*C:][:C], ws.dhid[k*C:][:C]
		for j := range L {
			d := dScores[r*L+j]
			if d == 0 {
				continue
			}
			kernels.Axpy(d, h, gw[j*C:(j+1)*C])
			kernels.Axpy(d, w[j*C:(j+1)*C], dh)
		}
	}
	m.BackwardWith(nil, ws.dhid)
	return nil
}

// Logits returns the logits [B·T, V] of the last Forward call.
func (m *Model) Logits() []float32 {
	if m.ws == nil {
		return nil
	}
	return m.ws.logits
}

// positions fills the per-token positions and document starts.
func (ws *workspace) positions(b *Batch) {
	for r := 0; r < b.B; r++ {
		start := 0
		for i := 0; i < b.T; i++ {
			k := r*b.T + i
			if b.DocIDs != nil && i > 0 && b.DocIDs[k] != b.DocIDs[k-1] {
				start = i
			}
			ws.pos[k] = int32(i - start)
			ws.start[k] = int32(start)
		}
	}
}

// LossCoefficients fills coef with the per-token coefficients of the
// weighted-mean cross-entropy Σ wᵢ·nllᵢ / D (D = Denominator, or Σ wᵢ over
// tokens with a target) and returns the loss value for nll.
func LossCoefficients(b *Batch, nll, coef []float32) float64 {
	var den float64
	for i := range coef {
		w := float32(0)
		if b.Targets != nil && b.Targets[i] >= 0 {
			w = 1
			if b.Weights != nil {
				w = b.Weights[i]
			}
		}
		coef[i] = w
		den += float64(w)
	}
	if b.Denominator > 0 {
		den = b.Denominator
	}
	if den == 0 {
		clear(coef)
		return 0
	}
	var loss float64
	inv := 1 / den
	for i := range coef {
		loss += float64(coef[i]) * float64(nll[i])
		coef[i] = float32(float64(coef[i]) * inv)
	}
	return loss * inv
}

// SequenceLogProbs writes, per row r of the batch, the sum of the
// log-probabilities of its targets weighted by Weights (1 where nil),
// computed from the nll of the last Forward, to logp[r], and the sum of
// those weights to count[r] when count is not nil: the sequence score that
// DPO compares between chosen and rejected responses, and its token count.
// It allocates nothing.
func SequenceLogProbs(b *Batch, nll []float32, logp, count []float64) {
	for r := range b.B {
		var lp, n float64
		for i := r * b.T; i < (r+1)*b.T; i++ {
			if b.Targets == nil || b.Targets[i] < 0 {
				continue
			}
			w := 1.0
			if b.Weights != nil {
				if w = float64(b.Weights[i]); w == 0 {
					continue // not scored, whatever its nll
				}
			}
			lp -= w * float64(nll[i])
			n += w
		}
		logp[r] = lp
		if count != nil {
			count[r] = n
		}
	}
}

// ForwardBackward runs Forward and then Backward for the weighted mean
// cross-entropy of the batch, accumulating gradients into Grads, and
// returns the loss.
func (m *Model) ForwardBackward(b *Batch) (float64, error) {
	if b.Targets == nil {
		return 0, errors.New("batch: ForwardBackward needs targets")
	}
	nll, err := m.Forward(b)
	if err != nil {
		return 0, err
	}
	ws := m.ws
	loss := LossCoefficients(b, nll, ws.coef)
	m.Backward(ws.coef)
	return loss, nil
}

// EnsureGrads allocates Grads (zeroed) if needed.
func (m *Model) EnsureGrads() {
	if m.Grads == nil {
		m.Grads = NewParams(m.Params.Layout)
	}
}

// Backward accumulates into Grads the gradient of L = Σᵢ coef[i]·nll[i]
// for the nll of the last Forward call. coef may be the model's own buffer
// from LossCoefficients or any caller-supplied slice of length B·T.
func (m *Model) Backward(coef []float32) { m.BackwardWith(coef, nil) }

// Hidden returns the final hidden states [B·T, hidden_size] of the last
// Forward call: the output of the final RMSNorm, which the LM head reads.
// A scalar head (e.g. a reward model's on the last token) reads them too.
func (m *Model) Hidden() []float32 {
	if m.ws == nil {
		return nil
	}
	return m.ws.xnf
}

// BackwardWith accumulates into Grads the gradient of
// L = Σᵢ coef[i]·nll[i] + Σ dHidden·Hidden() for the last Forward call:
// the language-model loss (coef, or nil for none) plus any loss on the
// final hidden states whose gradient the caller supplies (dHidden, [B·T,
// hidden_size], or nil). A reward model passes its head's gradient at the
// last token as dHidden and nil coef.
func (m *Model) BackwardWith(coef, dHidden []float32) {
	ws := m.ws
	if ws == nil {
		panic("model: Backward called before Forward")
	}
	m.EnsureGrads()
	c := &m.Config
	n := ws.b * ws.t
	C, F, V, QD, KD := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.QDim(), c.KVDim()
	p, g := m.Params, m.Grads
	if coef != nil && c.HasScoreHead() {
		panic("model: Backward with loss coefficients on a model without a language-model head")
	}
	if coef != nil && len(coef) != n {
		panic(fmt.Sprintf("model: Backward got %d loss coefficients for %d tokens", len(coef), n))
	}
	if dHidden != nil && len(dHidden) != n*C {
		panic(fmt.Sprintf("model: Backward got %d hidden-state gradients, want %d×%d", len(dHidden), n, C))
	}

	clear(ws.dxn)
	if coef != nil {
		m.be.CrossEntropyBackward(ws.logits, ws.lse, coef, n, V, ws.targets, ws.dlogits)
		// Head: logits = xnf·Headᵀ.
		m.linearBack(ws.dxn, m.head(g), ws.dlogits, ws.xnf, m.head(p), n, C, V, false)
	}
	if dHidden != nil {
		kernels.Axpy(1, dHidden, ws.dxn)
	}
	clear(ws.dx)
	m.normBack(ws, ws.xf, ws.dxn, m.views(p).norm, m.views(g).norm, ws.rstdf)

	for l := len(ws.layers) - 1; l >= 0; l-- {
		a := &ws.layers[l]
		w := m.layerWeights(p, l)
		gw := m.layerWeights(g, l)
		// MLP: out = x2 + h·downᵀ.
		dh := ws.dg // reuse: dh then overwritten by dg in place
		m.linearBack(dh, gw.down, ws.dx, a.h, w.down, n, F, C, false)
		m.be.SwiGLUBackward(a.g, a.u, a.sig, dh, ws.dg, ws.du)
		m.linearBack(ws.dxn, gw.gate, ws.dg, a.xn2, w.gate, n, C, F, false)
		m.linearBack(ws.dxn, gw.up, ws.du, a.xn2, w.up, n, C, F, true)
		m.normBack(ws, a.x2, ws.dxn, w.postNorm, gw.postNorm, a.rstd2)
		// Attention: x2 = x + att·oᵀ.
		m.linearBack(ws.datt, gw.o, ws.dx, a.att, w.o, n, QD, C, false)
		m.be.AttentionBackward(m.attnArgs(ws, a))
		m.applyRope(ws, ws.dq, c.NumAttentionHeads, true)
		m.applyRope(ws, ws.dk, c.NumKeyValueHeads, true)
		m.linearBack(ws.dxn, gw.q, ws.dq, a.xn1, w.q, n, C, QD, false)
		m.linearBack(ws.dxn, gw.k, ws.dk, a.xn1, w.k, n, C, KD, true)
		m.linearBack(ws.dxn, gw.v, ws.dv, a.xn1, w.v, n, C, KD, true)
		m.normBack(ws, a.x, ws.dxn, w.inNorm, gw.inNorm, a.rstd1)
	}
	// Embedding rows receive the residual gradient.
	demb := m.views(g).embed
	ws.embedT = embedTask{ws: ws, demb: demb, c: C}
	m.be.Parallel(C, 16, &ws.embedT)
}

// normBack accumulates into ws.dx the input gradient of an RMSNorm whose
// output gradient is dy, and into dw its weight gradient.
func (m *Model) normBack(ws *workspace, x, dy, w, dw, rstd []float32) {
	m.be.RMSNormBackward(x, w, rstd, dy, ws.dx, dw, ws.b*ws.t, m.Config.HiddenSize)
}

// attnArgs fills the workspace's attention arguments for layer a.
func (m *Model) attnArgs(ws *workspace, a *layerActs) *kernels.AttentionArgs {
	c := &m.Config
	ws.attn = kernels.AttentionArgs{
		B: ws.b, T: ws.t, Heads: c.NumAttentionHeads, KVHeads: c.NumKeyValueHeads, HeadDim: c.HeadDim,
		Block: m.attnBlock, Start: ws.start, Q: a.q, K: a.k, V: a.v, P: a.p, Out: a.att,
		DOut: ws.datt, DQ: ws.dq, DK: ws.dk, DV: ws.dv, DP: ws.dp,
	}
	return &ws.attn
}

// embedTask scatters dx rows into the embedding gradient, parallel over
// columns so that repeated tokens never race.
type embedTask struct {
	ws   *workspace
	demb []float32
	c    int
}

func (t *embedTask) Run(lo, hi int) {
	c := t.c
	dx := t.ws.dx
	for i, tok := range t.ws.tok {
		row := t.demb[int(tok)*c+lo : int(tok)*c+hi]
		src := dx[i*c+lo : i*c+hi]
		for j := range row {
			row[j] += src[j]
		}
	}
}

func (m *Model) applyRope(ws *workspace, buf []float32, heads int, inverse bool) {
	m.be.Rope(buf, ws.b*ws.t, heads, m.Config.HeadDim, ws.pos, m.rope.cos, m.rope.sin, inverse)
}
