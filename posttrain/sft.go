package posttrain

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/chatdata"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/train"
)

// sftTrainer is supervised fine-tuning: the next-token loss on the
// weighted (by default the assistant's) tokens, averaged over the batch's
// weighted tokens.
type sftTrainer struct {
	run     *runner
	ctx     context.Context
	restore *chatdata.State // the checkpoint's data position, when resuming
	l       *chatdata.SFTLoader
	state   chatdata.State // data position after the last step
	vals    checkpoint.Metrics
}

func newSFT(run *runner) *sftTrainer { return &sftTrainer{run: run, vals: checkpoint.Metrics{}} }

func (t *sftTrainer) options(heldOut bool) chatdata.SFTOptions {
	r := &t.run.r
	return chatdata.SFTOptions{Options: t.run.loaderOptions(heldOut), Rows: r.Train.Batch, Pack: r.Data.Pack, PadID: -1}
}

func (t *sftTrainer) open(ctx context.Context) error {
	l, err := chatdata.NewSFTLoader(t.options(false), t.restore)
	if err != nil {
		return err
	}
	t.ctx, t.l, t.state = ctx, l, l.State()
	return nil
}

// Step is a forward and backward pass over each of this rank's parts of
// a batch of B rows (train.micro_batches parts, all of them in one
// process), normalised by the whole batch's weighted tokens.
func (t *sftTrainer) Step(step int) (train.StepResult, error) {
	b, err := t.l.Next(t.ctx)
	if err != nil {
		return train.StepResult{}, dataErr(step, err, &t.run.r)
	}
	lo, hi, parts := t.run.partRange()
	if b.B%parts != 0 {
		return train.StepResult{}, fmt.Errorf("step %d: the batch's %d rows do not split into train.micro_batches %d", step+1, b.B, parts)
	}
	rows := b.B / parts
	den := weightSum(b)
	g := t.run.m.Grads.Data
	var loss, trained float64
	for p := lo; p < hi; p++ {
		part := rowsOf(b, p*rows, (p+1)*rows, den)
		l, err := t.run.m.ForwardBackward(&part)
		if err != nil {
			return train.StepResult{}, fmt.Errorf("step %d: %w", step+1, err)
		}
		trained += weightSum(&part) // whole numbers: any order is exact
		if p < hi-1 {
			t.run.sum.Add(g, l)
		} else {
			loss = t.run.sum.Finish(g, l)
		}
	}
	t.state = t.l.State()
	clear(t.vals)
	t.vals["trained_tokens"] = trained
	return train.StepResult{Loss: loss, Tokens: int64((hi - lo) * rows * b.T), Metrics: t.vals}, nil
}

// weightSum is the number of tokens that carry loss.
func weightSum(b *model.Batch) float64 {
	var n float64
	for i, w := range b.Weights {
		if b.Targets[i] >= 0 {
			n += float64(w)
		}
	}
	return n
}

func (t *sftTrainer) Position() (json.RawMessage, error) { return json.Marshal(t.state) }

func (t *sftTrainer) Restore(pos json.RawMessage) error {
	var st chatdata.State
	if err := json.Unmarshal(pos, &st); err != nil {
		return err
	}
	t.restore = &st
	return nil
}

// evaluate is the weighted next-token loss over the first eval.batches
// batches of the held-out rows, split over the ranks.
func (t *sftTrainer) evaluate(ctx context.Context) (checkpoint.Metrics, error) {
	l, err := chatdata.NewSFTLoader(t.options(true), nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	var b *model.Batch
	next := func() (err error) { b, err = l.Next(ctx); return err }
	sums, err := t.run.heldOut(2, t.run.r.Eval.Batches, next, func(dst []float64) error {
		nll, err := t.run.m.Forward(b)
		if err != nil {
			return err
		}
		for i, w := range b.Weights {
			if b.Targets[i] >= 0 && w != 0 {
				dst[0] += float64(w) * float64(nll[i])
				dst[1] += float64(w)
			}
		}
		return nil
	})
	if err != nil || sums[1] == 0 {
		return nil, err
	}
	return checkpoint.Metrics{"eval_loss": sums[0] / sums[1], "eval_tokens": sums[1]}, nil
}

func (t *sftTrainer) stats() chatdata.Stats {
	if t.l == nil {
		return chatdata.Stats{}
	}
	return t.l.Stats()
}

func (t *sftTrainer) close() error {
	if t.l == nil {
		return nil
	}
	return t.l.Close()
}
