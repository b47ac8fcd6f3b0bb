package pretrain

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/herdml/herd/data/tokens"
	"github.com/herdml/herd/data/tokens/tokenstest"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
)

// TestDocumentMask packs two crafted documents into one row through the
// stream and checks what the document mask must do to the loss: with the
// row's document ids, every token's loss equals its loss when its document
// is scored alone (no attention across the boundary, positions restarting
// at 0), the boundary position has no target, and the row's loss is the
// mean over the two documents' targets. Without the ids the second
// document sees the first and its losses change.
func TestDocumentMask(t *testing.T) {
	docA := []int32{0, 5, 9, 3, 7, 7, 2, 11, 4, 1}
	docB := []int32{0, 8, 6, 13, 6, 8, 12, 1}
	dir := t.TempDir()
	tokenstest.WriteShard(t, filepath.Join(dir, "tokens-00000.parquet"), []tokens.TokenRow{{ID: "a", Tokens: docA}, {ID: "b", Tokens: docB}}, 16)
	T := len(docA) + len(docB)
	s, err := newPackedStream([]Source{{Name: "s", Paths: []string{dir}}}, packedStreamOptions{SeqLen: T, Seed: 1, Vocab: 16}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok, tgt, ids := make([]int32, T), make([]int32, T), make([]int32, T)
	n, err := s.Next(tok, tgt, ids)
	if err != nil {
		t.Fatal(err)
	}
	first, second := docA, docB
	if tok[1] != docA[1] {
		first, second = docB, docA
	}
	k := len(first)
	if n != T-2 || tgt[k-1] != -1 || tgt[T-1] != -1 || ids[k-1] != 0 || ids[k] != 1 {
		t.Fatalf("row: %d targets, targets %v, ids %v", n, tgt, ids)
	}

	c := model.Config{VocabSize: 16, HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 2, NumAttentionHeads: 4,
		NumKeyValueHeads: 2, MaxPositionEmbeddings: 64, RopeTheta: 10000}
	be := kernels.NewCPU(1)
	defer be.Close()
	m, err := model.New(c, be)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(m.Config, 3)
	score := func(b *model.Batch) []float64 {
		nll, err := m.Forward(b)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float64, len(nll))
		for i, v := range nll {
			out[i] = float64(v)
		}
		return out
	}
	alone := func(doc []int32) []float64 {
		tg := make([]int32, len(doc))
		fillTargets(doc, tg, make([]int32, len(doc)), -1)
		return score(&model.Batch{B: 1, T: len(doc), Tokens: doc, Targets: tg})
	}
	want := append(alone(first), alone(second)...)
	packed := score(&model.Batch{B: 1, T: T, Tokens: tok, Targets: tgt, DocIDs: ids})
	var sum float64
	for i := range want {
		if math.Abs(packed[i]-want[i]) > 1e-5 {
			t.Fatalf("position %d: packed loss %v, alone %v", i, packed[i], want[i])
		}
		sum += want[i]
	}
	b := &model.Batch{B: 1, T: T, Tokens: tok, Targets: tgt, DocIDs: ids}
	m.EnsureGrads()
	loss, err := m.ForwardBackward(b)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(loss-sum/float64(T-2)) > 1e-6 {
		t.Fatalf("row loss %v, want the mean over both documents' %d targets %v", loss, T-2, sum/float64(T-2))
	}
	// Without the mask the second document attends to the first.
	unmasked := score(&model.Batch{B: 1, T: T, Tokens: tok, Targets: tgt})
	for i := range k - 1 {
		if math.Abs(unmasked[i]-want[i]) > 1e-5 {
			t.Fatalf("first document changed without the mask at %d", i)
		}
	}
	var diff float64
	for i := k; i < T-1; i++ {
		diff = max(diff, math.Abs(unmasked[i]-want[i]))
	}
	if diff < 1e-3 {
		t.Fatalf("without document ids the second document's loss changed by only %v", diff)
	}
}
