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

// Step is one forward and backward pass over a batch of B rows.
func (t *sftTrainer) Step(step int) (train.StepResult, error) {
	b, err := t.l.Next(t.ctx)
	if err != nil {
		return train.StepResult{}, dataErr(step, err, &t.run.r)
	}
	loss, err := t.run.m.ForwardBackward(b)
	if err != nil {
		return train.StepResult{}, fmt.Errorf("step %d: %w", step+1, err)
	}
	t.state = t.l.State()
	clear(t.vals)
	t.vals["trained_tokens"] = weightSum(b)
	return train.StepResult{Loss: loss, Tokens: int64(b.B * b.T), Metrics: t.vals}, nil
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
// batches of the held-out rows.
func (t *sftTrainer) evaluate(ctx context.Context) (checkpoint.Metrics, error) {
	l, err := chatdata.NewSFTLoader(t.options(true), nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	var sum, n float64
	for range t.run.r.Eval.Batches {
		b, err := l.Next(ctx)
		if err != nil {
			if isEOF(err) {
				break
			}
			return nil, err
		}
		nll, err := t.run.m.Forward(b)
		if err != nil {
			return nil, err
		}
		for i, w := range b.Weights {
			if b.Targets[i] >= 0 && w != 0 {
				sum += float64(w) * float64(nll[i])
				n += float64(w)
			}
		}
	}
	if n == 0 {
		return nil, nil
	}
	return checkpoint.Metrics{"eval_loss": sum / n, "eval_tokens": n}, nil
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
