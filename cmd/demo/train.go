package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/optim"
)

// trainOptions configure the demo's training run.
type trainOptions struct {
	Model      model.Config `json:"model"`
	Batch      int          `json:"batch"`
	Seq        int          `json:"seq"`
	Steps      int          `json:"steps"` // schedule length
	Warmup     int          `json:"warmup"`
	PeakLR     float64      `json:"peak_lr"`
	MinLR      float64      `json:"min_lr"`
	ClipNorm   float64      `json:"clip_norm"`
	Seed       uint64       `json:"seed"`
	MaxDocSize int          `json:"max_doc_bytes"`
}

func defaultTrainOptions() trainOptions {
	c := model.Config{VocabSize: vocabSize, HiddenSize: 128, IntermediateSize: 384, NumHiddenLayers: 4,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 256, RopeTheta: 10000,
		TieWordEmbeddings: true}
	bos, eos := bosID, eosID
	c.BOSTokenID, c.EOSTokenID = &bos, eos
	c.Normalize()
	return trainOptions{Model: c, Batch: 16, Seq: 128, Steps: 2000, Warmup: 50, PeakLR: 3e-3, MinLR: 3e-4,
		ClipNorm: 1, Seed: 1, MaxDocSize: 1 << 16}
}

// trainer owns one training run: model, optimizer, schedule and data.
type trainer struct {
	opt   trainOptions
	m     *model.Model
	adam  *optim.AdamW
	sched optim.WarmupCosine
	data  lanes
	batch model.Batch
	step  int
}

func newTrainer(opt trainOptions, be kernels.Backend, files []string) (*trainer, error) {
	m, err := model.New(opt.Model, be)
	if err != nil {
		return nil, err
	}
	m.Params.Init(m.Config, opt.Seed)
	m.EnsureGrads()
	adam, err := optim.NewAdamW(m.Params.Layout, optim.DefaultAdamWConfig(), be)
	if err != nil {
		return nil, err
	}
	sched := optim.WarmupCosine{Peak: opt.PeakLR, Min: opt.MinLR, Warmup: opt.Warmup, Total: opt.Steps}
	if err := sched.Validate(); err != nil {
		return nil, err
	}
	data, err := newLanes(files, opt.MaxDocSize, opt.Batch)
	if err != nil {
		return nil, err
	}
	return &trainer{opt: opt, m: m, adam: adam, sched: sched, data: data, batch: *newTrainerBatch(opt)}, nil
}

// newTrainerBatch allocates a batch of the run's shape.
func newTrainerBatch(opt trainOptions) *model.Batch {
	n := opt.Batch * opt.Seq
	return &model.Batch{B: opt.Batch, T: opt.Seq, Tokens: make([]int32, n), Targets: make([]int32, n), DocIDs: make([]int32, n)}
}

// stepResult reports one optimizer step.
type stepResult struct {
	Loss, GradNorm, LR float64
	Skipped            bool // non-finite loss or gradient: no update
}

// trainStep runs one optimizer step on the next batch.
func (t *trainer) trainStep() (stepResult, error) {
	if err := t.data.fill(&t.batch); err != nil {
		return stepResult{}, err
	}
	t.m.Grads.Zero()
	loss, err := t.m.ForwardBackward(&t.batch)
	if err != nil {
		return stepResult{}, err
	}
	gn := optim.ClipGradNorm(t.m.Grads, t.opt.ClipNorm)
	lr := t.sched.LR(t.step)
	t.step++
	if math.IsNaN(loss) || math.IsInf(loss, 0) || math.IsNaN(gn) || math.IsInf(gn, 0) {
		return stepResult{Loss: loss, GradNorm: gn, LR: lr, Skipped: true}, nil
	}
	if err := t.adam.Update(t.m.Params, t.m.Grads, lr); err != nil {
		return stepResult{}, err
	}
	return stepResult{Loss: loss, GradNorm: gn, LR: lr}, nil
}

// save writes a resumable checkpoint under root.
func (t *trainer) save(root string) (string, error) {
	pos, err := json.Marshal(t.data.positions())
	if err != nil {
		return "", err
	}
	rec, err := json.Marshal(t.opt)
	if err != nil {
		return "", err
	}
	st := &checkpoint.TrainingState{
		Step:         t.step,
		Optimizer:    &checkpoint.OptimizerState{Name: "adamw", Step: t.adam.Step, M: t.adam.M, V: t.adam.V},
		DataPosition: pos,
		Recipe:       rec,
	}
	return checkpoint.Save(root, t.m.Config, t.m.Params, st, checkpoint.SaveOptions{})
}

// restore loads a checkpoint written by save into the trainer.
func (t *trainer) restore(dir string) error {
	cfg, params, st, err := checkpoint.Load(dir)
	if err != nil {
		return err
	}
	if cfg.HiddenSize != t.m.Config.HiddenSize || params.Layout.Total != t.m.Params.Layout.Total {
		return fmt.Errorf("checkpoint %s holds a different model than this run", dir)
	}
	if st.Optimizer == nil {
		return errors.New("checkpoint has no optimizer state")
	}
	copy(t.m.Params.Data, params.Data)
	if err := t.adam.SetState(st.Optimizer.Step, st.Optimizer.M, st.Optimizer.V); err != nil {
		return err
	}
	var pos []packerPos
	if err := json.Unmarshal(st.DataPosition, &pos); err != nil {
		return fmt.Errorf("checkpoint %s: data position: %w", dir, err)
	}
	if err := t.data.seek(pos); err != nil {
		return err
	}
	t.step = st.Step
	return nil
}

// evalLoss is the mean next-byte loss (nats) over the first batches of a
// held-out file list.
func evalLoss(m *model.Model, files []string, opt trainOptions, batches int) (float64, error) {
	p, err := newLanes(files, opt.MaxDocSize, opt.Batch)
	if err != nil {
		return 0, err
	}
	b := newTrainerBatch(opt)
	var sum, count float64
	for range batches {
		if err := p.fill(b); err != nil {
			return 0, err
		}
		nll, err := m.Forward(b)
		if err != nil {
			return 0, err
		}
		for i, v := range nll {
			if b.Targets[i] >= 0 {
				sum += float64(v)
				count++
			}
		}
	}
	return sum / count, nil
}

// unigramEntropy is the entropy (nats) of the byte distribution of the
// same held-out batches evalLoss scores: the loss of the best model that
// ignores context.
func unigramEntropy(files []string, opt trainOptions, batches int) (float64, error) {
	p, err := newLanes(files, opt.MaxDocSize, opt.Batch)
	if err != nil {
		return 0, err
	}
	b := newTrainerBatch(opt)
	var counts [vocabSize]float64
	var total float64
	for range batches {
		if err := p.fill(b); err != nil {
			return 0, err
		}
		for _, t := range b.Targets {
			if t >= 0 {
				counts[t]++
				total++
			}
		}
	}
	var h float64
	for _, c := range counts {
		if c > 0 {
			h -= c / total * math.Log(c/total)
		}
	}
	return h, nil
}
