package model

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/herdml/herd/model/kernels"
)

func TestSelectTopK(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(50)
		logits := make([]float32, n)
		for i := range logits {
			logits[i] = float32(rng.IntN(8)) // many ties
		}
		k := 1 + rng.IntN(n)
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(i)
		}
		selectTopK(idx, logits, k)
		// Every kept index must rank at least as high as every dropped one.
		for _, a := range idx[:k] {
			for _, b := range idx[k:] {
				if logits[a] < logits[b] || (logits[a] == logits[b] && a > b) {
					t.Fatalf("n=%d k=%d: kept %d (%g) ranks below dropped %d (%g)", n, k, a, logits[a], b, logits[b])
				}
			}
		}
	}
}

// sortedNucleus is nucleus by its definition: sort every candidate by
// decreasing logit (ties by lower id) and keep the shortest prefix whose
// probability reaches topP.
func sortedNucleus(idx []int32, logits, probs []float32, z, topP float64) []int32 {
	s := slices.Clone(idx)
	slices.SortFunc(s, func(a, b int32) int {
		if logits[a] != logits[b] {
			return cmp.Compare(logits[b], logits[a])
		}
		return cmp.Compare(a, b)
	})
	var cum float64
	for j, i := range s {
		cum += float64(probs[i]) / z
		if cum >= topP {
			return s[:j+1]
		}
	}
	return s
}

func TestNucleusMatchesFullSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for trial := range 400 {
		n := 1 + rng.IntN(3000)
		logits := make([]float32, n)
		scale := []float32{0.01, 1, 5, 30}[trial%4] // flat to peaked
		ties := trial%3 == 0
		for i := range logits {
			if ties {
				logits[i] = float32(rng.IntN(6)) * scale
			} else {
				logits[i] = float32(rng.NormFloat64()) * scale
			}
		}
		if trial%5 == 0 { // masked tokens, as a grammar or a ban would leave
			for range n / 2 {
				logits[rng.IntN(n)] = float32(math.Inf(-1))
			}
			logits[rng.IntN(n)] = 0
		}
		topP := []float64{0.01, 0.5, 0.9, 0.999, 1 - 1e-12}[rng.IntN(5)]
		probs := make([]float32, n)
		mx := slices.Max(logits)
		var z float64
		for i, l := range logits {
			probs[i] = kernels.Exp(l - mx)
			z += float64(probs[i])
		}
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(i)
		}
		want := sortedNucleus(idx, logits, probs, z, topP)
		got := nucleus(idx, logits, probs, z, topP, mx, 1)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (n=%d, top_p=%g, ties %v): nucleus has %d tokens %v…, want %d %v…",
				trial, n, topP, ties, len(got), got[:min(5, len(got))], len(want), want[:min(5, len(want))])
		}
	}
}

// TestSampleTopPDistribution checks that top-p sampling draws each token
// of the nucleus with its renormalised probability and never one outside.
func TestSampleTopPDistribution(t *testing.T) {
	logits := []float32{2, 1, 3, 0.5, -1, 2.5, 0}
	opt := SampleOptions{Temperature: 0.7, TopP: 0.8, Seed: 5}
	// Expected: softmax(logits/T), sorted, cut where the mass reaches 0.8.
	p := make([]float64, len(logits))
	var z float64
	for i, l := range logits {
		p[i] = math.Exp(float64(l) / 0.7)
		z += p[i]
	}
	order := []int{2, 5, 0, 1, 3, 6, 4}
	want := make([]float64, len(logits))
	var cum, kept float64
	for _, i := range order {
		want[i] = p[i]
		kept += p[i]
		if cum += p[i] / z; cum >= opt.TopP {
			break
		}
	}
	const draws = 200000
	counts := make([]int, len(logits))
	s := NewSampler(opt, 0)
	for range draws {
		counts[s.Sample(logits)]++
	}
	if a := testing.AllocsPerRun(100, func() { s.Sample(logits) }); a != 0 {
		t.Errorf("top-p sampling allocates %v times per token, want 0", a)
	}
	for i := range logits {
		w := want[i] / kept
		got := float64(counts[i]) / draws
		sd := math.Sqrt(w*(1-w)/draws) + 1e-12
		if math.Abs(got-w) > 5*sd {
			t.Errorf("token %d drawn with frequency %.4f, want %.4f (±%.4f)", i, got, w, 5*sd)
		}
		if w == 0 && counts[i] > 0 {
			t.Errorf("token %d lies outside the nucleus but was drawn %d times", i, counts[i])
		}
	}
}

// BenchmarkSampleTopP samples from a Llama 3-sized vocabulary with top_p =
// 0.9 and no top-k ("nucleus"), against sorting every candidate first
// ("fullsort", what it did before), on logits spread like a trained
// model's (normal, sd 3).
func BenchmarkSampleTopP(b *testing.B) {
	const V = 128256
	rng := rand.New(rand.NewPCG(7, 7))
	logits := make([]float32, V)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64()) * 3
	}
	opt := SampleOptions{Temperature: 0.8, TopP: 0.9, Seed: 1}
	b.Run("nucleus", func(b *testing.B) {
		s := NewSampler(opt, 0)
		for b.Loop() {
			s.Sample(logits)
		}
	})
	b.Run("fullsort", func(b *testing.B) {
		idx, probs := make([]int32, V), make([]float32, V)
		for b.Loop() {
			for i := range idx {
				idx[i] = int32(i)
			}
			var z float64
			for i, l := range logits {
				probs[i] = kernels.Exp(l / 0.8)
				z += float64(probs[i])
			}
			sortedNucleus(idx, logits, probs, z, opt.TopP)
		}
	})
}
