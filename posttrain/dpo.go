package posttrain

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/chatdata"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/train"
)

// dpoTrainer is direct preference optimisation as Llama 3 ran it: the
// reference model is the starting policy, frozen, its log-probabilities
// computed once before training and stored beside the run (refStore), so
// no second model is held in memory while training; formatting tokens
// (headers, role names, <|eot_id|>, <|eom_id|>, <|python_tag|>) carry no
// log-probability on either side; an NLL term on the chosen response is
// added.
type dpoTrainer struct {
	run     *runner
	ctx     context.Context
	restore *chatdata.State
	l       *chatdata.PrefLoader
	state   chatdata.State
	ref     *refStore
	py      int32 // <|python_tag|>, or -1

	logp, refp, count, dlogp []float64 // per row
	coefBuf                  []float32
	vals                     checkpoint.Metrics
	sums                     partSums
}

func newDPO(run *runner) *dpoTrainer {
	py := int32(-1)
	if id, ok := run.tok.SpecialID(tokenizer.PythonTag); ok {
		py = id
	}
	return &dpoTrainer{run: run, py: py, vals: checkpoint.Metrics{}}
}

func (t *dpoTrainer) options(heldOut bool) chatdata.PrefOptions {
	r := &t.run.r
	return chatdata.PrefOptions{Options: t.run.loaderOptions(heldOut), Examples: r.Train.Batch, PadID: -1}
}

func (t *dpoTrainer) open(ctx context.Context) error {
	t.ctx = ctx
	// Rank 0 computes the store in the run directory; the other ranks
	// read it once it is complete.
	var ref *refStore
	var err error
	if t.run.comm.Rank() == 0 {
		ref, err = openRefStore(ctx, t)
	}
	if err == nil {
		err = t.run.comm.Barrier()
	}
	if err == nil && t.run.comm.Rank() != 0 {
		ref, err = readRefStore(t)
	}
	if err != nil {
		return fmt.Errorf("reference log-probabilities: %w", err)
	}
	t.ref = ref
	l, err := chatdata.NewPrefLoader(t.options(false), t.restore)
	if err != nil {
		return err
	}
	t.l, t.state = l, l.State()
	return nil
}

// maskFormatting zeroes the weight of positions that predict
// <|python_tag|>: chatdata's scored tokens already exclude headers, role
// names and end tokens; Llama 3 masks the tool-call tag too.
func maskFormatting(b *model.Batch, py int32) {
	if py < 0 {
		return
	}
	for i, w := range b.Weights {
		if w != 0 && b.Targets[i] == py {
			b.Weights[i] = 0
		}
	}
}

// seqLogps runs the model forward over a preference batch (formatting
// masked) and writes each row's summed log-probability of its scored
// tokens and their number. It returns the per-token nll.
func seqLogps(m *model.Model, pb *chatdata.PrefBatch, py int32, logp, count []float64) ([]float32, error) {
	maskFormatting(&pb.Batch, py)
	nll, err := m.Forward(&pb.Batch)
	if err != nil {
		return nil, err
	}
	model.SequenceLogProbs(&pb.Batch, nll, logp, count)
	return nll, nil
}

// dpoStats are the DPO loss and the metrics TRL reports, over a batch.
type dpoStats struct {
	Loss         float64 // mean preference loss + nll_coef · NLL
	NLL          float64 // mean over examples of the chosen response's token-mean NLL
	Accuracy     float64 // rewards/accuracies: fraction with reward_chosen > reward_rejected
	Margin       float64 // rewards/margins: mean reward_chosen − reward_rejected
	Chosen       float64 // rewards/chosen: mean β·(logπ − logπ_ref) of chosen
	Rejected     float64 // rewards/rejected
	LogpChosen   float64 // logps/chosen: mean summed log-probability of chosen
	LogpRejected float64 // logps/rejected
}

// dpoLoss computes the loss of examples preference pairs whose chosen and
// rejected rows are 2k and 2k+1: policy log-probabilities logp, reference
// ref, and count, the scored tokens per row (the NLL term's normaliser).
// With u = (logπ_c − logπ_ref,c) − (logπ_r − logπ_ref,r), the pair's loss
// is −log σ(β·u) (sigmoid), (u − 1/(2β))² (ipo) or max(0, 1 − β·u)
// (hinge), averaged over pairs, plus nllCoef times the mean of
// −logπ_c/count_c. dlogp (nil or one per row) receives dLoss/dlogp.
func dpoLoss(kind string, beta, nllCoef float64, logp, ref, count []float64, examples int, dlogp []float64) (dpoStats, error) {
	return dpoLossShare(kind, beta, nllCoef, logp, ref, count, examples, examples, dlogp)
}

// dpoLossShare is dpoLoss of examples pairs that are part of a batch of
// total: each mean is over total, so the parts' results sum to the
// batch's.
func dpoLossShare(kind string, beta, nllCoef float64, logp, ref, count []float64, examples, total int, dlogp []float64) (dpoStats, error) {
	var st dpoStats
	clear(dlogp)
	if examples == 0 {
		return st, nil
	}
	K := float64(total)
	for k := range examples {
		c, r := 2*k, 2*k+1
		u := (logp[c] - ref[c]) - (logp[r] - ref[r])
		var l, du float64
		switch kind {
		case LossSigmoid:
			l, du = softplus(-beta*u), -beta*sigmoid(-beta*u)
		case LossIPO:
			d := u - 1/(2*beta)
			l, du = d*d, 2*d
		case LossHinge:
			if h := 1 - beta*u; h > 0 {
				l, du = h, -beta
			}
		default:
			return st, fmt.Errorf("dpo.loss %q is not one of %s, %s, %s", kind, LossSigmoid, LossIPO, LossHinge)
		}
		st.Loss += l
		rc, rr := beta*(logp[c]-ref[c]), beta*(logp[r]-ref[r])
		st.Chosen += rc
		st.Rejected += rr
		st.Margin += rc - rr
		if rc > rr {
			st.Accuracy++
		}
		st.LogpChosen += logp[c]
		st.LogpRejected += logp[r]
		var nll float64
		if count[c] > 0 {
			nll = -logp[c] / count[c]
		}
		st.NLL += nll
		if dlogp != nil {
			dlogp[c] += du / K
			dlogp[r] -= du / K
			if count[c] > 0 {
				dlogp[c] -= nllCoef / (K * count[c])
			}
		}
	}
	st.Loss = st.Loss/K + nllCoef*st.NLL/K
	st.NLL /= K
	st.Accuracy /= K
	st.Margin /= K
	st.Chosen /= K
	st.Rejected /= K
	st.LogpChosen /= K
	st.LogpRejected /= K
	return st, nil
}

func (t *dpoTrainer) grow(rows int) {
	if len(t.logp) != rows {
		t.logp, t.refp = make([]float64, rows), make([]float64, rows)
		t.count, t.dlogp = make([]float64, rows), make([]float64, rows)
	}
}

// Step is one forward and one backward pass over the chosen and rejected
// sequences of each of this rank's parts of a batch (train.micro_batches
// parts, all of them in one process), with the stored reference
// log-probabilities of the whole batch.
func (t *dpoTrainer) Step(step int) (train.StepResult, error) {
	pb, err := t.l.Next(t.ctx)
	if err != nil {
		return train.StepResult{}, dataErr(step, err, &t.run.r)
	}
	t.grow(pb.B)
	if err := t.ref.read(step, pb, t.refp); err != nil {
		return train.StepResult{}, err
	}
	m := t.run.m
	d := &t.run.r.DPO
	lo, hi, parts := t.run.partRange()
	g := m.Grads.Data
	t.sums.reset(8)
	var loss float64
	for p := lo; p < hi; p++ {
		part, r0 := prefPart(pb, p, parts, t.run.r.Train.Batch)
		r1 := r0 + part.B
		var st dpoStats
		if part.Examples > 0 {
			if _, err := seqLogps(m, &part, t.py, t.logp[r0:r1], t.count[r0:r1]); err != nil {
				return train.StepResult{}, fmt.Errorf("step %d: %w", step+1, err)
			}
			if st, err = dpoLossShare(d.Loss, d.Beta, d.NLLCoef, t.logp[r0:r1], t.refp[r0:r1], t.count[r0:r1], part.Examples, pb.Examples, t.dlogp[r0:r1]); err != nil {
				return train.StepResult{}, err
			}
			// logp_r = −Σ w_i·nll_i over the row, so dL/dnll_i = −w_i·dL/dlogp_r.
			m.Backward(t.coef(&part, t.dlogp[r0:r1]))
		}
		t.sums.add(st.Chosen, st.Rejected, st.Accuracy, st.Margin, st.LogpChosen, st.LogpRejected, st.NLL, st.Loss)
		if p < hi-1 {
			t.run.sum.Add(g, st.Loss)
		} else {
			loss = t.run.sum.Finish(g, st.Loss)
		}
	}
	t.state = t.l.State()
	clear(t.vals)
	t.vals["rewards/chosen"], t.vals["rewards/rejected"] = t.sums.sum(0), t.sums.sum(1)
	t.vals["rewards/accuracies"], t.vals["rewards/margins"] = t.sums.sum(2), t.sums.sum(3)
	t.vals["logps/chosen"], t.vals["logps/rejected"] = t.sums.sum(4), t.sums.sum(5)
	t.vals["nll"] = t.sums.sum(6)
	return train.StepResult{Loss: loss, Tokens: int64((hi - lo) * (pb.B / parts) * pb.T), Metrics: t.vals}, nil
}

// coef turns dL/dlogp per row into per-token loss coefficients.
func (t *dpoTrainer) coef(pb *chatdata.PrefBatch, dlogp []float64) []float32 {
	if cap(t.coefBuf) < pb.B*pb.T {
		t.coefBuf = make([]float32, pb.B*pb.T)
	}
	coef := t.coefBuf[:pb.B*pb.T]
	for i, w := range pb.Weights {
		if w == 0 || pb.Targets[i] < 0 {
			coef[i] = 0
			continue
		}
		coef[i] = float32(-float64(w) * dlogp[i/pb.T])
	}
	return coef
}

func (t *dpoTrainer) Position() (json.RawMessage, error) { return json.Marshal(t.state) }

func (t *dpoTrainer) Restore(pos json.RawMessage) error {
	var st chatdata.State
	if err := json.Unmarshal(pos, &st); err != nil {
		return err
	}
	t.restore = &st
	return nil
}

// evaluate is the DPO loss and reward metrics on the held-out batches
// whose reference log-probabilities were stored with the training ones,
// split over the ranks.
func (t *dpoTrainer) evaluate(ctx context.Context) (checkpoint.Metrics, error) {
	if len(t.ref.meta.Eval) == 0 {
		return nil, nil
	}
	l, err := chatdata.NewPrefLoader(t.options(true), nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	d := &t.run.r.DPO
	var pb *chatdata.PrefBatch
	var ref []float64
	read := 0
	// The reference store holds the log-probabilities of every held-out
	// batch: the data ending sooner is an error.
	next := func() (err error) {
		ref = t.ref.meta.Eval[read]
		read++
		if pb, err = l.Next(ctx); isEOF(err) {
			return fmt.Errorf("the held-out data ended before the %d batches of the reference store", len(t.ref.meta.Eval))
		} else if err != nil {
			return err
		}
		if len(ref) != pb.B {
			return fmt.Errorf("%d rows, its stored reference %d", pb.B, len(ref))
		}
		return nil
	}
	sums, err := t.run.heldOut(5, len(t.ref.meta.Eval), next, func(dst []float64) error {
		t.grow(pb.B)
		if _, err := seqLogps(t.run.m, pb, t.py, t.logp, t.count); err != nil {
			return err
		}
		st, err := dpoLoss(d.Loss, d.Beta, d.NLLCoef, t.logp, ref, t.count, pb.Examples, nil)
		if err != nil {
			return err
		}
		k := float64(pb.Examples)
		dst[0], dst[1], dst[2], dst[3], dst[4] = st.Loss*k, st.Accuracy*k, st.Margin*k, st.NLL*k, k
		return nil
	})
	if err != nil || sums[4] == 0 {
		return nil, err
	}
	n := sums[4]
	return checkpoint.Metrics{"eval_loss": sums[0] / n, "eval_rewards/accuracies": sums[1] / n,
		"eval_rewards/margins": sums[2] / n, "eval_nll": sums[3] / n}, nil
}

func (t *dpoTrainer) stats() chatdata.Stats {
	if t.l == nil {
		return chatdata.Stats{}
	}
	return t.l.Stats()
}

func (t *dpoTrainer) close() error {
	var err error
	if t.l != nil {
		err = t.l.Close()
	}
	if t.ref != nil {
		if cerr := t.ref.close(); err == nil {
			err = cerr
		}
	}
	return err
}
