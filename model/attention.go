package model

import "math"

// defaultAttnBlock is the number of query rows attention processes
// together. Each block of rows only multiplies against the keys it may see
// (from the start of its first row's document to its last row), which skips
// most of the masked upper triangle at the cost of smaller GEMMs.
const defaultAttnBlock = 32

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
		att := t.a.att[b*T*QD+h*hd:]
		start := t.ws.start[b*T : (b+1)*T]
		for i0 := 0; i0 < T; i0 += t.m.attnBlock {
			i1 := min(i0+t.m.attnBlock, T)
			j0 := int(start[i0])
			rows, keys := i1-i0, i1-j0
			be.GemmSerial(false, true, rows, keys, hd, scale, q[i0*QD:], QD, k[j0*KD:], KD, 0, p[i0*T+j0:], T)
			for i := i0; i < i1; i++ {
				maskedSoftmax(p[i*T:(i+1)*T], int(start[i]), i+1)
			}
			be.GemmSerial(false, false, rows, hd, keys, 1, p[i0*T+j0:], T, v[j0*KD:], KD, 0, att[i0*QD:], QD)
		}
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
			start := ws.start[b*T : (b+1)*T]
			for i0 := 0; i0 < T; i0 += t.m.attnBlock {
				i1 := min(i0+t.m.attnBlock, T)
				j0 := int(start[i0])
				rows, keys := i1-i0, i1-j0
				pb, dpb := p[i0*T+j0:], dp[i0*T+j0:]
				// dP = dO·Vᵀ, dV += Pᵀ·dO.
				be.GemmSerial(false, true, rows, keys, hd, 1, datt[i0*QD:], QD, v[j0*KD:], KD, 0, dpb, T)
				be.GemmSerial(true, false, keys, hd, rows, 1, pb, T, datt[i0*QD:], QD, 1, dv[j0*KD:], KD)
				// dS = P ∘ (dP − rowsum(P ∘ dP)); P is zero outside the mask.
				for i := i0; i < i1; i++ {
					pr := p[i*T+j0 : i*T+i1]
					dr := dp[i*T+j0 : i*T+i1]
					var dot float32
					for j, pv := range pr {
						dot += pv * dr[j]
					}
					for j, pv := range pr {
						dr[j] = pv * (dr[j] - dot)
					}
				}
				// dQ = dS·K/√d, dK += dSᵀ·Q/√d.
				be.GemmSerial(false, false, rows, hd, keys, scale, dpb, T, k[j0*KD:], KD, 0, dq[i0*QD:], QD)
				be.GemmSerial(true, false, keys, hd, rows, scale, dpb, T, q[i0*QD:], QD, 1, dk[j0*KD:], KD)
			}
		}
	}
}
