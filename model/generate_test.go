package model_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/model/modeltest"
)

func newTestModel(t *testing.T, c model.Config, seed uint64) *model.Model {
	t.Helper()
	m, err := model.New(c, kernels.NewSerial())
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(c, seed)
	return m
}

// TestDecoderMatchesFullForward decodes sequences of different lengths
// through the KV cache — one token at a time, as a prompt prefill plus
// single tokens, and side by side in one batch — and compares every logit
// with the full (training) forward of each sequence alone.
func TestDecoderMatchesFullForward(t *testing.T) {
	for _, tied := range []bool{false, true} {
		c := modeltest.TinyConfig(tied, true)
		m := newTestModel(t, c, 3)
		rng := rand.New(rand.NewPCG(5, 6))
		lens := []int{13, 5, 9}
		seqs := make([][]int32, len(lens))
		want := make([][]float32, len(lens))
		V := c.VocabSize
		for s, n := range lens {
			seqs[s] = make([]int32, n)
			for i := range seqs[s] {
				seqs[s][i] = int32(rng.IntN(V))
			}
			if _, err := m.Forward(&model.Batch{B: 1, T: n, Tokens: seqs[s]}); err != nil {
				t.Fatal(err)
			}
			want[s] = append([]float32(nil), m.Logits()...)
		}
		cmp := func(what string, s, pos int, got []float32) {
			t.Helper()
			for j, g := range got {
				if w := want[s][pos*V+j]; math.Abs(float64(g-w)) > 1e-5 {
					t.Fatalf("%s: seq %d pos %d logit %d: %g, full forward %g", what, s, pos, j, g, w)
				}
			}
		}
		// One token at a time, all sequences in one batch.
		dec, err := m.NewDecoder(len(lens), 16)
		if err != nil {
			t.Fatal(err)
		}
		for pos := 0; pos < 13; pos++ {
			var slots []int
			var toks [][]int32
			for s, seq := range seqs {
				if pos < len(seq) {
					slots = append(slots, s)
					toks = append(toks, seq[pos:pos+1])
				}
			}
			logits, err := dec.Step(slots, toks, false)
			if err != nil {
				t.Fatal(err)
			}
			for k, s := range slots {
				cmp("token-by-token batch", s, pos, logits[k*V:(k+1)*V])
			}
		}
		// Prefill of uneven prompt lengths in one step, then single tokens.
		for s := range seqs {
			dec.Reset(s)
		}
		split := []int{7, 2, 9}
		logits, err := dec.Step([]int{0, 1, 2}, [][]int32{seqs[0][:7], seqs[1][:2], seqs[2][:9]}, true)
		if err != nil {
			t.Fatal(err)
		}
		r := 0
		for s := range seqs {
			for pos := 0; pos < split[s]; pos++ {
				cmp("prefill", s, pos, logits[r*V:(r+1)*V])
				r++
			}
		}
		for s := range seqs {
			for pos := split[s]; pos < len(seqs[s]); pos++ {
				logits, err := dec.Step([]int{s}, [][]int32{seqs[s][pos : pos+1]}, false)
				if err != nil {
					t.Fatal(err)
				}
				cmp("after prefill", s, pos, logits)
			}
		}
	}
}

func TestDecoderErrors(t *testing.T) {
	c := modeltest.TinyConfig(false, false)
	m := newTestModel(t, c, 1)
	dec, err := m.NewDecoder(2, 4)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"bad slot":   func() error { _, err := dec.Step([]int{2}, [][]int32{{1}}, false); return err },
		"dup slot":   func() error { _, err := dec.Step([]int{0, 0}, [][]int32{{1}, {1}}, false); return err },
		"overflow":   func() error { _, err := dec.Step([]int{0}, [][]int32{{1, 2, 3, 4, 5}}, false); return err },
		"bad token":  func() error { _, err := dec.Step([]int{0}, [][]int32{{int32(c.VocabSize)}}, false); return err },
		"too long":   func() error { _, err := m.NewDecoder(1, c.MaxPositionEmbeddings+1); return err },
		"mismatched": func() error { _, err := dec.Step([]int{0, 1}, [][]int32{{1}}, false); return err },
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestGenerateGreedyMatchesArgmax(t *testing.T) {
	c := modeltest.TinyConfig(true, false)
	m := newTestModel(t, c, 9)
	prompts := [][]int32{{1, 2, 3}, {4}, {5, 6, 7, 8, 9}}
	gens, err := m.Generate(context.Background(), prompts, model.SampleOptions{MaxTokens: 6})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range prompts {
		seq := append([]int32(nil), p...)
		for step := 0; step < 6; step++ {
			if _, err := m.Forward(&model.Batch{B: 1, T: len(seq), Tokens: seq}); err != nil {
				t.Fatal(err)
			}
			lg := m.Logits()
			seq = append(seq, int32(model.Argmax(lg[(len(seq)-1)*c.VocabSize:])))
		}
		got := gens[i].Tokens
		want := seq[len(p):]
		if len(got) != len(want) {
			t.Fatalf("prompt %d: %v, want %v", i, got, want)
		}
		for j := range got {
			if got[j] != want[j] {
				t.Fatalf("prompt %d: %v, want %v", i, got, want)
			}
		}
	}
}

func TestGenerateStopsAndIsDeterministic(t *testing.T) {
	c := modeltest.TinyConfig(false, false)
	m := newTestModel(t, c, 4)
	opt := model.SampleOptions{Temperature: 1.2, TopK: 10, TopP: 0.9, Seed: 42, MaxTokens: 20}
	prompts := [][]int32{{1, 2}, {3}}
	a, err := m.Generate(context.Background(), prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Generate(context.Background(), prompts, opt)
	// The first sequence alone samples the same tokens as inside the batch.
	alone, _ := m.Generate(context.Background(), prompts[:1], opt)
	if !equalInts(a[0].Tokens, b[0].Tokens) || !equalInts(a[1].Tokens, b[1].Tokens) || !equalInts(a[0].Tokens, alone[0].Tokens) {
		t.Fatalf("not deterministic: %v %v %v", a, b, alone)
	}
	if len(a[0].Tokens) != 20 {
		t.Fatalf("generated %d tokens, want 20", len(a[0].Tokens))
	}
	stop := a[0].Tokens[3]
	opt.StopTokens = []int32{stop}
	s, _ := m.Generate(context.Background(), prompts[:1], opt)
	first := 0
	for first < len(a[0].Tokens) && a[0].Tokens[first] != stop {
		first++
	}
	if !s[0].Stopped || !equalInts(s[0].Tokens, a[0].Tokens[:first]) {
		t.Fatalf("stop token %d: got %v (stopped %v), want %v", stop, s[0].Tokens, s[0].Stopped, a[0].Tokens[:first])
	}
}

func equalInts(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSamplerDistribution checks top-k and top-p against the exact
// distribution over a small vocabulary.
func TestSamplerDistribution(t *testing.T) {
	logits := []float32{2, 1, 0.5, 0, -1, 3}
	cases := []struct {
		name string
		opt  model.SampleOptions
		want map[int32]float64
	}{
		{"plain", model.SampleOptions{Temperature: 1}, nil},
		{"topk2", model.SampleOptions{Temperature: 1, TopK: 2}, nil},
		{"topp", model.SampleOptions{Temperature: 0.7, TopP: 0.8}, nil},
	}
	soft := func(T float64, keep []int32) map[int32]float64 {
		m := map[int32]float64{}
		var z float64
		for _, i := range keep {
			z += math.Exp(float64(logits[i]) / T)
		}
		for _, i := range keep {
			m[i] = math.Exp(float64(logits[i])/T) / z
		}
		return m
	}
	cases[0].want = soft(1, []int32{0, 1, 2, 3, 4, 5})
	cases[1].want = soft(1, []int32{5, 0})
	// T=0.7: probabilities sorted 5,0,1,2,3,4; cumulative reaches 0.8 after two tokens?
	full := soft(0.7, []int32{0, 1, 2, 3, 4, 5})
	order := []int32{5, 0, 1, 2, 3, 4}
	var cum float64
	var keep []int32
	for _, i := range order {
		keep = append(keep, i)
		cum += full[i]
		if cum >= 0.8 {
			break
		}
	}
	cases[2].want = soft(0.7, keep)
	for _, tc := range cases {
		s := model.NewSampler(tc.opt, 0)
		const n = 200000
		count := map[int32]int{}
		for range n {
			count[s.Sample(logits)]++
		}
		for tok, c := range count {
			if _, ok := tc.want[tok]; !ok {
				t.Errorf("%s: sampled excluded token %d", tc.name, tok)
			}
			_ = c
		}
		for tok, p := range tc.want {
			got := float64(count[tok]) / n
			if math.Abs(got-p) > 4*math.Sqrt(p*(1-p)/n)+1e-3 {
				t.Errorf("%s: token %d frequency %.4f, want %.4f", tc.name, tok, got, p)
			}
		}
	}
}
