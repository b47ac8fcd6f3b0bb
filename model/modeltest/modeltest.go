// Package modeltest is a test helper: an independent float64 Llama forward
// pass for checking the float32 model and its users, plus the
// finite-difference tools for gradient checks against it.
//
// The reference is deliberately plain: one token at a time, float64
// throughout, with the Hugging Face Llama semantics (RMSNorm, grouped-query
// attention with RoPE including llama3 scaling, SwiGLU MLP), the document
// mask of [model.Batch.DocIDs] and the weighted mean cross-entropy of
// [model.Model.ForwardBackward]. It shares nothing with the production code
// but [model.InvFreq], which the llama.cpp reference-logits test checks
// independently. It is slow by design; use it on tiny configurations such
// as [TinyConfig].
package modeltest

import (
	"fmt"
	"math"
	"strconv"

	"github.com/herdml/herd/model"
)

// Weights copies the parameters p into float64 slices by tensor name, the
// form [Forward] reads. Perturbing an entry of the map (or replacing a
// slice) changes what the next Forward computes.
func Weights(p *model.Params) map[string][]float64 {
	w := make(map[string][]float64, len(p.Layout.Tensors))
	for i, t := range p.Layout.Tensors {
		v := p.View(i)
		d := make([]float64, len(v))
		for j, x := range v {
			d[j] = float64(x)
		}
		w[t.Name] = d
	}
	return w
}

// Forward runs the float64 reference forward pass of configuration c with
// weights w (as from [Weights]) over batch b. It returns, per token in
// row-major order (index r·T+i), the logits [B·T][vocab_size] and the final
// hidden states [B·T][hidden_size], the output of the final RMSNorm.
//
// Tokens attend only to earlier tokens of their own document
// (b.DocIDs; nil means one document per row), and positions restart at 0
// where the document id changes. The language-model head is lm_head, or
// the embedding when c.TieWordEmbeddings; weights holding "score.weight"
// (a sequence classifier, which has no language-model head) give nil
// logits.
func Forward(c model.Config, w map[string][]float64, b *model.Batch) (logits, hidden [][]float64) {
	C, F, V, H, Hkv, hd := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	inv := model.InvFreq(c)
	get := func(name string) []float64 {
		v, ok := w[name]
		if !ok {
			panic(fmt.Sprintf("modeltest: the weights have no %s", name))
		}
		return v
	}
	rope := func(x []float64, heads, pos int) {
		for h := 0; h < heads; h++ {
			v := x[h*hd : (h+1)*hd]
			for i := 0; i < hd/2; i++ {
				a := float64(pos) * inv[i]
				x0, x1 := v[i], v[i+hd/2]
				v[i] = x0*math.Cos(a) - x1*math.Sin(a)
				v[i+hd/2] = x1*math.Cos(a) + x0*math.Sin(a)
			}
		}
	}
	embed := get("model.embed_tokens.weight")
	var head []float64
	if _, classifier := w["score.weight"]; !classifier {
		if c.TieWordEmbeddings {
			head = embed
		} else {
			head = get("lm_head.weight")
		}
	}
	for r := 0; r < b.B; r++ {
		T := b.T
		xs := make([][]float64, T)
		doc := make([]int32, T)
		pos := make([]int, T)
		for i := 0; i < T; i++ {
			k := r*T + i
			tok := int(b.Tokens[k])
			xs[i] = append([]float64(nil), embed[tok*C:(tok+1)*C]...)
			if b.DocIDs != nil {
				doc[i] = b.DocIDs[k]
			}
			if i > 0 && doc[i] == doc[i-1] {
				pos[i] = pos[i-1] + 1
			}
		}
		for l := 0; l < c.NumHiddenLayers; l++ {
			p := func(s string) []float64 { return get("model.layers." + strconv.Itoa(l) + "." + s) }
			qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
			for i := 0; i < T; i++ {
				xn := rmsNorm(xs[i], p("input_layernorm.weight"), c.RMSNormEps)
				qs[i] = matVec(p("self_attn.q_proj.weight"), xn, H*hd)
				ks[i] = matVec(p("self_attn.k_proj.weight"), xn, Hkv*hd)
				vs[i] = matVec(p("self_attn.v_proj.weight"), xn, Hkv*hd)
				rope(qs[i], H, pos[i])
				rope(ks[i], Hkv, pos[i])
			}
			for i := 0; i < T; i++ {
				att := make([]float64, H*hd)
				for h := 0; h < H; h++ {
					kh := h / (H / Hkv)
					var js []int
					var sc []float64
					mx := math.Inf(-1)
					for j := 0; j <= i; j++ {
						if doc[j] != doc[i] {
							continue
						}
						var s float64
						for d := 0; d < hd; d++ {
							s += qs[i][h*hd+d] * ks[j][kh*hd+d]
						}
						s /= math.Sqrt(float64(hd))
						js = append(js, j)
						sc = append(sc, s)
						mx = math.Max(mx, s)
					}
					var z float64
					for n := range sc {
						sc[n] = math.Exp(sc[n] - mx)
						z += sc[n]
					}
					for n, j := range js {
						for d := 0; d < hd; d++ {
							att[h*hd+d] += sc[n] / z * vs[j][kh*hd+d]
						}
					}
				}
				o := matVec(p("self_attn.o_proj.weight"), att, C)
				for d := range o {
					xs[i][d] += o[d]
				}
				xn := rmsNorm(xs[i], p("post_attention_layernorm.weight"), c.RMSNormEps)
				g := matVec(p("mlp.gate_proj.weight"), xn, F)
				u := matVec(p("mlp.up_proj.weight"), xn, F)
				for f := range g {
					g[f] = g[f] / (1 + math.Exp(-g[f])) * u[f]
				}
				dn := matVec(p("mlp.down_proj.weight"), g, C)
				for d := range dn {
					xs[i][d] += dn[d]
				}
			}
		}
		for i := 0; i < T; i++ {
			hn := rmsNorm(xs[i], get("model.norm.weight"), c.RMSNormEps)
			hidden = append(hidden, hn)
			if head != nil {
				logits = append(logits, matVec(head, hn, V))
			}
		}
	}
	return logits, hidden
}

// Loss is the weighted mean cross-entropy of b under the reference
// [Forward], the loss of [model.Model.ForwardBackward]: [CrossEntropy] of
// Forward's logits.
func Loss(c model.Config, w map[string][]float64, b *model.Batch) float64 {
	logits, _ := Forward(c, w, b)
	return CrossEntropy(logits, b)
}

// CrossEntropy is the weighted mean cross-entropy of the targets of b under
// logits (per token, as from [Forward]): Σ wᵢ·nllᵢ / D over the tokens with
// a target (≥ 0), with wᵢ from b.Weights (1 where nil) and D =
// b.Denominator when positive, else Σ wᵢ; 0 when D is 0.
func CrossEntropy(logits [][]float64, b *model.Batch) float64 {
	var num, den float64
	for k, lg := range logits {
		if b.Targets == nil || b.Targets[k] < 0 {
			continue
		}
		wt := 1.0
		if b.Weights != nil {
			wt = float64(b.Weights[k])
		}
		num += wt * nllOf(lg, int(b.Targets[k]))
		den += wt
	}
	if b.Denominator > 0 {
		den = b.Denominator
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// LogSoftmax returns the log-probabilities of a row of logits, computed
// stably (shifted by the maximum).
func LogSoftmax(logits []float64) []float64 {
	lse := logSumExp(logits)
	out := make([]float64, len(logits))
	for i, v := range logits {
		out[i] = v - lse
	}
	return out
}

// nllOf is the negative log-likelihood of target under a row of logits:
// log Σ exp(logits) − logits[target].
func nllOf(logits []float64, target int) float64 {
	return logSumExp(logits) - logits[target]
}

func logSumExp(x []float64) float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, v)
	}
	var z float64
	for _, v := range x {
		z += math.Exp(v - mx)
	}
	return mx + math.Log(z)
}

// matVec is W·x for a row-major W [out, len(x)].
func matVec(W, x []float64, out int) []float64 {
	in := len(x)
	y := make([]float64, out)
	for o := 0; o < out; o++ {
		var s float64
		for i := 0; i < in; i++ {
			s += W[o*in+i] * x[i]
		}
		y[o] = s
	}
	return y
}

// rmsNorm is x / sqrt(mean(x²) + eps) · g.
func rmsNorm(x, g []float64, eps float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+eps)
	y := make([]float64, len(x))
	for i := range x {
		y[i] = x[i] * r * g[i]
	}
	return y
}
