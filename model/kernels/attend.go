package kernels

import (
	"fmt"
	"math"
)

// KeyStride is the distance, in floats, between the rows of a transposed
// key cache (see AttendCached) that holds up to maxLen positions: maxLen
// rounded up to a whole number of 16-float vectors, so that the vector
// kernel reads every block of 16 positions with whole loads.
func KeyStride(maxLen int) int { return (maxLen + 15) &^ 15 }

// ScoresLen is the scratch AttendCached needs for heads query heads over
// kvHeads key/value heads and up to ldk cached positions.
func ScoresLen(heads, kvHeads, ldk int) int { return heads / kvHeads * (ldk + 1) }

// AttendCached computes one token's attention over a cached sequence, the
// attention of a decoding step: for each query head h, reading key/value
// head kh = h/(heads/kvHeads),
//
//	out_h = softmax(q_h·K_khᵀ/√headDim)·V_kh
//
// over npos cached positions. The keys are stored transposed, as a
// decoder caches them: value i of kv head kh at position t is
// kt[(kh·headDim+i)·ldk + t], so the scores of 16 positions are one vector
// of multiply-adds with no sums across lanes. The values are rows ldv
// floats apart holding kvHeads·headDim values (kv head kh at kh·headDim).
// Both are read in place, without copies. q and out hold heads·headDim
// values; q is scaled by 1/√headDim in place. scores is scratch of at
// least ScoresLen(heads, kvHeads, ldk) floats. ldk must be at least npos;
// positions past npos up to the next multiple of 16 that fits in ldk may
// be read (their values are ignored), so a KeyStride row needs no tail
// handling. It runs on the calling goroutine (call it from a Task to
// spread tokens over workers) and allocates nothing.
func AttendCached(out, q, kt []float32, ldk int, v []float32, ldv int, scores []float32, npos, heads, kvHeads, headDim int) {
	if npos <= 0 || heads <= 0 || kvHeads <= 0 || headDim <= 0 || heads%kvHeads != 0 || ldk < npos || ldv < kvHeads*headDim {
		panic(fmt.Sprintf("kernels: AttendCached: bad shape npos=%d heads=%d kvHeads=%d headDim=%d ldk=%d ldv=%d", npos, heads, kvHeads, headDim, ldk, ldv))
	}
	G := heads / kvHeads
	QD, KD := heads*headDim, kvHeads*headDim
	ktLen, vLen := (KD-1)*ldk+npos, (npos-1)*ldv+KD
	if len(out) < QD || len(q) < QD || len(kt) < ktLen || len(v) < vLen || len(scores) < G*(ldk+1) {
		panic(fmt.Sprintf("kernels: AttendCached: npos=%d heads=%d kvHeads=%d headDim=%d ldk=%d ldv=%d needs out, q of %d, kt of %d, v of %d, scores of %d; have %d, %d, %d, %d, %d",
			npos, heads, kvHeads, headDim, ldk, ldv, QD, ktLen, vLen, G*(ldk+1), len(out), len(q), len(kt), len(v), len(scores)))
	}
	Scale(float32(1/math.Sqrt(float64(headDim))), q[:QD])
	for kh := range kvHeads {
		qh, oh := q[kh*G*headDim:(kh+1)*G*headDim], out[kh*G*headDim:(kh+1)*G*headDim]
		// The positions each key row may be read at: whole vectors where
		// the rows (and the slice) have room for them.
		ktk, w := kt[kh*headDim*ldk:], npos
		if r := min(ldk, (npos+15)&^15); len(ktk) >= (headDim-1)*ldk+r {
			w = r
		}
		attendScores(scores, ldk, qh, ktk, ldk, npos, w, G, headDim)
		// The softmax's normalisation is applied to the G output rows
		// rather than to the G·npos probabilities.
		sums := scores[G*ldk : G*ldk+G]
		attendExp(scores, ldk, npos, w, G, sums)
		attendValues(oh, scores, ldk, v[kh*headDim:], ldv, npos, G, headDim)
		for g, sum := range sums {
			Scale(1/sum, oh[g*headDim:(g+1)*headDim])
		}
	}
}

// attendScores sets s[g·lds + t] = q_g·k_t for the G query rows of q (hd
// values each) and the positions t < npos of the transposed keys kt (hd
// rows ldk apart, each readable up to position w ≥ npos). Lanes past
// npos, up to w, may be written.
func attendScores(s []float32, lds int, q, kt []float32, ldk, npos, w, G, hd int) {
	if attendScoresSIMD(s, lds, q, kt, ldk, npos, w, G, hd) {
		return
	}
	for g := range G {
		sg := s[g*lds : g*lds+npos]
		clear(sg)
		for i, qi := range q[g*hd : (g+1)*hd] {
			axpyGo(qi, kt[i*ldk:i*ldk+npos], sg)
		}
	}
}

// attendExp sets each of the G score rows of s (lds apart) to
// exp(s − max s) over its first npos positions (rows readable up to w)
// and stores the row's sum in sums[g]: a softmax without the division.
func attendExp(s []float32, lds, npos, w, G int, sums []float32) {
	if attendExpSIMD(s, lds, npos, w, G, sums) {
		return
	}
	for g := range G {
		row := s[g*lds : g*lds+npos]
		m := MaxSlice(row)
		for j := range row {
			row[j] -= m
		}
		ExpSlice(row, row)
		sums[g] = Sum(row)
	}
}

// attendValues sets out_g = Σ_t p[g·ldp+t]·v[t·ldv : t·ldv+hd] for the G
// rows of out (hd values each): the probability-weighted sum of the value
// rows of attention.
func attendValues(out, p []float32, ldp int, v []float32, ldv, npos, G, hd int) {
	if attendValuesSIMD(out, p, ldp, v, ldv, npos, G, hd) {
		return
	}
	for g := range G {
		o := out[g*hd : (g+1)*hd]
		clear(o)
		for t, pt := range p[g*ldp : g*ldp+npos] {
			axpyGo(pt, v[t*ldv:t*ldv+hd], o)
		}
	}
}
