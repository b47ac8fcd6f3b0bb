package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// TensorInfo describes one named view into a Params buffer.
type TensorInfo struct {
	Name   string // Hugging Face tensor name, e.g. "model.layers.0.self_attn.q_proj.weight"
	Shape  []int  // HF shape: [out, in] for matrices, [n] for norm weights
	Offset int    // start index in Params.Data
	Size   int    // number of elements
}

// Layout is the ordered list of a model's tensors. Parameters, gradients and
// optimizer moments all share it, so the i-th element of each buffer refers
// to the same weight.
type Layout struct {
	Tensors []TensorInfo
	Total   int
	index   map[string]int
}

// ScoreWeight is the Hugging Face name of a sequence classifier's head.
const ScoreWeight = "score.weight"

// NewLayout computes the tensor layout of a configuration: the embedding,
// then per layer the attention norm, q/k/v/o, the MLP norm, gate/up/down,
// then the final norm and the head: score.weight [num_labels, hidden] for
// a sequence classifier, else lm_head when untied (none when tied).
func NewLayout(c Config) *Layout {
	l := &Layout{index: map[string]int{}}
	add := func(name string, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		l.index[name] = len(l.Tensors)
		l.Tensors = append(l.Tensors, TensorInfo{Name: name, Shape: shape, Offset: l.Total, Size: n})
		l.Total += n
	}
	C, F, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	add("model.embed_tokens.weight", V, C)
	for i := 0; i < c.NumHiddenLayers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		add(p+"input_layernorm.weight", C)
		add(p+"self_attn.q_proj.weight", c.QDim(), C)
		add(p+"self_attn.k_proj.weight", c.KVDim(), C)
		add(p+"self_attn.v_proj.weight", c.KVDim(), C)
		add(p+"self_attn.o_proj.weight", C, c.QDim())
		add(p+"post_attention_layernorm.weight", C)
		add(p+"mlp.gate_proj.weight", F, C)
		add(p+"mlp.up_proj.weight", F, C)
		add(p+"mlp.down_proj.weight", C, F)
	}
	add("model.norm.weight", C)
	switch {
	case c.HasScoreHead():
		add(ScoreWeight, c.NumLabels, C)
	case !c.TieWordEmbeddings:
		add("lm_head.weight", V, C)
	}
	return l
}

// Lookup returns the tensor with the given HF name.
func (l *Layout) Lookup(name string) (TensorInfo, bool) {
	i, ok := l.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return l.Tensors[i], true
}

// Params is a float32 buffer laid out by a Layout. The same type holds
// weights, gradients and optimizer moments.
type Params struct {
	Layout *Layout
	Data   []float32
}

// NewParams allocates a zeroed buffer for the layout.
func NewParams(l *Layout) *Params {
	return &Params{Layout: l, Data: make([]float32, l.Total)}
}

// Get returns the view of the named tensor, or nil when it does not exist.
func (p *Params) Get(name string) []float32 {
	t, ok := p.Layout.Lookup(name)
	if !ok {
		return nil
	}
	return p.Data[t.Offset : t.Offset+t.Size : t.Offset+t.Size]
}

// View returns the view of tensor i of the layout.
func (p *Params) View(i int) []float32 {
	t := p.Layout.Tensors[i]
	return p.Data[t.Offset : t.Offset+t.Size : t.Offset+t.Size]
}

// Zero sets every element to zero.
func (p *Params) Zero() { clear(p.Data) }

// Init fills the parameters the way herd initialises a fresh model, seeded
// and deterministic:
//   - norm weights are 1;
//   - every matrix is drawn from N(0, σ²) with σ = initializer_range
//     (0.02 by default, as in Hugging Face);
//   - the output projections of each residual branch (o_proj, down_proj)
//     use σ/√(2·num_hidden_layers), as GPT-2 does, so the residual stream's
//     variance does not grow with depth.
func (p *Params) Init(c Config, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x6865726421))
	std := c.InitializerRange
	if std == 0 {
		std = 0.02
	}
	resid := std / math.Sqrt(2*float64(c.NumHiddenLayers))
	for i, t := range p.Layout.Tensors {
		v := p.View(i)
		if len(t.Shape) == 1 {
			for j := range v {
				v[j] = 1
			}
			continue
		}
		s := std
		if strings.HasSuffix(t.Name, "o_proj.weight") || strings.HasSuffix(t.Name, "down_proj.weight") {
			s = resid
		}
		for j := range v {
			v[j] = float32(rng.NormFloat64() * s)
		}
	}
}

// DecayMask reports, per tensor of the layout, whether weight decay applies
// by herd's default rule: decay 2-D weights (matrices and embeddings), never
// norm weights.
func (l *Layout) DecayMask() []bool {
	m := make([]bool, len(l.Tensors))
	for i, t := range l.Tensors {
		m[i] = len(t.Shape) >= 2
	}
	return m
}
