// Package traintest makes the small models that tests of export,
// quantization, post-training and generation load: a byte-level BPE
// tokenizer trained in milliseconds (with the Llama 3 special tokens every
// trained tokenizer carries), a short AdamW training loop for a tiny
// Llama, and a saved Hugging Face model directory with its tokenizer.
package traintest

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/optim"
)

// Tokenizer trains a byte-level BPE tokenizer of at most vocab ids on
// text: 256 bytes, the merges (fewer where text has too few pairs), then
// the 256 Llama 3 special tokens.
func Tokenizer(t testing.TB, text string, vocab int) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Train(context.Background(), []tokenizer.Corpus{tokenizer.ReaderCorpus("corpus", strings.NewReader(text))},
		tokenizer.TrainOptions{VocabSize: vocab})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// chatHeader is the words of the Llama 3.1 chat template's headers and
// default system prompt, and a few answers.
const chatHeader = "system user assistant Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n yes no maybe "

// ChatTokenizer is [Tokenizer] on the chat template's words and the 200
// task rows (seed 1) that write, tasks.WriteSFT or tasks.WritePref, gives.
// It fails t unless the tokenizer has exactly vocab ids, the vocabulary
// size the test's model configurations assume.
func ChatTokenizer(t testing.TB, vocab int, write func(w io.Writer, names []string, n int, seed uint64) error) *tokenizer.Tokenizer {
	t.Helper()
	var corpus strings.Builder
	corpus.WriteString(strings.Repeat(chatHeader, 20))
	if err := write(&corpus, nil, 200, 1); err != nil {
		t.Fatal(err)
	}
	tok := Tokenizer(t, corpus.String(), vocab)
	if tok.VocabSize() != vocab {
		t.Fatalf("the test tokenizer has %d ids, want %d", tok.VocabSize(), vocab)
	}
	return tok
}

// SpecialID is the id of tok's special token name; it fails t when tok has
// none of that name.
func SpecialID(t testing.TB, tok *tokenizer.Tokenizer, name string) int32 {
	t.Helper()
	id, ok := tok.SpecialID(name)
	if !ok {
		t.Fatalf("the tokenizer has no special token %s", name)
	}
	return id
}

// TokenizerFiles are tok's Hugging Face files by name, the Extra of a
// [checkpoint.SaveOptions].
func TokenizerFiles(t testing.TB, tok *tokenizer.Tokenizer) map[string][]byte {
	t.Helper()
	tj, cj, err := tok.MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{tokenizer.TokenizerFile: tj, tokenizer.ConfigFile: cj}
}

// SaveModel writes cfg and p with tok's files as a Hugging Face model
// directory in a new temporary directory and returns its path.
func SaveModel(t testing.TB, cfg model.Config, p *model.Params, tok *tokenizer.Tokenizer) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	if err := checkpoint.SaveModel(dir, cfg, p, checkpoint.SaveOptions{Extra: TokenizerFiles(t, tok)}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Train trains a model of cfg, initialised with seed, for steps AdamW
// steps (the default configuration, learning rate 3e-3) on two CPU
// workers. Before each step, batch fills the step's B×T tokens and
// targets (-1: no target); the buffers are reused. It returns the
// parameters and the last step's loss.
func Train(t testing.TB, cfg model.Config, seed uint64, B, T, steps int, batch func(step int, tokens, targets []int32)) (*model.Params, float64) {
	t.Helper()
	be := kernels.NewCPU(2)
	defer be.Close()
	m, err := model.New(cfg, be)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(cfg, seed)
	m.EnsureGrads()
	opt, err := optim.NewAdamW(m.Params.Layout, optim.DefaultAdamWConfig(), be)
	if err != nil {
		t.Fatal(err)
	}
	tokens, targets := make([]int32, B*T), make([]int32, B*T)
	var loss float64
	for step := range steps {
		batch(step, tokens, targets)
		m.Grads.Zero()
		if loss, err = m.ForwardBackward(&model.Batch{B: B, T: T, Tokens: tokens, Targets: targets}); err != nil {
			t.Fatal(err)
		}
		if err := opt.Update(m.Params, m.Grads, 3e-3); err != nil {
			t.Fatal(err)
		}
	}
	return m.Params, loss
}
