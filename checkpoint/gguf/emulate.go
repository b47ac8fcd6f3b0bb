package gguf

import (
	"fmt"
	"math"

	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/herdml/herd/model"
	"github.com/x448/float16"
)

// Rounder makes herd's matrix products multiply what llama.cpp's CPU
// backend multiplies for the weight types of a GGUF file. ggml converts
// the input of a product to the weight type's "vec_dot_type" before the
// dot products: F32 weights take the input as it is, F16 and BF16 weights
// an input rounded (to nearest even) to F16 or BF16, and Q8_0 weights an
// input quantized to Q8_0 blocks (32 values; d = max|x|/127 stored as f16;
// q = x·(127/max|x|) rounded to nearest even, as ggml's x86 quantize_row_q8_0
// does), whose dot product with a weight block is d_w·d_x·Σ q_w·q_x.
// Rounder returns the input dequantized (q·f16(d)), so herd's GEMM over the
// dequantized weights computes the same sums up to float rounding and
// summation order. This covers every projection of every layer and the
// language-model head (the tied head multiplies by token_embd); the
// embedding lookup is no product, and attention's products use the KV
// cache's type (herd's is F32, like an F32 llama.cpp cache).
//
// Rounder implements model.InputRounder. It is not safe for concurrent
// use (it rounds into one buffer), like the model it is installed on.
type Rounder struct {
	layers [][model.ProjHead]Type // weight type of each layer's projections
	head   Type
	buf    []float32
}

// layerProjections are the tensor names of model.ProjQ … model.ProjDown.
var layerProjections = [model.ProjHead]string{
	"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
	"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
}

// Rounder returns the input rounding llama.cpp applies to the products
// of g's weight types, or nil when every matrix is F32 (nothing is
// rounded) or the file's types were not read (Params is nil).
func (g *Model) Rounder() *Rounder {
	if g.Types == nil {
		return nil
	}
	c := g.Config
	r := &Rounder{layers: make([][model.ProjHead]Type, c.NumHiddenLayers), head: g.Types["lm_head.weight"]}
	if c.TieWordEmbeddings {
		r.head = g.Types["model.embed_tokens.weight"]
	}
	rounds := r.head != F32
	for l := range r.layers {
		for p, name := range layerProjections {
			t := g.Types[fmt.Sprintf("model.layers.%d.%s", l, name)]
			r.layers[l][p] = t
			rounds = rounds || t != F32
		}
	}
	if !rounds {
		return nil
	}
	return r
}

// RoundInput implements model.InputRounder.
func (r *Rounder) RoundInput(layer int, p model.Projection, x []float32, rows, cols int) []float32 {
	t := r.head
	if p != model.ProjHead {
		t = r.layers[layer][p]
	}
	if t == F32 {
		return x
	}
	if cap(r.buf) < len(x) {
		r.buf = make([]float32, len(x))
	}
	y := r.buf[:len(x)]
	switch t {
	case F16:
		for i, v := range x {
			y[i] = float16.Fromfloat32(v).Float32()
		}
	case BF16:
		for i, v := range x {
			y[i] = safetensors.BF16ToFloat32(safetensors.Float32ToBF16(v))
		}
	case Q8_0:
		// A Q8_0 weight's rows split into blocks, so the input's do too.
		for b := 0; b+qk8 <= len(x); b += qk8 {
			roundQ8Activations(y[b:b+qk8], x[b:b+qk8])
		}
	}
	return y
}

// roundQ8Activations sets y to the 32 values x quantized to a Q8_0 block
// as ggml's x86 quantize_row_q8_0 quantizes a product's input, and
// dequantized: the scale d = amax/127 is stored as f16, the quants are
// x·(127/amax) in float32 rounded to nearest even (the SIMD path's
// _MM_ROUND_NEAREST, unlike the reference quantizer's roundf that
// quantizeQ8Block follows for weights), and y = q·f16(d).
func roundQ8Activations(y, x []float32) {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := float16.Fromfloat32(amax / 127).Float32()
	var id float32
	if amax != 0 {
		id = 127 / amax
	}
	for i, v := range x {
		y[i] = float32(math.RoundToEven(float64(v*id))) * d
	}
}

// EmulateLlamaCpp installs on m, a model of g's configuration and
// parameters, the rounding of products' inputs llama.cpp applies for g's
// weight types, and reports whether there was any (false for an all-F32
// file).
func (g *Model) EmulateLlamaCpp(m *model.Model) bool {
	r := g.Rounder()
	if r == nil {
		return false
	}
	m.InputRounder = r
	return true
}
