package chatdata

import (
	"context"
	"fmt"
	"io"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
)

// SFTOptions configure an SFTLoader.
type SFTOptions struct {
	Options
	// Rows is the batch's number of rows B; each row holds SeqLen tokens.
	Rows int
	// Pack packs several examples per row, each its own document (DocIDs:
	// positions restart and no token attends to another example); an
	// example that does not fit in the rest of a row starts the next row
	// (examples are never split). Without Pack each row holds one example.
	Pack bool
	// PadID is the token of pad positions (-1: <|finetune_right_pad_id|>,
	// or <|end_of_text|> when the vocabulary lacks it). Pad positions have
	// target -1 and weight 0 whatever the token.
	PadID int32
}

// SFTLoader streams SFT batches: rows read from the inputs, tokenized,
// shuffled in a window, and packed (or padded) into model.Batch rows.
type SFTLoader struct {
	w     *window[SFTExample]
	rows  int
	pack  bool
	pad   int32
	batch model.Batch
	n     int // examples in the last batch
}

// padID picks the pad token.
func padID(tok *tokenizer.Tokenizer, id int32) (int32, error) {
	if id >= 0 {
		if int(id) >= tok.VocabSize() {
			return 0, fmt.Errorf("chatdata: pad id %d is outside the vocabulary (%d ids)", id, tok.VocabSize())
		}
		return id, nil
	}
	for _, name := range []string{tokenizer.FinetunePad, tokenizer.EndOfText} {
		if p, ok := tok.SpecialID(name); ok {
			return p, nil
		}
	}
	return 0, nil
}

// NewSFTLoader opens the inputs. st, when non-nil, is a State saved from
// a loader with the same options: the new loader continues exactly there.
func NewSFTLoader(o SFTOptions, st *State) (*SFTLoader, error) {
	if o.Rows <= 0 {
		return nil, fmt.Errorf("chatdata: SFTOptions.Rows %d: want at least 1 row per batch", o.Rows)
	}
	kind := "sft"
	if o.Pack {
		kind = "sft-packed"
	}
	p, err := prepare(&o.Options, kind)
	if err != nil {
		return nil, err
	}
	pad, err := padID(o.Tokenizer, o.PadID)
	if err != nil {
		return nil, err
	}
	enc := p.enc
	w, err := newWindow(p, &o.Options, st, func(rec record) (SFTExample, int, *rowError) {
		f, rerr := rowFields(rec)
		if rerr != nil {
			return SFTExample{}, 0, rerr
		}
		row, rerr := f.sft()
		if rerr != nil {
			return SFTExample{}, 0, rerr
		}
		if rerr := p.split(rowKey(row.Messages)); rerr != nil {
			return SFTExample{}, 0, rerr
		}
		x, rerr := enc.sft(row)
		return x, x.Cut, rerr
	})
	if err != nil {
		return nil, err
	}
	T := enc.o.SeqLen
	l := &SFTLoader{w: w, rows: o.Rows, pack: o.Pack, pad: pad}
	n := o.Rows * T
	l.batch = model.Batch{B: o.Rows, T: T, Tokens: make([]int32, n), Targets: make([]int32, n), Weights: make([]float32, n)}
	if o.Pack {
		l.batch.DocIDs = make([]int32, n)
	}
	return l, nil
}

// Next returns the next batch, io.EOF after the last one. The batch and
// its slices are reused by the following call. Rows (or row ends) without
// an example are padding: pad token, target -1, weight 0, and in packed
// batches a document id of their own. Targets are the next tokens where
// the weight is positive and -1 elsewhere; Denominator is 0 (Σ weights).
// The last batch of a finite run may have rows of padding only.
func (l *SFTLoader) Next(ctx context.Context) (*model.Batch, error) {
	b := &l.batch
	T := b.T
	for i := range b.Tokens {
		b.Tokens[i] = l.pad
		b.Targets[i] = -1
		b.Weights[i] = 0
	}
	if b.DocIDs != nil {
		clear(b.DocIDs)
	}
	l.n = 0
	eof := false
	for r := 0; r < l.rows && !eof; r++ {
		off := r * T
		pos, doc := 0, int32(0)
		for {
			x, err := l.w.peek(ctx)
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				return nil, err
			}
			n := len(x.IDs)
			if pos+n > T {
				break // starts the next row
			}
			k := off + pos
			copy(b.Tokens[k:k+n], x.IDs)
			copy(b.Weights[k:k+n], x.Weights)
			for i := 0; i+1 < n; i++ {
				if x.Weights[i] > 0 {
					b.Targets[k+i] = x.IDs[i+1]
				}
			}
			if b.DocIDs != nil {
				for i := k; i < k+n; i++ {
					b.DocIDs[i] = doc
				}
			}
			doc++
			pos += n
			l.n++
			l.w.advance()
			if !l.pack {
				break
			}
		}
		if b.DocIDs != nil {
			for i := off + pos; i < off+T; i++ {
				b.DocIDs[i] = doc
			}
		}
	}
	if l.n == 0 {
		return nil, io.EOF
	}
	return b, nil
}

// Examples returns the number of examples in the last batch.
func (l *SFTLoader) Examples() int { return l.n }

// State returns the position after the last batch.
func (l *SFTLoader) State() State { return l.w.state() }

// Stats returns the counts so far (of every row read, including those
// read ahead into the shuffle window).
func (l *SFTLoader) Stats() Stats { return l.w.stats.Clone() }

// Close closes the open input file.
func (l *SFTLoader) Close() error { return l.w.src.Close() }
