package traintest_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/model/modeltest"
	"github.com/herdml/herd/tasks"
)

// TestTrainLearnsAndSaves: a tiny model trained on a cycle of tokens ends
// far below the uniform loss, every batch the callback sees is the step's,
// and the saved directory loads back with the same parameters and the
// tokenizer, which round-trips text.
func TestTrainLearnsAndSaves(t *testing.T) {
	cfg := modeltest.TinyConfig(true, false)
	const B, T, steps = 2, 16, 60
	var seen []int
	_, loss := traintest.Train(t, cfg, 1, B, T, steps, func(step int, tokens, targets []int32) {
		seen = append(seen, step)
		for i := range tokens {
			tokens[i] = int32((i + step) % 5)
			targets[i] = int32((i + step + 1) % 5)
		}
	})
	if uniform := math.Log(float64(cfg.VocabSize)); !(loss < uniform/4) {
		t.Fatalf("loss %.3f after %d steps of a 5-token cycle, want < %.3f (uniform / 4)", loss, steps, uniform/4)
	}
	if want := []int{0, 1, 2}; len(seen) != steps || !slices.Equal(seen[:3], want) || seen[steps-1] != steps-1 {
		t.Fatalf("the callback saw steps %v", seen)
	}

	tok := traintest.ChatTokenizer(t, 600, tasks.WriteSFT)
	cfg.VocabSize = tok.VocabSize()
	p2, _ := traintest.Train(t, cfg, 2, 1, 4, 1, func(int, []int32, []int32) {})
	dir := traintest.SaveModel(t, cfg, p2, tok)
	gotCfg, got, err := checkpoint.LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	if gotCfg.VocabSize != cfg.VocabSize || !slices.Equal(got.Data, p2.Data) {
		t.Fatalf("the saved model loads back as vocab %d, same parameters %v", gotCfg.VocabSize, slices.Equal(got.Data, p2.Data))
	}
	back, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	const text = "Cutting Knowledge Date: yes no maybe"
	if dec, err := back.Decode(back.Encode([]byte(text))); err != nil || string(dec) != text || back.VocabSize() != tok.VocabSize() {
		t.Fatalf("the saved tokenizer decodes %q to %q (%v), %d ids", text, dec, err, back.VocabSize())
	}
	if small := traintest.Tokenizer(t, strings.Repeat("ab ", 50), 600); small.VocabSize() >= 600 {
		t.Fatalf("a tokenizer of a two-letter text has %d ids", small.VocabSize())
	}

}
