package kernels

import (
	"fmt"
	"math"
)

// AttendCached computes one token's attention over a cached sequence, the
// attention of a decoding step: for each query head h, reading key/value
// head kh = h/(heads/kvHeads),
//
//	out_h = softmax(q_h·K_khᵀ/√headDim)·V_kh
//
// over the npos rows of k and v. Rows of k and v are ld floats apart and
// hold kvHeads·headDim values (kv head kh at kh·headDim), so a KV cache is
// read in place, without copies or packing. q and out hold heads·headDim
// values; q is scaled by 1/√headDim in place. scores is scratch of at
// least (heads/kvHeads)·npos floats. The query heads that share a kv head
// go through the pure-Go matrix-vector kernel together (strided, so each
// key row is read once for all of them). It runs on the calling goroutine (call it
// from a Task to spread tokens over workers) and allocates nothing.
func AttendCached(out, q, k, v, scores []float32, npos, heads, kvHeads, headDim, ld int) {
	if npos <= 0 || heads <= 0 || kvHeads <= 0 || headDim <= 0 || heads%kvHeads != 0 || ld < kvHeads*headDim {
		panic(fmt.Sprintf("kernels: AttendCached: bad shape npos=%d heads=%d kvHeads=%d headDim=%d ld=%d", npos, heads, kvHeads, headDim, ld))
	}
	G := heads / kvHeads
	QD, kvLen := heads*headDim, (npos-1)*ld+kvHeads*headDim
	if len(out) < QD || len(q) < QD || len(k) < kvLen || len(v) < kvLen || len(scores) < G*npos {
		panic(fmt.Sprintf("kernels: AttendCached: npos=%d heads=%d kvHeads=%d headDim=%d ld=%d needs out, q of %d, k, v of %d, scores of %d; have %d, %d, %d, %d, %d",
			npos, heads, kvHeads, headDim, ld, QD, kvLen, G*npos, len(out), len(q), len(k), len(v), len(scores)))
	}
	Scale(float32(1/math.Sqrt(float64(headDim))), q[:QD])
	sc := scores[:G*npos]
	for kh := range kvHeads {
		// scores[g][t] = q_g·k_t for the G query heads of kv head kh.
		a := mvArgs{y: sc, x: q[kh*G*headDim:], w: k[kh*headDim:], ldy: npos, ldx: headDim, ldw: ld, n: G, in: headDim}
		matVecGo(&a, 0, npos)
		for g := range G {
			MaskedSoftmax(sc[g*npos:(g+1)*npos], 0, npos)
		}
		weightedRows(out[kh*G*headDim:(kh+1)*G*headDim], sc, npos, v[kh*headDim:], ld, G, npos, headDim)
	}
}

// weightedRows sets out_g = Σ_t p[g·ldp+t]·v[t·ldv : t·ldv+hd] for the
// rows g of out (rows·hd values): the probability-weighted sum of value
// rows of attention.
func weightedRows(out, p []float32, ldp int, v []float32, ldv, rows, npos, hd int) {
	if weightedRowsSIMD(out, p, ldp, v, ldv, rows, npos, hd) {
		return
	}
	for g := range rows {
		o := out[g*hd : (g+1)*hd]
		clear(o)
		for t, pt := range p[g*ldp : g*ldp+npos] {
			axpyGo(pt, v[t*ldv:t*ldv+hd], o)
		}
	}
}
