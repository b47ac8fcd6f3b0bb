package model_test

import (
	"context"
	"testing"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/modeltest"
)

// TestGenerateSharedPrefillOnce draws k samples from several prompts: each
// prompt is run forward once (the processed-token count is the prompts'
// lengths plus the fed samples, not k copies of every prompt), and every
// sample equals the one drawn from its prompt alone, or with k = 1, from
// the same stream — the batch does not change what a sample is.
func TestGenerateSharedPrefillOnce(t *testing.T) {
	c := modeltest.TinyConfig(false, false)
	m := newTestModel(t, c, 9)
	ctx := context.Background()
	prompts := [][]int32{{1, 2, 3, 4, 5, 6, 7}, {8, 9}, {10, 11, 12, 13}}
	const k = 4
	stream := func(i, j int) uint64 { return uint64(1000*i + j) }
	opt := model.SampleOptions{Temperature: 1.1, TopK: 12, Seed: 5, MaxTokens: 9, StopTokens: []int32{3}}
	res, err := m.GenerateShared(ctx, prompts, k, opt, stream)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	distinct := map[string]bool{}
	for i, p := range prompts {
		want += int64(len(p))
		for j, g := range res.Samples[i] {
			fed := int64(len(g.Tokens))
			if !g.Stopped {
				fed-- // the last token of a sample cut by MaxTokens is never run
			}
			want += fed
			distinct[string(rune(i))+string(intsKey(g.Tokens))] = true
			alone, err := m.GenerateShared(ctx, prompts[i:i+1], 1, opt, func(_, _ int) uint64 { return stream(i, j) })
			if err != nil {
				t.Fatal(err)
			}
			if a := alone.Samples[0][0]; !equalInts(a.Tokens, g.Tokens) || a.Stopped != g.Stopped {
				t.Fatalf("prompt %d sample %d: batched %v (stopped %v), alone %v (stopped %v)", i, j, g.Tokens, g.Stopped, a.Tokens, a.Stopped)
			}
		}
	}
	if res.Processed != want {
		t.Fatalf("processed %d tokens, want %d (each prompt once)", res.Processed, want)
	}
	if len(distinct) < len(prompts)+1 {
		t.Fatalf("the %d samples per prompt are all the same: %v", k, res.Samples)
	}
	// Generate is GenerateShared with one sample per prompt on stream i.
	gens, err := m.Generate(ctx, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	one, err := m.GenerateShared(ctx, prompts, 1, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range prompts {
		if !equalInts(gens[i].Tokens, one.Samples[i][0].Tokens) {
			t.Fatalf("prompt %d: Generate %v, GenerateShared %v", i, gens[i].Tokens, one.Samples[i][0].Tokens)
		}
	}
	if _, err := m.GenerateShared(ctx, prompts, 0, opt, nil); err == nil {
		t.Fatal("k = 0 accepted")
	}
}

func intsKey(x []int32) []rune {
	r := make([]rune, len(x))
	for i, v := range x {
		r[i] = rune(v) + 1
	}
	return r
}
