package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/herdml/herd/model/kernels"
)

func tinyConfig(tied, llama3 bool) Config {
	c := Config{
		VocabSize: 37, HiddenSize: 24, IntermediateSize: 40, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 8, RMSNormEps: 1e-5,
		RopeTheta: 10000, MaxPositionEmbeddings: 64, TieWordEmbeddings: tied,
		InitializerRange: 0.3,
	}
	if llama3 {
		c.RopeTheta = 500000
		c.RopeScaling = &RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8}
	}
	c.Normalize()
	return c
}

// randomBatch builds a batch with several documents per row, some targets
// missing and non-uniform weights.
func randomBatch(c Config, B, T int, rng *rand.Rand, docs, weights bool) *Batch {
	b := &Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
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

// TestGradientsFiniteDifference checks the analytic float32 gradient of
// every tensor of the whole model against central finite differences of an
// independent float64 implementation (refLoss): along a random unit
// direction per tensor, and element-wise for the largest and a few random
// elements.
func TestGradientsFiniteDifference(t *testing.T) {
	cases := []struct {
		name                  string
		tied, llama3, docs, w bool
	}{
		{"untied-gqa", false, false, false, false},
		{"tied-llama3rope", true, true, false, false},
		{"docmask-weights", false, true, true, true},
		{"tied-docmask", true, false, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyConfig(tc.tied, tc.llama3)
			m, err := New(c, kernels.Serial{})
			if err != nil {
				t.Fatal(err)
			}
			m.Params.Init(c, 7)
			m.attnBlock = 5 // several uneven query blocks per row
			rng := rand.New(rand.NewPCG(1, 2))
			// Perturb norm weights away from 1 so their gradients are generic.
			for i, ti := range m.Params.Layout.Tensors {
				if len(ti.Shape) == 1 {
					for j, v := range m.Params.View(i) {
						m.Params.View(i)[j] = v + float32(rng.NormFloat64()*0.1)
					}
				}
			}
			b := randomBatch(c, 2, 12, rng, tc.docs, tc.w)
			m.EnsureGrads()
			m.Grads.Zero()
			loss, err := m.ForwardBackward(b)
			if err != nil {
				t.Fatal(err)
			}
			w := refWeights(m.Params)
			want, _ := refLoss(c, w, b)
			if math.Abs(loss-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Fatalf("loss %.9g, float64 reference %.9g", loss, want)
			}
			worst := 0.0
			check := func(what string, analytic, numeric float64) {
				r := math.Abs(analytic-numeric) / math.Max(math.Abs(numeric), 1e-4)
				worst = math.Max(worst, r)
				if !close(analytic, numeric, 2e-4, 1e-7) {
					t.Errorf("%s: analytic %.7g, numeric %.7g", what, analytic, numeric)
				}
			}
			for ti, info := range m.Params.Layout.Tensors {
				g := m.Grads.View(ti)
				orig := w[info.Name]
				analytic, numeric := directional(rng, w, info.Name, g, func() float64 {
					l, _ := refLoss(c, w, b)
					return l
				})
				check(info.Name+" (random direction)", analytic, numeric)
				pert := make([]float64, len(orig))
				w[info.Name] = pert
				elems := append(topIndices(g, 2), rng.IntN(len(g)), rng.IntN(len(g)))
				for _, j := range elems {
					copy(pert, orig)
					numeric := centralDiff(func(eps float64) float64 {
						pert[j] = orig[j] + eps
						l, _ := refLoss(c, w, b)
						return l
					})
					check(fmt.Sprintf("%s[%d]", info.Name, j), float64(g[j]), numeric)
				}
				w[info.Name] = orig
			}
			t.Logf("worst relative error %.3g", worst)
		})
	}
}

// directional returns the derivative of loss along a random unit direction
// in the weights of tensor name: analytically from its gradient g, and
// numerically by central differences of loss (which reads w). w[name] is
// restored afterwards.
func directional(rng *rand.Rand, w map[string][]float64, name string, g []float32, loss func() float64) (analytic, numeric float64) {
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
	numeric = centralDiff(func(eps float64) float64 {
		for j := range pert {
			pert[j] = orig[j] + eps*dir[j]
		}
		return loss()
	})
	w[name] = orig
	return analytic, numeric
}

// centralDiff estimates f'(0) with a Richardson-extrapolated central
// difference (truncation error O(h⁴)).
func centralDiff(f func(eps float64) float64) float64 {
	const h = 1e-3
	d1 := (f(h) - f(-h)) / (2 * h)
	d2 := (f(h/2) - f(-h/2)) / h
	return (4*d2 - d1) / 3
}

func close(a, b, rel, abs float64) bool {
	return math.Abs(a-b) <= abs+rel*math.Max(math.Abs(a), math.Abs(b))
}

func topIndices(g []float32, k int) []int {
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

// TestHiddenHeadGradient checks BackwardWith for a loss that adds a scalar
// head on the last token's hidden state (a reward model) to the weighted
// language-model loss, against finite differences of the float64
// reference, and SequenceLogProbs against the reference log-softmax.
func TestHiddenHeadGradient(t *testing.T) {
	c := tinyConfig(false, true)
	m, err := New(c, kernels.Serial{})
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(c, 11)
	rng := rand.New(rand.NewPCG(7, 8))
	b := randomBatch(c, 2, 9, rng, true, true)
	C := c.HiddenSize
	u := make([]float64, C) // the head's weights
	for i := range u {
		u[i] = rng.NormFloat64()
	}
	nll, err := m.Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	coef := make([]float32, len(nll))
	LossCoefficients(b, nll, coef)
	dHidden := make([]float32, b.B*b.T*C)
	for r := 0; r < b.B; r++ {
		last := (r+1)*b.T - 1
		for j := range u {
			dHidden[last*C+j] = float32(u[j])
		}
	}
	m.EnsureGrads()
	m.Grads.Zero()
	m.BackwardWith(coef, dHidden)

	w := refWeights(m.Params)
	loss := func() float64 {
		l, _, hidden := refForward(c, w, b)
		for r := 0; r < b.B; r++ {
			for j, uj := range u {
				l += uj * hidden[(r+1)*b.T-1][j]
			}
		}
		return l
	}
	for ti, info := range m.Params.Layout.Tensors {
		analytic, numeric := directional(rng, w, info.Name, m.Grads.View(ti), loss)
		if !close(analytic, numeric, 2e-4, 1e-6) {
			t.Errorf("%s: analytic %.7g, numeric %.7g", info.Name, analytic, numeric)
		}
	}

	// Sequence log-probabilities from the reference logits.
	_, logits, _ := refForward(c, w, b)
	got := SequenceLogProbs(b, nll)
	for r := 0; r < b.B; r++ {
		var want float64
		for i := r * b.T; i < (r+1)*b.T; i++ {
			if b.Targets[i] < 0 {
				continue
			}
			mx := math.Inf(-1)
			for _, v := range logits[i] {
				mx = math.Max(mx, v)
			}
			var z float64
			for _, v := range logits[i] {
				z += math.Exp(v - mx)
			}
			want += float64(b.Weights[i]) * (logits[i][b.Targets[i]] - mx - math.Log(z))
		}
		if math.Abs(got[r]-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Errorf("row %d: sequence log-prob %.6g, reference %.6g", r, got[r], want)
		}
	}
}
