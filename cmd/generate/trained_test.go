package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/model"
)

// maxChat is one training conversation of the trained model: the user
// gives three digits, the assistant answers the largest.
func maxChat(r *rand.Rand) []tokenizer.Message {
	d := [3]int{r.IntN(10), r.IntN(10), r.IntN(10)}
	return []tokenizer.Message{
		{Role: "user", Content: fmt.Sprintf("Max: %d %d %d", d[0], d[1], d[2])},
		{Role: "assistant", Content: fmt.Sprint(max(d[0], d[1], d[2]))},
	}
}

// chatTrainedModel trains a tokenizer and a tiny Llama with the SFT loss
// (assistant tokens and the <|eot_id|> that ends them) on rendered Llama
// 3.1 conversations, so that it answers and stops; it returns the saved
// directory (with tokenizer and generation_config.json) and the tokenizer.
func chatTrainedModel(t *testing.T) (string, *tokenizer.Tokenizer) {
	t.Helper()
	var corpus strings.Builder
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		m := maxChat(r)
		fmt.Fprintf(&corpus, "system\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nuser\n\n%s assistant\n\n%s\n", m[0].Content, m[1].Content)
	}
	tok := traintest.Tokenizer(t, corpus.String(), 600)
	cfg := model.Config{VocabSize: tok.VocabSize(), HiddenSize: 64, IntermediateSize: 128, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 96, TieWordEmbeddings: true}
	cfg.Normalize()
	const B, T, steps = 8, 64, 250
	p, loss := traintest.Train(t, cfg, 3, B, T, steps, func(_ int, tokens, targets []int32) {
		for b := range B {
			c, err := tok.RenderChat(maxChat(r), tokenizer.ChatOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(c.IDs) > T {
				t.Fatalf("a rendered conversation has %d tokens, more than T = %d", len(c.IDs), T)
			}
			row, tgt := tokens[b*T:(b+1)*T], targets[b*T:(b+1)*T]
			clear(row)
			for i := range tgt {
				tgt[i] = -1
			}
			copy(row, c.IDs)
			for i := 0; i+1 < len(c.IDs); i++ {
				if c.Target[i+1] {
					tgt[i] = c.IDs[i+1]
				}
			}
		}
	})
	t.Logf("SFT %d steps: loss %.4f", steps, loss)
	return traintest.SaveModel(t, cfg, p, tok), tok
}

// TestTrainedChatEndToEnd is issue 12's must-show 4 on a model herd
// trained: -chat renders the Llama 3.1 template (BOS once, at the start),
// the reply stops at <|eot_id|> well before -max-tokens, the text equals
// the decoding of the ids the id mode generates for the same rendered
// prompt (stopped at the eot, which the id mode leaves out), a multi-turn chat
// keeps its history, and the context limit is enforced on text prompts.
func TestTrainedChatEndToEnd(t *testing.T) {
	dir, tok := chatTrainedModel(t)
	ctx := context.Background()
	eot, ok := tok.SpecialID(tokenizer.EOT)
	if !ok {
		t.Fatal("the tokenizer has no <|eot_id|>")
	}
	bos, _ := tok.SpecialID(tok.Config().BOS)
	correct := 0
	for _, q := range [][3]int{{3, 1, 2}, {7, 9, 4}, {5, 0, 8}, {6, 6, 1}} {
		user := fmt.Sprintf("Max: %d %d %d", q[0], q[1], q[2])
		var out, errs bytes.Buffer
		if err := run(ctx, []string{"-model", dir, "-chat", "-prompt", user, "-max-tokens", "20", "-temperature", "0"}, &out, &errs); err != nil {
			t.Fatalf("%v\n%s", err, errs.String())
		}
		reply := strings.TrimSuffix(out.String(), "\n")

		c, err := tok.RenderChat([]tokenizer.Message{{Role: "user", Content: user}}, tokenizer.ChatOptions{AddGenerationPrompt: true})
		if err != nil {
			t.Fatal(err)
		}
		if c.IDs[0] != bos || slices.Index(c.IDs[1:], bos) >= 0 {
			t.Fatalf("the rendered prompt must start with BOS %d once: %v", bos, c.IDs)
		}
		strs := make([]string, len(c.IDs))
		for i, id := range c.IDs {
			strs[i] = fmt.Sprint(id)
		}
		var idOut bytes.Buffer
		if err := run(ctx, []string{"-model", dir, "-ids", strings.Join(strs, ","), "-stop", fmt.Sprint(eot), "-max-tokens", "20"}, &idOut, &errs); err != nil {
			t.Fatalf("%v\n%s", err, errs.String())
		}
		var gen struct {
			IDs     []int32 `json:"ids"`
			Stopped bool    `json:"stopped"`
		}
		if err := json.Unmarshal(idOut.Bytes(), &gen); err != nil {
			t.Fatalf("%v: %s", err, idOut.String())
		}
		if !gen.Stopped || len(gen.IDs) == 0 || len(gen.IDs) >= 20 {
			t.Fatalf("%q: the trained model must stop at <|eot_id|> (%d) before 20 tokens: %+v", user, eot, gen)
		}
		text, err := tok.Decode(gen.IDs)
		if err != nil {
			t.Fatal(err)
		}
		if want := string(text); reply != want {
			t.Fatalf("%q: -chat replied %q, the id mode's tokens before eot decode to %q", user, reply, want)
		}
		if strings.Contains(reply, "<|") {
			t.Fatalf("%q: special tokens leaked into the reply %q", user, reply)
		}
		if reply == fmt.Sprint(max(q[0], q[1], q[2])) {
			correct++
		}
	}
	t.Logf("%d of 4 answers correct", correct)

	// Two turns on stdin: two reply lines, each stopped at eot.
	var out, errs bytes.Buffer
	if err := runIO(ctx, []string{"-model", dir, "-chat", "-max-tokens", "10", "-temperature", "0"}, strings.NewReader("Max: 1 2 3\nMax: 4 0 2\n"), &out, &errs); err != nil {
		t.Fatalf("%v\n%s", err, errs.String())
	}
	if lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); len(lines) != 2 || len(lines[0]) > 4 || len(lines[1]) > 4 {
		t.Fatalf("two turns gave %q", out.String())
	}
	// The context is 96 positions: a long prompt or too many new tokens is refused.
	for _, args := range [][]string{
		{"-model", dir, "-chat", "-prompt", strings.Repeat("Max: 1 2 3 ", 30)},
		{"-model", dir, "-prompt", "Max: 1", "-max-tokens", "95"},
	} {
		if err := run(ctx, args, &out, &errs); err == nil || !strings.Contains(err.Error(), "context") {
			t.Errorf("%q: err %v, want the context limit", args, err)
		}
	}
}
