package model

import "math"

// attnFwd computes causal, document-masked grouped-query attention for
// (row, head) pairs: S = QKᵀ/√d, P = softmax over the allowed keys
// (same document, not in the future), O = PV. P is kept for Backward.
type attnFwd struct {
	m  *Model
	ws *workspace
	a  *layerActs
}

func (t *attnFwd) Run(lo, hi int) {
	c := &t.m.Config
	be := t.m.be
	T := t.ws.t
	H, G, hd := c.NumAttentionHeads, c.NumAttentionHeads/c.NumKeyValueHeads, c.HeadDim
	QD, KD := c.QDim(), c.KVDim()
	scale := float32(1 / math.Sqrt(float64(hd)))
	for idx := lo; idx < hi; idx++ {
		b, h := idx/H, idx%H
		kh := h / G
		q := t.a.q[b*T*QD+h*hd:]
		k := t.a.k[b*T*KD+kh*hd:]
		v := t.a.v[b*T*KD+kh*hd:]
		p := t.a.p[idx*T*T : (idx+1)*T*T]
		be.GemmSerial(false, true, T, T, hd, scale, q, QD, k, KD, 0, p, T)
		start := t.ws.start[b*T : (b+1)*T]
		for i := 0; i < T; i++ {
			maskedSoftmax(p[i*T:(i+1)*T], int(start[i]), i+1)
		}
		be.GemmSerial(false, false, T, hd, T, 1, p, T, v, KD, 0, t.a.att[b*T*QD+h*hd:], QD)
	}
}

// maskedSoftmax replaces row[lo:hi] by its softmax and zeroes the rest.
func maskedSoftmax(row []float32, lo, hi int) {
	clear(row[:lo])
	clear(row[hi:])
	s := row[lo:hi]
	m := s[0]
	for _, x := range s[1:] {
		if x > m {
			m = x
		}
	}
	var sum float32
	for j, x := range s {
		e := expf(x - m)
		s[j] = e
		sum += e
	}
	inv := 1 / sum
	for j := range s {
		s[j] *= inv
	}
}

// attnBwd computes dQ, dK, dV for (row, kv head) pairs, looping over the
// query heads that share the kv head so dK and dV accumulate without races.
type attnBwd struct {
	m  *Model
	ws *workspace
	a  *layerActs
}

func (t *attnBwd) Run(lo, hi int) {
	c := &t.m.Config
	be := t.m.be
	ws := t.ws
	T := ws.t
	H, Hkv, hd := c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	G := H / Hkv
	QD, KD := c.QDim(), c.KVDim()
	scale := float32(1 / math.Sqrt(float64(hd)))
	for idx := lo; idx < hi; idx++ {
		b, kh := idx/Hkv, idx%Hkv
		k := t.a.k[b*T*KD+kh*hd:]
		v := t.a.v[b*T*KD+kh*hd:]
		dk := ws.dk[b*T*KD+kh*hd:]
		dv := ws.dv[b*T*KD+kh*hd:]
		for i := 0; i < T; i++ {
			clear(dk[i*KD : i*KD+hd])
			clear(dv[i*KD : i*KD+hd])
		}
		for h := kh * G; h < (kh+1)*G; h++ {
			ph := b*H + h
			p := t.a.p[ph*T*T : (ph+1)*T*T]
			dp := ws.dp[ph*T*T : (ph+1)*T*T]
			q := t.a.q[b*T*QD+h*hd:]
			datt := ws.datt[b*T*QD+h*hd:]
			dq := ws.dq[b*T*QD+h*hd:]
			// dP = dO·Vᵀ, dV += Pᵀ·dO.
			be.GemmSerial(false, true, T, T, hd, 1, datt, QD, v, KD, 0, dp, T)
			be.GemmSerial(true, false, T, hd, T, 1, p, T, datt, QD, 1, dv, KD)
			// dS = P ∘ (dP − rowsum(P ∘ dP)).
			for i := 0; i < T; i++ {
				pr := p[i*T : (i+1)*T]
				dr := dp[i*T : (i+1)*T]
				var dot float32
				for j := 0; j <= i; j++ {
					dot += pr[j] * dr[j]
				}
				for j := 0; j <= i; j++ {
					dr[j] = pr[j] * (dr[j] - dot)
				}
				clear(dr[i+1:])
			}
			// dQ = dS·K/√d, dK += dSᵀ·Q/√d.
			be.GemmSerial(false, false, T, hd, T, scale, dp, T, k, KD, 0, dq, QD)
			be.GemmSerial(true, false, T, hd, T, scale, dp, T, q, QD, 1, dk, KD)
		}
	}
}
