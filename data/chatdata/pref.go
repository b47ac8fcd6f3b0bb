package chatdata

import (
	"context"
	"fmt"
	"io"

	"github.com/herdml/herd/model"
)

// PrefOptions configure a PrefLoader.
type PrefOptions struct {
	Options
	// Examples is the number of preference examples per batch.
	Examples int
	// Ranked gives every example three rows, chosen, rejected and edited
	// (Llama 3's edited > chosen > rejected, for the reward model); an
	// example without an edited response has an empty third row (Last
	// -1). Without Ranked an example has two rows, chosen and rejected
	// (DPO), and edited responses are not used.
	Ranked bool
	// PadID is the token of pad positions (see SFTOptions.PadID).
	PadID int32
}

// Preference batch row roles, the offsets of a row within its example.
const (
	RowChosen   = 0
	RowRejected = 1
	RowEdited   = 2 // only with PrefOptions.Ranked
)

// PrefBatch is a batch of preference examples: example k has rows
// [k·PerExample, (k+1)·PerExample), chosen first, then rejected (rows 2k
// and 2k+1 for DPO), then edited when Ranked. Each row is the prompt and
// one response, right-padded to T.
type PrefBatch struct {
	// Batch has B = Examples·PerExample rows. Weights[i] is 1 at position
	// i when token i+1 is a scored response token (see Response.Scored),
	// 0 elsewhere; Targets are the next tokens there and -1 elsewhere, so
	// model.SequenceLogProbs gives each row's response log-probability,
	// the quantity DPO compares. DocIDs is nil (one sequence per row).
	model.Batch
	PerExample int
	// Examples is the number of examples in this batch; rows after
	// Examples·PerExample are empty (the last batch of a finite run).
	Examples int
	// Last is, per row, the index of the last non-padding token, where a
	// reward model reads the reward; -1 for an empty row.
	Last []int32
	// PromptLen is, per row, the number of prompt tokens (0 for an empty
	// row).
	PromptLen []int32
	// Scored is, per row, the number of scored response tokens (Σ of the
	// row's weights), the DPO NLL term's normaliser for the chosen row.
	Scored []int32
}

// PrefLoader streams preference batches for DPO and reward-model training.
type PrefLoader struct {
	w     *window[PrefExample]
	per   int
	pad   int32
	batch PrefBatch
}

// NewPrefLoader opens the inputs. st, when non-nil, is a State saved from
// a loader with the same options: the new loader continues exactly there.
func NewPrefLoader(o PrefOptions, st *State) (*PrefLoader, error) {
	if o.Examples <= 0 {
		return nil, fmt.Errorf("chatdata: PrefOptions.Examples %d: want at least 1 example per batch", o.Examples)
	}
	kind := "pref"
	per := 2
	if o.Ranked {
		kind, per = "pref-ranked", 3
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
	ranked := o.Ranked
	w, err := newWindow(p, &o.Options, st, func(rec record) (PrefExample, int, *rowError) {
		f, rerr := rowFields(rec)
		if rerr != nil {
			return PrefExample{}, 0, rerr
		}
		row, rerr := f.pref()
		if rerr != nil {
			return PrefExample{}, 0, rerr
		}
		if rerr := p.split(rowKey(row.Prompt, row.Chosen, row.Rejected, row.Edited)); rerr != nil {
			return PrefExample{}, 0, rerr
		}
		if !ranked {
			row.Edited = nil // neither rendered nor counted in the length
		}
		x, rerr := enc.pref(row)
		return x, x.Cut, rerr
	})
	if err != nil {
		return nil, err
	}
	T := enc.o.SeqLen
	B := o.Examples * per
	n := B * T
	l := &PrefLoader{w: w, per: per, pad: pad}
	l.batch = PrefBatch{Batch: model.Batch{B: B, T: T, Tokens: make([]int32, n), Targets: make([]int32, n), Weights: make([]float32, n)},
		PerExample: per, Last: make([]int32, B), PromptLen: make([]int32, B), Scored: make([]int32, B)}
	return l, nil
}

// Next returns the next batch, io.EOF after the last one. The batch and
// its slices are reused by the following call.
func (l *PrefLoader) Next(ctx context.Context) (*PrefBatch, error) {
	b := &l.batch
	for i := range b.Tokens {
		b.Tokens[i] = l.pad
		b.Targets[i] = -1
		b.Weights[i] = 0
	}
	for r := range b.Last {
		b.Last[r], b.PromptLen[r], b.Scored[r] = -1, 0, 0
	}
	b.Examples = 0
	for k := 0; k < b.B/l.per; k++ {
		x, err := l.w.peek(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		l.put(k*l.per+RowChosen, x, &x.Chosen)
		l.put(k*l.per+RowRejected, x, &x.Rejected)
		if l.per == 3 && x.Edited != nil {
			l.put(k*l.per+RowEdited, x, x.Edited)
		}
		b.Examples++
		l.w.advance()
	}
	if b.Examples == 0 {
		return nil, io.EOF
	}
	return b, nil
}

// put writes one response into row r.
func (l *PrefLoader) put(r int, x *PrefExample, s *Response) {
	b := &l.batch
	off := r * b.T
	copy(b.Tokens[off:], s.IDs)
	n := int32(0)
	for i := 1; i < len(s.IDs); i++ {
		if s.Scored[i] {
			b.Weights[off+i-1] = 1
			b.Targets[off+i-1] = s.IDs[i]
			n++
		}
	}
	b.Last[r] = int32(s.Last)
	b.PromptLen[r] = int32(x.PromptLen)
	b.Scored[r] = n
}

// State returns the position after the last batch.
func (l *PrefLoader) State() State { return l.w.state() }

// Stats returns the counts so far (of every row read, including those
// read ahead into the shuffle window).
func (l *PrefLoader) Stats() Stats { return l.w.stats.Clone() }

// Close closes the open input file.
func (l *PrefLoader) Close() error { return l.w.src.Close() }
