package model

import "math"

// refLoss is an independent, deliberately plain float64 implementation of
// the Hugging Face Llama forward pass plus the weighted cross-entropy, used
// as the oracle for finite-difference gradient checks and for the float32
// forward. It shares nothing with the production code but InvFreq (which
// the llama.cpp reference logits test independently).
func refLoss(c Config, w map[string][]float64, b *Batch) (loss float64, logits [][]float64) {
	loss, logits, _ = refForward(c, w, b)
	return loss, logits
}

// refForward is refLoss that also returns the final hidden states (the
// output of the final norm) of every token.
func refForward(c Config, w map[string][]float64, b *Batch) (loss float64, logits, hidden [][]float64) {
	C, F, V, H, Hkv, hd := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	inv := InvFreq(c)
	matvec := func(W []float64, x []float64, out int) []float64 {
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
	rms := func(x, g []float64) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		r := 1 / math.Sqrt(ss/float64(len(x))+c.RMSNormEps)
		y := make([]float64, len(x))
		for i := range x {
			y[i] = x[i] * r * g[i]
		}
		return y
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
	head := w["lm_head.weight"]
	if c.TieWordEmbeddings {
		head = w["model.embed_tokens.weight"]
	}
	var num, den float64
	for r := 0; r < b.B; r++ {
		T := b.T
		xs := make([][]float64, T)
		doc := make([]int32, T)
		pos := make([]int, T)
		for i := 0; i < T; i++ {
			k := r*T + i
			tok := int(b.Tokens[k])
			xs[i] = append([]float64(nil), w["model.embed_tokens.weight"][tok*C:(tok+1)*C]...)
			if b.DocIDs != nil {
				doc[i] = b.DocIDs[k]
			}
			if i > 0 && doc[i] == doc[i-1] {
				pos[i] = pos[i-1] + 1
			}
		}
		for l := 0; l < c.NumHiddenLayers; l++ {
			p := func(s string) []float64 { return w[layerName(l, s)] }
			qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
			for i := 0; i < T; i++ {
				xn := rms(xs[i], p("input_layernorm.weight"))
				qs[i] = matvec(p("self_attn.q_proj.weight"), xn, H*hd)
				ks[i] = matvec(p("self_attn.k_proj.weight"), xn, Hkv*hd)
				vs[i] = matvec(p("self_attn.v_proj.weight"), xn, Hkv*hd)
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
				o := matvec(p("self_attn.o_proj.weight"), att, C)
				for d := range o {
					xs[i][d] += o[d]
				}
				xn := rms(xs[i], p("post_attention_layernorm.weight"))
				g := matvec(p("mlp.gate_proj.weight"), xn, F)
				u := matvec(p("mlp.up_proj.weight"), xn, F)
				for f := range g {
					g[f] = g[f] / (1 + math.Exp(-g[f])) * u[f]
				}
				dn := matvec(p("mlp.down_proj.weight"), g, C)
				for d := range dn {
					xs[i][d] += dn[d]
				}
			}
			_ = l
		}
		for i := 0; i < T; i++ {
			k := r*T + i
			hn := rms(xs[i], w["model.norm.weight"])
			hidden = append(hidden, hn)
			lg := matvec(head, hn, V)
			logits = append(logits, lg)
			if b.Targets == nil || b.Targets[k] < 0 {
				continue
			}
			wt := 1.0
			if b.Weights != nil {
				wt = float64(b.Weights[k])
			}
			mx := math.Inf(-1)
			for _, v := range lg {
				mx = math.Max(mx, v)
			}
			var z float64
			for _, v := range lg {
				z += math.Exp(v - mx)
			}
			num += wt * (mx + math.Log(z) - lg[b.Targets[k]])
			den += wt
		}
	}
	if b.Denominator > 0 {
		den = b.Denominator
	}
	if den == 0 {
		return 0, logits, hidden
	}
	return num / den, logits, hidden
}

func layerName(l int, s string) string {
	return "model.layers." + itoa(l) + "." + s
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// refWeights copies a Params buffer into float64 maps by name.
func refWeights(p *Params) map[string][]float64 {
	w := map[string][]float64{}
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
