package gguf

import (
	"fmt"
	"math"
	"strings"

	"github.com/herdml/herd/model"
)

// ropeFreqsName is the tensor of Llama 3.1 RoPE divisors.
const ropeFreqsName = "rope_freqs.weight"

// layerNames maps the Hugging Face names inside a layer to llama.cpp's.
var layerNames = [][2]string{
	{"input_layernorm.weight", "attn_norm.weight"},
	{"self_attn.q_proj.weight", "attn_q.weight"},
	{"self_attn.k_proj.weight", "attn_k.weight"},
	{"self_attn.v_proj.weight", "attn_v.weight"},
	{"self_attn.o_proj.weight", "attn_output.weight"},
	{"post_attention_layernorm.weight", "ffn_norm.weight"},
	{"mlp.gate_proj.weight", "ffn_gate.weight"},
	{"mlp.up_proj.weight", "ffn_up.weight"},
	{"mlp.down_proj.weight", "ffn_down.weight"},
}

// ggufName is llama.cpp's name of a Hugging Face tensor, "" when it has
// none.
func ggufName(hf string) string {
	switch hf {
	case "model.embed_tokens.weight":
		return "token_embd.weight"
	case "model.norm.weight":
		return "output_norm.weight"
	case "lm_head.weight":
		return "output.weight"
	}
	rest, ok := strings.CutPrefix(hf, "model.layers.")
	if !ok {
		return ""
	}
	n, sub, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	for _, m := range layerNames {
		if sub == m[0] {
			return "blk." + n + "." + m[1]
		}
	}
	return ""
}

// ropeHeads is the number of heads whose rows a tensor's RoPE permutation
// works on: num_attention_heads for q, num_key_value_heads for k, 0 for
// tensors that are not permuted.
func ropeHeads(cfg model.Config, hf string) int {
	switch {
	case strings.HasSuffix(hf, ".self_attn.q_proj.weight"):
		return cfg.NumAttentionHeads
	case strings.HasSuffix(hf, ".self_attn.k_proj.weight"):
		return cfg.NumKeyValueHeads
	}
	return 0
}

// hfRow is the Hugging Face row stored at GGUF row g of a q or k matrix
// of the given rows and heads: llama.cpp rotates adjacent pairs where
// Hugging Face rotates halves, so GGUF row h·hd + 2i + t holds HF row
// h·hd + t·hd/2 + i (t ∈ {0, 1}, i < hd/2). heads 0 means no permutation.
func hfRow(g, rows, heads int) int {
	if heads == 0 {
		return g
	}
	hd := rows / heads
	h, r := g/hd, g%hd
	return h*hd + (r%2)*(hd/2) + r/2
}

// ropeFactors is rope_freqs.weight for a "llama3" RoPE scaling: per
// frequency the divisor llama.cpp applies to it, computed in float32 as
// convert_hf_to_gguf.py does (torch float32 arithmetic), so that the
// tensor is byte-identical to the converter's.
func ropeFactors(cfg model.Config) []float32 {
	rs := cfg.RopeScaling
	dim := cfg.HeadDim
	base := float32(cfg.RopeTheta)
	factor := float32(rs.Factor)
	low := float32(rs.LowFreqFactor)
	span := float32(rs.HighFreqFactor - rs.LowFreqFactor) // a Python float, then a torch scalar
	old := float32(rs.OriginalMaxPositionEmbeddings)
	lowWavelen := float32(float64(rs.OriginalMaxPositionEmbeddings) / rs.LowFreqFactor)
	highWavelen := float32(float64(rs.OriginalMaxPositionEmbeddings) / rs.HighFreqFactor)
	out := make([]float32, dim/2)
	for i := range out {
		exp := float32(2*i) / float32(dim)
		freq := 1 / float32(math.Pow(float64(base), float64(exp)))
		wavelen := float32(2*math.Pi) / freq
		switch {
		case wavelen < highWavelen:
			out[i] = 1
		case wavelen > lowWavelen:
			out[i] = factor
		default:
			smooth := (old/wavelen - low) / span
			out[i] = 1 / ((1-smooth)/factor + smooth)
		}
	}
	return out
}

// checkRopeFactors reports whether freqs is what cfg's RoPE scaling gives
// (within float32 rounding).
func checkRopeFactors(cfg model.Config, freqs []float32) error {
	if cfg.RopeScaling == nil || cfg.RopeScaling.RopeType != "llama3" {
		return fmt.Errorf("%s is present but the configuration has no llama3 RoPE scaling", ropeFreqsName)
	}
	want := ropeFactors(cfg)
	if len(freqs) != len(want) {
		return fmt.Errorf("%s has %d values, head_dim %d needs %d", ropeFreqsName, len(freqs), cfg.HeadDim, len(want))
	}
	for i := range want {
		if d := math.Abs(float64(freqs[i] - want[i])); d > 1e-5*math.Abs(float64(want[i])) {
			return fmt.Errorf("%s[%d] = %v, but the llama3 RoPE scaling %+v gives %v", ropeFreqsName, i, freqs[i], *cfg.RopeScaling, want[i])
		}
	}
	return nil
}
