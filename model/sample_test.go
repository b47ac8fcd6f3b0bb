package model_test

import (
	"context"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/modeltest"
)

// TestGenerateRejectsBadOptions: every out-of-range sampling option is an
// error naming the option and its allowed range, never a silent no-op or
// a wrong answer (max_tokens near MaxInt used to overflow the length).
func TestGenerateRejectsBadOptions(t *testing.T) {
	c := modeltest.TinyConfig(true, false) // max_position_embeddings 64
	m := newTestModel(t, c, 2)
	prompt := [][]int32{{1, 2, 3, 4}}
	cases := []struct {
		name string
		opt  model.SampleOptions
		want string // "" = accepted
	}{
		{"defaults", model.SampleOptions{MaxTokens: 3}, ""},
		{"fills the context", model.SampleOptions{MaxTokens: 60}, ""},
		{"temperature NaN", model.SampleOptions{Temperature: math.NaN(), MaxTokens: 1}, "temperature"},
		{"temperature negative", model.SampleOptions{Temperature: -0.5, MaxTokens: 1}, "temperature"},
		{"temperature +Inf", model.SampleOptions{Temperature: math.Inf(1), MaxTokens: 1}, "temperature"},
		{"top_p NaN", model.SampleOptions{Temperature: 1, TopP: math.NaN(), MaxTokens: 1}, "top_p"},
		{"top_p negative", model.SampleOptions{Temperature: 1, TopP: -0.1, MaxTokens: 1}, "top_p"},
		{"top_p above 1", model.SampleOptions{Temperature: 1, TopP: 1.5, MaxTokens: 1}, "top_p"},
		{"top_k negative", model.SampleOptions{Temperature: 1, TopK: -4, MaxTokens: 1}, "top_k must be >= 0 (0 = no limit), got -4"},
		{"max_tokens negative", model.SampleOptions{MaxTokens: -5}, "max_tokens must be >= 0, got -5"},
		{"max_tokens past the context", model.SampleOptions{MaxTokens: 61}, "at most 60 new tokens"},
		{"max_tokens MaxInt", model.SampleOptions{MaxTokens: math.MaxInt}, "at most 60 new tokens"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gens, err := m.Generate(context.Background(), prompt, tc.opt)
			if tc.want == "" {
				if err != nil || len(gens) != 1 || len(gens[0].Tokens) != tc.opt.MaxTokens {
					t.Fatalf("got %v, %v; want %d tokens", gens, err, tc.opt.MaxTokens)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestGenerateNonFiniteLogits: weights with a NaN or an infinity give
// non-finite logits; Generate reports the sequence and position instead of
// emitting token 0 (greedy argmax over NaN) forever.
func TestGenerateNonFiniteLogits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tensor string
		index  int // of the element set to value
		value  float32
		opt    model.SampleOptions
	}{
		{"final norm NaN, greedy", "model.norm.weight", 0, float32(math.NaN()), model.SampleOptions{MaxTokens: 5}},
		{"final norm NaN, sampled", "model.norm.weight", 0, float32(math.NaN()), model.SampleOptions{Temperature: 0.8, TopK: 5, TopP: 0.9, MaxTokens: 5}},
		// One element of the head's row 3: only logit 3 is not finite, and
		// greedy argmax would pass over a NaN.
		{"one head row NaN, greedy", "lm_head.weight", 3 * 24, float32(math.NaN()), model.SampleOptions{MaxTokens: 5}},
		{"one head row +Inf, greedy", "lm_head.weight", 3 * 24, float32(math.Inf(1)), model.SampleOptions{MaxTokens: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := modeltest.TinyConfig(false, false)
			m := newTestModel(t, c, 2)
			m.Params.Get(tc.tensor)[tc.index] = tc.value
			gens, err := m.Generate(context.Background(), [][]int32{{1, 2}, {3, 4, 5}}, tc.opt)
			if err == nil || !strings.Contains(err.Error(), "not finite") || !strings.Contains(err.Error(), "position") || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("generated %v, error %v; want an error about non-finite logits", gens, err)
			}
			t.Log(err)
		})
	}
}

// TestGenerateReusesDecoder checks that generate calls that reuse the KV
// memory of earlier ones (of other shapes: fewer and more slots, shorter
// and longer sequences) sample exactly what a fresh model does.
func TestGenerateReusesDecoder(t *testing.T) {
	c := modeltest.TinyConfig(true, false)
	reused := newCPUTestModel(t, c, 2)
	opt := model.SampleOptions{Temperature: 0.9, TopK: 8, Seed: 3}
	runs := []struct {
		prompts [][]int32
		max     int
	}{
		{[][]int32{{1, 2, 3}, {4}, {5, 6}}, 9},
		{[][]int32{{7}}, 4},
		{[][]int32{{1, 2, 3, 4, 5, 6}, {2}, {3, 3}, {4, 1, 2}, {6}}, 20},
		{[][]int32{{2, 3}, {9, 9, 9}}, 6},
	}
	for i, r := range runs {
		opt.MaxTokens = r.max
		got, err := reused.Generate(context.Background(), r.prompts, opt)
		if err != nil {
			t.Fatal(err)
		}
		fresh := newCPUTestModel(t, c, 2)
		want, err := fresh.Generate(context.Background(), r.prompts, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("call %d: with a reused decoder %v, fresh %v", i, got, want)
		}
	}
}
