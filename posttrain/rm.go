package posttrain

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/chatdata"
	"github.com/herdml/herd/train"
)

// rmTrainer trains a reward model with the Bradley–Terry loss
// −log σ(r_w − r_l) over every ordered pair of an example's responses
// (chosen > rejected; with edited responses edited > chosen > rejected:
// three pairs from one forward pass), the reward read by the scalar head
// at each sequence's last token. Llama 3 dropped the margin term; so does
// herd.
type rmTrainer struct {
	run     *runner
	ctx     context.Context
	restore *chatdata.State
	l       *chatdata.PrefLoader
	state   chatdata.State
	grad    []float32 // dL/dscore per row
	vals    checkpoint.Metrics
	sums    partSums
}

func newRM(run *runner) *rmTrainer { return &rmTrainer{run: run, vals: checkpoint.Metrics{}} }

func (t *rmTrainer) options(heldOut bool) chatdata.PrefOptions {
	r := &t.run.r
	return chatdata.PrefOptions{Options: t.run.loaderOptions(heldOut), Examples: r.Train.Batch, Ranked: r.Data.UseEdited, PadID: -1}
}

func (t *rmTrainer) open(ctx context.Context) error {
	l, err := chatdata.NewPrefLoader(t.options(false), t.restore)
	if err != nil {
		return err
	}
	t.ctx, t.l, t.state = ctx, l, l.State()
	return nil
}

// pairStats are the Bradley–Terry loss and its companions over a batch's
// ordered pairs.
type pairStats struct {
	Loss     float64 // mean of −log σ(r_w − r_l)
	Accuracy float64 // fraction of pairs with r_w > r_l
	Margin   float64 // mean r_w − r_l
	Chosen   float64 // mean reward of chosen responses
	Rejected float64 // mean reward of rejected responses
	Pairs    int
}

// bradleyTerry computes the loss over the ordered pairs of the first
// examples examples of a preference batch whose rows are per (2 or 3) per
// example — chosen, rejected[, edited] — with rewards r (one per row) and
// last[row] < 0 marking an absent response; into grad (one per row, or
// nil) it writes dLoss/dr.
func bradleyTerry(r []float32, last []int32, per, examples int, grad []float32) pairStats {
	return bradleyTerryShare(r, last, per, examples, countPairs(last, per, examples), examples, grad)
}

// countPairs is the number of ordered pairs of the first examples
// examples.
func countPairs(last []int32, per, examples int) int {
	n := 0
	for k := range examples {
		if per == 3 && last[k*per+chatdata.RowEdited] >= 0 {
			n += 3
		} else {
			n++
		}
	}
	return n
}

// bradleyTerryShare is bradleyTerry of examples examples that are part of
// a batch with pairs ordered pairs and total examples: the means are over
// the whole batch, so the parts' results sum to the batch's.
func bradleyTerryShare(r []float32, last []int32, per, examples, pairs, total int, grad []float32) pairStats {
	var st pairStats
	clear(grad)
	for k := range examples {
		c, rj, e := k*per+chatdata.RowChosen, k*per+chatdata.RowRejected, k*per+chatdata.RowEdited
		pairs := [3][2]int{{c, rj}, {e, c}, {e, rj}}
		n := 1
		if per == 3 && last[e] >= 0 {
			n = 3
		}
		st.Pairs += n
		st.Chosen += float64(r[c])
		st.Rejected += float64(r[rj])
		for _, p := range pairs[:n] {
			x := float64(r[p[0]]) - float64(r[p[1]])
			st.Loss += softplus(-x)
			st.Margin += x
			if x > 0 {
				st.Accuracy++
			}
			if grad != nil {
				// d/dx softplus(−x) = −σ(−x); scaled by 1/pairs below.
				g := float32(sigmoid(-x))
				grad[p[0]] -= g
				grad[p[1]] += g
			}
		}
	}
	if pairs == 0 {
		return st
	}
	n := float64(pairs)
	for i := range grad {
		grad[i] = float32(float64(grad[i]) / n)
	}
	st.Loss /= n
	st.Accuracy /= n
	st.Margin /= n
	st.Chosen /= float64(total)
	st.Rejected /= float64(total)
	return st
}

// softplus is log(1 + eˣ), computed without overflow.
func softplus(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// Step scores every response of each of this rank's parts of a batch
// (train.micro_batches parts, all of them in one process) with one
// forward pass and back-propagates the Bradley–Terry loss, a mean over
// the whole batch's pairs, through the head at the last tokens.
func (t *rmTrainer) Step(step int) (train.StepResult, error) {
	pb, err := t.l.Next(t.ctx)
	if err != nil {
		return train.StepResult{}, dataErr(step, err, &t.run.r)
	}
	m := t.run.m
	lo, hi, parts := t.run.partRange()
	pairs := countPairs(pb.Last, pb.PerExample, pb.Examples)
	g := m.Grads.Data
	t.sums.reset(5)
	var loss float64
	for p := lo; p < hi; p++ {
		part, _ := prefPart(pb, p, parts, t.run.r.Train.Batch)
		var st pairStats
		if part.Examples > 0 {
			if err := m.ForwardHidden(&part.Batch); err != nil {
				return train.StepResult{}, fmt.Errorf("step %d: %w", step+1, err)
			}
			r, err := m.Scores(part.Last)
			if err != nil {
				return train.StepResult{}, err
			}
			if len(t.grad) != len(r) {
				t.grad = make([]float32, len(r))
			}
			st = bradleyTerryShare(r, part.Last, part.PerExample, part.Examples, pairs, pb.Examples, t.grad)
			if err := m.ScoresBackward(part.Last, t.grad); err != nil {
				return train.StepResult{}, err
			}
		}
		t.sums.add(st.Accuracy, st.Margin, st.Chosen, st.Rejected, st.Loss)
		if p < hi-1 {
			t.run.sum.Add(g, st.Loss)
		} else {
			loss = t.run.sum.Finish(g, st.Loss)
		}
	}
	t.state = t.l.State()
	clear(t.vals)
	t.vals["accuracy"], t.vals["margin"] = t.sums.sum(0), t.sums.sum(1)
	t.vals["rewards/chosen"], t.vals["rewards/rejected"] = t.sums.sum(2), t.sums.sum(3)
	return train.StepResult{Loss: loss, Tokens: int64((hi - lo) * (pb.B / parts) * pb.T), Metrics: t.vals}, nil
}

func (t *rmTrainer) Position() (json.RawMessage, error) { return json.Marshal(t.state) }

func (t *rmTrainer) Restore(pos json.RawMessage) error {
	var st chatdata.State
	if err := json.Unmarshal(pos, &st); err != nil {
		return err
	}
	t.restore = &st
	return nil
}

// evaluate is the loss, accuracy and margin over the held-out pairs of
// the first eval.batches batches, split over the ranks.
func (t *rmTrainer) evaluate(ctx context.Context) (checkpoint.Metrics, error) {
	l, err := chatdata.NewPrefLoader(t.options(true), nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	var pb *chatdata.PrefBatch
	next := func() (err error) { pb, err = l.Next(ctx); return err }
	sums, err := t.run.heldOut(4, t.run.r.Eval.Batches, next, func(dst []float64) error {
		m := t.run.m
		if err := m.ForwardHidden(&pb.Batch); err != nil {
			return err
		}
		r, err := m.Scores(pb.Last)
		if err != nil {
			return err
		}
		st := bradleyTerry(r, pb.Last, pb.PerExample, pb.Examples, nil)
		p := float64(st.Pairs)
		dst[0], dst[1], dst[2], dst[3] = st.Loss*p, st.Accuracy*p, st.Margin*p, p
		return nil
	})
	if err != nil || sums[3] == 0 {
		return nil, err
	}
	n := sums[3]
	return checkpoint.Metrics{"eval_loss": sums[0] / n, "eval_accuracy": sums[1] / n, "eval_margin": sums[2] / n, "eval_pairs": n}, nil
}

func (t *rmTrainer) stats() chatdata.Stats {
	if t.l == nil {
		return chatdata.Stats{}
	}
	return t.l.Stats()
}

func (t *rmTrainer) close() error {
	if t.l == nil {
		return nil
	}
	return t.l.Close()
}
