package modeltest

import (
	"math"
	"math/rand/v2"

	"github.com/herdml/herd/model"
)

// TinyConfig is a small valid Llama configuration for gradient checks:
// vocabulary 37, hidden 24, FFN 40, 2 layers, 4 heads over 2 KV heads of
// dimension 8, max_position_embeddings 64 and initializer range 0.3. tied
// ties lm_head to the embedding; llama3 uses rope_theta 500000 with llama3
// RoPE scaling (factor 8 over an original context of 8, which puts its
// frequencies in both the scaled and the interpolated bands).
func TinyConfig(tied, llama3 bool) model.Config {
	c := model.Config{
		VocabSize: 37, HiddenSize: 24, IntermediateSize: 40, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 8, RMSNormEps: 1e-5,
		RopeTheta: 10000, MaxPositionEmbeddings: 64, TieWordEmbeddings: tied,
		InitializerRange: 0.3,
	}
	if llama3 {
		c.RopeTheta = 500000
		c.RopeScaling = &model.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8}
	}
	c.Normalize()
	return c
}

// RandomBatch builds a B×T batch of random tokens and targets for c, about
// one target in seven missing (-1). With docs, each row holds several
// documents (a new one starts at about one position in four); with
// weights, the token weights are random among 0, 0.5 and 1. The batch is a
// function of rng's state.
func RandomBatch(c model.Config, B, T int, rng *rand.Rand, docs, weights bool) *model.Batch {
	b := &model.Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
	if weights {
		b.Weights = make([]float32, B*T)
	}
	if docs {
		b.DocIDs = make([]int32, B*T)
	}
	for r := 0; r < B; r++ {
		doc := int32(0)
		for i := 0; i < T; i++ {
			k := r*T + i
			b.Tokens[k] = int32(rng.IntN(c.VocabSize))
			b.Targets[k] = int32(rng.IntN(c.VocabSize))
			if rng.IntN(7) == 0 {
				b.Targets[k] = -1
			}
			if weights {
				b.Weights[k] = float32(rng.IntN(3)) * 0.5
			}
			if docs && i > 0 && rng.IntN(4) == 0 {
				doc++
			}
			if docs {
				b.DocIDs[k] = doc
			}
		}
	}
	return b
}

// Directional returns the derivative of loss along a random unit direction
// in the weights of tensor name: analytically from its gradient g, and
// numerically by central differences ([CentralDiff]) of loss, which must
// read w (e.g. call [Loss] or [Forward] with it). While loss runs, w[name]
// holds a perturbed copy; the original slice is restored afterwards.
func Directional(rng *rand.Rand, w map[string][]float64, name string, g []float32, loss func() float64) (analytic, numeric float64) {
	orig := w[name]
	dir := make([]float64, len(orig))
	var norm float64
	for j := range dir {
		dir[j] = rng.NormFloat64()
		norm += dir[j] * dir[j]
	}
	for j := range dir {
		dir[j] /= math.Sqrt(norm)
		analytic += dir[j] * float64(g[j])
	}
	pert := make([]float64, len(orig))
	w[name] = pert
	numeric = CentralDiff(func(eps float64) float64 {
		for j := range pert {
			pert[j] = orig[j] + eps*dir[j]
		}
		return loss()
	})
	w[name] = orig
	return analytic, numeric
}

// CentralDiff estimates f'(0) with a Richardson-extrapolated central
// difference of step 1e-3 (truncation error O(h⁴)).
func CentralDiff(f func(eps float64) float64) float64 {
	const h = 1e-3
	d1 := (f(h) - f(-h)) / (2 * h)
	d2 := (f(h/2) - f(-h/2)) / h
	return (4*d2 - d1) / 3
}

// Close reports whether a and b agree within abs plus rel times the larger
// magnitude.
func Close(a, b, rel, abs float64) bool {
	return math.Abs(a-b) <= abs+rel*math.Max(math.Abs(a), math.Abs(b))
}

// TopIndices returns the indices of the k largest-magnitude entries of g,
// largest first (lowest index among equals; fewer when g is shorter): the
// elements worth an element-wise finite-difference check.
func TopIndices(g []float32, k int) []int {
	var idx []int
	for n := 0; n < k; n++ {
		best := -1
		for j, v := range g {
			taken := false
			for _, i := range idx {
				taken = taken || i == j
			}
			if !taken && (best < 0 || math.Abs(float64(v)) > math.Abs(float64(g[best]))) {
				best = j
			}
		}
		if best >= 0 {
			idx = append(idx, best)
		}
	}
	return idx
}
