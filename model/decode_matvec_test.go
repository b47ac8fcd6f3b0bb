package model_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/modeltest"
)

// TestDecodeMatVecMatchesGemm runs the same decoding steps — a prefill,
// then steps of 1…20 rows (one token for each of several slots) — on a
// decoder with its fast paths (the matrix-vector product for few rows,
// the packed product from 8 rows where the build has it) and on one that
// runs every projection through Gemm, and compares the logits. The tiny
// config's sizes (hidden 24, FFN 40, vocab 37) are below the packed
// panels' 32 outputs; the second config's hidden and FFN sizes are
// whole panels and its vocabulary (70) is not.
func TestDecodeMatVecMatchesGemm(t *testing.T) {
	wide := model.Config{VocabSize: 70, HiddenSize: 64, IntermediateSize: 96, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 64, RopeTheta: 10000}
	wide.Normalize()
	for _, c := range []model.Config{modeltest.TinyConfig(false, true), wide} {
		decodeMatchesGemm(t, c)
	}
}

func decodeMatchesGemm(t *testing.T, c model.Config) {
	fast := newCPUTestModel(t, c, 2)
	ref := newCPUTestModel(t, c, 2)
	model.SetDecodeGemm(ref, true)
	const slots = 20
	df, err := fast.NewDecoder(slots, 40)
	if err != nil {
		t.Fatal(err)
	}
	dr, err := ref.NewDecoder(slots, 40)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	tok := func() int32 { return int32(rng.IntN(c.VocabSize)) }
	var ss []int
	var toks [][]int32
	for s := range slots {
		ss = append(ss, s)
		toks = append(toks, []int32{tok(), tok(), tok()})
	}
	compare := func(what string, ss []int, toks [][]int32) {
		t.Helper()
		lf, err := df.Step(ss, toks, false)
		if err != nil {
			t.Fatal(err)
		}
		lr, err := dr.Step(ss, toks, false)
		if err != nil {
			t.Fatal(err)
		}
		for i := range lr {
			if d := math.Abs(float64(lf[i] - lr[i])); d > 1e-4*(1+math.Abs(float64(lr[i]))) {
				t.Fatalf("hidden %d, %s of %d rows: logit %d = %g on the fast paths, %g with Gemm", c.HiddenSize, what, len(ss), i, lf[i], lr[i])
			}
		}
	}
	compare("prefill", ss, toks)
	for n := 1; n <= slots; n++ {
		ss, toks = ss[:0], toks[:0]
		for _, s := range rng.Perm(slots)[:n] {
			ss = append(ss, s)
			toks = append(toks, []int32{tok()})
		}
		compare("step", ss, toks)
	}
}
