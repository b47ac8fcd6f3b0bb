package posttrain

import (
	"context"
	"errors"
	"io"
	"math"
	"slices"
	"testing"

	"github.com/herdml/herd/data/chatdata"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/model/modeltest"
)

// packedExample is one example of an SFT batch: its tokens and the
// weighted sum of its tokens' nll.
type packedExample struct {
	tokens []int32
	loss   float64
	weight float64
}

// sftExamples runs every batch of an SFT loader through m and splits the
// rows into their examples (documents, when packed; else the row up to its
// padding), in order.
func sftExamples(t *testing.T, m *model.Model, o chatdata.SFTOptions) (exs []packedExample, rowsWithSeveral int) {
	t.Helper()
	l, err := chatdata.NewSFTLoader(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for {
		b, err := l.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		nll, err := m.Forward(b)
		if err != nil {
			t.Fatal(err)
		}
		for r := range b.B {
			var row []packedExample
			for i := r * b.T; i < (r+1)*b.T; i++ {
				newDoc := i == r*b.T || b.DocIDs != nil && b.DocIDs[i] != b.DocIDs[i-1]
				if newDoc {
					row = append(row, packedExample{})
				}
				x := &row[len(row)-1]
				x.tokens = append(x.tokens, b.Tokens[i])
				if wt := float64(b.Weights[i]); wt != 0 && b.Targets[i] >= 0 {
					x.loss += wt * float64(nll[i])
					x.weight += wt
				}
			}
			n := 0
			for _, x := range row {
				if x.weight > 0 { // not padding
					exs = append(exs, x)
					n++
				}
			}
			if n > 1 {
				rowsWithSeveral++
			}
		}
	}
	return exs, rowsWithSeveral
}

// TestPackedEqualsAlone checks that packing SFT examples into shared rows
// (document ids: positions restart, no attention across examples) gives
// each example the same weighted nll sum as the example alone in a padded
// row, on the multi-threaded CPU backend.
func TestPackedEqualsAlone(t *testing.T) {
	tok := testTokenizer(t)
	data := writeLines(t, taskRows(t, false, 10, 11))
	c := tinyLM()
	be := kernels.NewCPU(2)
	defer be.Close()
	m, err := model.NewWithParams(c, initParams(c, 17), be)
	if err != nil {
		t.Fatal(err)
	}
	opts := func(pack bool) chatdata.SFTOptions {
		return chatdata.SFTOptions{Options: chatdata.Options{
			Paths: []string{data}, Tokenizer: tok, Shuffle: 1, Epochs: 1, Strict: true,
			Encode: chatdata.EncodeOptions{SeqLen: 140},
		}, Rows: 2, Pack: pack, PadID: -1}
	}
	packed, several := sftExamples(t, m, opts(true))
	alone, _ := sftExamples(t, m, opts(false))
	if len(packed) != 10 || len(alone) != 10 {
		t.Fatalf("%d packed and %d padded examples, want 10 each", len(packed), len(alone))
	}
	if several == 0 {
		t.Fatal("no row holds several examples: nothing was packed")
	}
	pad := int32(padToken(tok))
	worst := 0.0
	for i, p := range packed {
		a := alone[i]
		// The padded row is the example, then padding.
		if n := len(p.tokens); n > len(a.tokens) || !slices.Equal(p.tokens, a.tokens[:n]) || slices.IndexFunc(a.tokens[n:], func(x int32) bool { return x != pad }) >= 0 {
			t.Fatalf("example %d: packed tokens %v are not the padded row %v", i, p.tokens, a.tokens)
		}
		if p.weight != a.weight {
			t.Errorf("example %d: %v weighted tokens packed, %v alone", i, p.weight, a.weight)
		}
		worst = math.Max(worst, relErr(p.loss, a.loss, 1))
		// Within float32 rounding: the CPU kernels (OpenBLAS among them)
		// may block a matrix product differently for other row counts.
		if !modeltest.Close(p.loss, a.loss, 1e-5, 1e-6) {
			t.Errorf("example %d: weighted nll sum %.9g packed, %.9g alone", i, p.loss, a.loss)
		}
	}
	t.Logf("%d examples, %d rows holding several; max relative |packed − alone| = %.3g (losses %.4g…)", len(packed), several, worst, packed[0].loss)
}
