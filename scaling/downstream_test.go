package scaling

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/tokens/tokenstest"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/tasks"
)

func TestBuiltinItems(t *testing.T) {
	d := DownstreamSpec{Tasks: []string{"add", "sort"}, N: 20, Choices: 4, Seed: 3}
	items, err := d.Items()
	if err != nil || len(items) != 40 {
		t.Fatalf("%d items, %v", len(items), err)
	}
	for _, it := range items {
		if len(it.Choices) < 2 || len(it.Choices) > 4 {
			t.Fatalf("%+v", it)
		}
		for i, c := range it.Choices {
			ok, _, err := tasks.Verify(it.Question, c)
			if err != nil || ok != (i == it.Answer) {
				t.Fatalf("%q choice %d %q: verified %v (%v), answer %d", it.Question, i, c, ok, err, it.Answer)
			}
		}
	}
	again, _ := d.Items()
	if !slices.EqualFunc(items, again, func(a, b Item) bool { return a.Question == b.Question && slices.Equal(a.Choices, b.Choices) }) {
		t.Fatal("items differ for the same seed")
	}
}

// TestScoreModel checks the scorer against log-softmax of the logits of
// the whole sequence, computed here, and that the order of the choices
// does not matter.
func TestScoreModel(t *testing.T) {
	dir := t.TempDir()
	tok := tokenstest.TrainTokenizer(t, filepath.Join(dir, "tok"), []string{"What is 2 + 3? 5 6 7 abc def", "Sort: 3 1 2 → 1 2 3"}, 600)
	cfg := model.Config{VocabSize: tok.VocabSize(), HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 1, NumAttentionHeads: 2,
		NumKeyValueHeads: 1, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 64, TieWordEmbeddings: true, InitializerRange: 0.5}
	cfg.Normalize()
	be := kernels.NewCPU(1)
	defer be.Close()
	m, err := model.New(cfg, be)
	if err != nil {
		t.Fatal(err)
	}
	tj, cj, err := tok.MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	mdir := filepath.Join(dir, "model")
	if err := checkpoint.SaveModel(mdir, cfg, m.Params, checkpoint.SaveOptions{Extra: map[string][]byte{"tokenizer.json": tj, "tokenizer_config.json": cj}}); err != nil {
		t.Fatal(err)
	}
	items := []Item{
		{Question: "What is 2 + 3?", Choices: []string{"5", "6", "abc"}, Answer: 0},
		{Question: "Sort: 3 1 2", Choices: []string{"3 1 2", "1 2 3"}, Answer: 1},
	}
	got, err := scoreModel(context.Background(), mdir, items, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Independent: log-softmax of the logits of the full sequence.
	nll := func(q, c string) float64 {
		qi := tok.Encode([]byte(q + "\n"))
		ids := append(slices.Clone(qi), tok.Encode([]byte(c))...)
		if _, err := m.Forward(&model.Batch{B: 1, T: len(ids), Tokens: ids}); err != nil {
			t.Fatal(err)
		}
		lg := m.Logits()
		V := cfg.VocabSize
		var s float64
		for i := len(qi) - 1; i+1 < len(ids); i++ {
			row := lg[i*V : (i+1)*V]
			mx := math.Inf(-1)
			for _, v := range row {
				mx = max(mx, float64(v))
			}
			var z float64
			for _, v := range row {
				z += math.Exp(float64(v) - mx)
			}
			s += mx + math.Log(z) - float64(row[ids[i+1]])
		}
		return s / float64(len(ids)-len(qi))
	}
	var want, acc float64
	for _, it := range items {
		best := -1
		var bestNLL float64
		for i, c := range it.Choices {
			v := nll(it.Question, c)
			if best < 0 || v < bestNLL {
				best, bestNLL = i, v
			}
			if i == it.Answer {
				want += v / float64(len(items))
			}
		}
		if best == it.Answer {
			acc += 1 / float64(len(items))
		}
	}
	if math.Abs(got.NLL-want) > 1e-4*want || math.Abs(got.Accuracy-acc) > 1e-9 || got.Items != 2 {
		t.Fatalf("score %+v, want nll %.6f accuracy %.3f", got, want, acc)
	}
	// Reversing the choices changes nothing.
	rev := slices.Clone(items)
	for i := range rev {
		rev[i].Choices = slices.Clone(rev[i].Choices)
		slices.Reverse(rev[i].Choices)
		rev[i].Answer = len(rev[i].Choices) - 1 - rev[i].Answer
	}
	got2, err := scoreModel(context.Background(), mdir, rev, 1)
	if err != nil || math.Abs(got2.NLL-got.NLL) > 1e-9 || got2.Accuracy != got.Accuracy {
		t.Fatalf("reversed choices: %+v vs %+v (%v)", got2, got, err)
	}
}

func TestFitSigmoid(t *testing.T) {
	want := Sigmoid{Floor: 0.25, K: 3, X0: 2}
	var nll, acc []float64
	for x := 0.5; x <= 3.5; x += 0.25 {
		nll = append(nll, x)
		acc = append(acc, want.At(x))
	}
	got, err := fitSigmoid(nll, acc, 0.25)
	if err != nil || math.Abs(got.K-want.K) > 1e-3 || math.Abs(got.X0-want.X0) > 1e-3 {
		t.Fatalf("%+v %v, want %+v", got, err, want)
	}
}

func TestShapeRule(t *testing.T) {
	rule := Default().Shape
	base := Default().Pretrain.Model
	for _, c := range []struct{ s, hidden, heads, kv, layers, ffn int }{
		{1, 32, 1, 1, 1, 96},
		{2, 64, 2, 1, 2, 192},
		{3, 96, 3, 3, 3, 288},
		{4, 128, 4, 2, 4, 384},
	} {
		m := rule.Shape(base, c.s)
		if m.HiddenSize != c.hidden || m.NumAttentionHeads != c.heads || m.NumKeyValueHeads != c.kv || m.NumHiddenLayers != c.layers || m.IntermediateSize != c.ffn {
			t.Errorf("size %d: %+v", c.s, m)
		}
	}
}
