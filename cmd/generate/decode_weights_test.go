package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
)

// TestDecodeWeightsFlag generates greedily with -decode-weights f32 and
// bf16 from a model whose logits are nearly tied everywhere (its head's
// rows nearly equal), where BF16 rounding changes the argmax,
// and checks that each run's ids are those model.Generate gives with that
// weight type, and that the two differ (so the flag took effect).
func TestDecodeWeightsFlag(t *testing.T) {
	corpus := strings.Repeat("package main\nfunc main() { println(1, 2, 3) }\n", 40)
	tok := traintest.Tokenizer(t, corpus, 600)
	cfg := model.Config{VocabSize: tok.VocabSize(), HiddenSize: 64, IntermediateSize: 128, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 128}
	cfg.Normalize()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 4)
	// Every row of the head is row 0 times (1 + ε), |ε| ≤ 2⁻⁸: the logits
	// are nearly tied, closer than BF16's rounding (2⁻⁹ of each weight)
	// keeps them apart, so the greedy choice depends on the weight type.
	head := p.Get("lm_head.weight")
	C := cfg.HiddenSize
	rng := rand.New(rand.NewPCG(4, 4))
	for r := 1; r < cfg.VocabSize; r++ {
		e := float32(1 + (rng.Float64()*2-1)/256)
		for i := range C {
			head[r*C+i] = head[i] * e
		}
	}
	dir := traintest.SaveModel(t, cfg, p, tok)
	ids := []int32{1, 2, 3}
	const n = 32
	got := map[string][]int32{}
	for _, wt := range []kernels.WeightType{kernels.F32, kernels.BF16} {
		var out, errs bytes.Buffer
		if err := run(context.Background(), []string{"-model", dir, "-ids", "1,2,3", "-max-tokens", "32", "-decode-weights", wt.String()}, &out, &errs); err != nil {
			t.Fatalf("%v\n%s", err, errs.String())
		}
		var gen struct{ IDs []int32 }
		if err := json.Unmarshal(out.Bytes(), &gen); err != nil {
			t.Fatal(err)
		}
		m, closeModel, err := loadChecked(dir, 2, true, wt, ids, nil, n)
		if err != nil {
			t.Fatal(err)
		}
		want, err := m.Generate(context.Background(), [][]int32{ids}, model.SampleOptions{MaxTokens: n})
		closeModel()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gen.IDs, want[0].Tokens) {
			t.Fatalf("-decode-weights %v: ids %v, model.Generate %v", wt, gen.IDs, want[0].Tokens)
		}
		got[wt.String()] = gen.IDs
	}
	if slices.Equal(got["f32"], got["bf16"]) {
		t.Fatalf("-decode-weights bf16 gave the ids of f32 (%v) on a model of near ties: the flag had no effect", got["f32"])
	}
	t.Logf("f32:  %v\nbf16: %v", got["f32"], got["bf16"])
}

// TestDecodeWeightsBadValue checks the error for a type other than f32
// and bf16, given before the model is loaded.
func TestDecodeWeightsBadValue(t *testing.T) {
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"-model", "/nonexistent", "-ids", "1", "-max-tokens", "2", "-decode-weights", "f16"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "-decode-weights f16: must be f32 or bf16") {
		t.Fatalf("error %v, want one naming -decode-weights f16", err)
	}
}
