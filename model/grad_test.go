package model_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/model/modeltest"
)

// TestGradientsFiniteDifference checks the analytic float32 gradient of
// every tensor of the whole model against central finite differences of an
// independent float64 implementation (modeltest.Loss): along a random unit
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
			c := modeltest.TinyConfig(tc.tied, tc.llama3)
			m, err := model.New(c, kernels.NewSerial())
			if err != nil {
				t.Fatal(err)
			}
			m.Params.Init(c, 7)
			model.SetAttnBlock(m, 5) // several uneven query blocks per row
			rng := rand.New(rand.NewPCG(1, 2))
			// Perturb norm weights away from 1 so their gradients are generic.
			for i, ti := range m.Params.Layout.Tensors {
				if len(ti.Shape) == 1 {
					for j, v := range m.Params.View(i) {
						m.Params.View(i)[j] = v + float32(rng.NormFloat64()*0.1)
					}
				}
			}
			b := modeltest.RandomBatch(c, 2, 12, rng, tc.docs, tc.w)
			m.EnsureGrads()
			m.Grads.Zero()
			loss, err := m.ForwardBackward(b)
			if err != nil {
				t.Fatal(err)
			}
			w := modeltest.Weights(m.Params)
			want := modeltest.Loss(c, w, b)
			if math.Abs(loss-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Fatalf("loss %.9g, float64 reference %.9g", loss, want)
			}
			worst := 0.0
			check := func(what string, analytic, numeric float64) {
				r := math.Abs(analytic-numeric) / math.Max(math.Abs(numeric), 1e-4)
				worst = math.Max(worst, r)
				if !modeltest.Close(analytic, numeric, 2e-4, 1e-7) {
					t.Errorf("%s: analytic %.7g, numeric %.7g", what, analytic, numeric)
				}
			}
			for ti, info := range m.Params.Layout.Tensors {
				g := m.Grads.View(ti)
				orig := w[info.Name]
				analytic, numeric := modeltest.Directional(rng, w, info.Name, g, func() float64 {
					return modeltest.Loss(c, w, b)
				})
				check(info.Name+" (random direction)", analytic, numeric)
				pert := make([]float64, len(orig))
				w[info.Name] = pert
				elems := append(modeltest.TopIndices(g, 2), rng.IntN(len(g)), rng.IntN(len(g)))
				for _, j := range elems {
					copy(pert, orig)
					numeric := modeltest.CentralDiff(func(eps float64) float64 {
						pert[j] = orig[j] + eps
						return modeltest.Loss(c, w, b)
					})
					check(fmt.Sprintf("%s[%d]", info.Name, j), float64(g[j]), numeric)
				}
				w[info.Name] = orig
			}
			t.Logf("worst relative error %.3g", worst)
		})
	}
}

// TestHiddenHeadGradient checks BackwardWith for a loss that adds a scalar
// head on the last token's hidden state (a reward model) to the weighted
// language-model loss, against finite differences of the float64
// reference, and SequenceLogProbs against the reference log-softmax.
func TestHiddenHeadGradient(t *testing.T) {
	c := modeltest.TinyConfig(false, true)
	m, err := model.New(c, kernels.NewSerial())
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(c, 11)
	rng := rand.New(rand.NewPCG(7, 8))
	b := modeltest.RandomBatch(c, 2, 9, rng, true, true)
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
	model.LossCoefficients(b, nll, coef)
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

	w := modeltest.Weights(m.Params)
	loss := func() float64 {
		logits, hidden := modeltest.Forward(c, w, b)
		l := modeltest.CrossEntropy(logits, b)
		for r := 0; r < b.B; r++ {
			for j, uj := range u {
				l += uj * hidden[(r+1)*b.T-1][j]
			}
		}
		return l
	}
	for ti, info := range m.Params.Layout.Tensors {
		analytic, numeric := modeltest.Directional(rng, w, info.Name, m.Grads.View(ti), loss)
		if !modeltest.Close(analytic, numeric, 2e-4, 1e-6) {
			t.Errorf("%s: analytic %.7g, numeric %.7g", info.Name, analytic, numeric)
		}
	}

	// Sequence log-probabilities from the reference logits.
	logits, _ := modeltest.Forward(c, w, b)
	got, count := make([]float64, b.B), make([]float64, b.B)
	model.SequenceLogProbs(b, nll, got, count)
	for r := 0; r < b.B; r++ {
		var want, wantCount float64
		for i := r * b.T; i < (r+1)*b.T; i++ {
			if b.Targets[i] < 0 {
				continue
			}
			want += float64(b.Weights[i]) * modeltest.LogSoftmax(logits[i])[b.Targets[i]]
			wantCount += float64(b.Weights[i])
		}
		if count[r] != wantCount {
			t.Errorf("row %d: count %g, want %g", r, count[r], wantCount)
		}
		if math.Abs(got[r]-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Errorf("row %d: sequence log-prob %.6g, reference %.6g", r, got[r], want)
		}
	}
}
