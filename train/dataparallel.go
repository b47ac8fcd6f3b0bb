package train

import (
	"fmt"
	"slices"
	"time"

	"github.com/herdml/herd/model"
)

// Data-parallel runs. With Options.Comm of several ranks, every rank runs the
// same Engine over its own rows of each global batch. After a trainer's
// Step the engine all-reduces the gradients (cluster.Reducer: fixed-size
// buckets, in order, summed with the rank tree) and sums the step's loss,
// tokens and metrics the same way, so every rank takes the same AdamW
// update, computes the same gradient norm and so skips the same
// non-finite steps; the ranks also agree before each step on stopping
// (Ctrl-C on any rank, StopAt). Rank 0 alone owns the run directory: it
// locks it and writes recipe.yaml, metrics.jsonl, checkpoints, samples and
// final models; the others read a checkpoint to resume from it. A
// checkpoint holds nothing that depends on the number of ranks, so a run
// written with N ranks resumes with M.
//
// A trainer reports its rows' share of the loss and metrics (normalised
// by the whole global batch), as the parts of a sum. When it sums its
// parts with cluster.LeafSum, each rank holds the same power-of-two
// number of consecutive parts and the parts do not depend on the number
// of ranks (e.g. a recipe's micro-batches), the result is bit-identical
// to the one-process run.

// Rank is this engine's rank (0 in a one-process run).
func (e *Engine) Rank() int { return e.comm.Rank() }

// writer reports whether this rank writes the run directory.
func (e *Engine) writer() bool { return e.comm.Rank() == 0 }

// agreeStart checks that every rank starts from the same step (they read
// the same checkpoint of a shared run directory).
func (e *Engine) agreeStart() error {
	w := e.comm.Size()
	if w == 1 {
		return nil
	}
	all := make([]float64, w)
	if err := e.comm.AllGather64([]float64{float64(e.step)}, all); err != nil {
		return fmt.Errorf("agreeing on the starting step: %w", err)
	}
	for r, s := range all {
		if int(s) != e.step {
			return fmt.Errorf("rank %d starts at step %d but rank %d at step %d: every rank must see the same run directory %s (a shared file system)", e.comm.Rank(), e.step, r, int(s), e.opt.Dir)
		}
	}
	return nil
}

// reduce sums the step's gradients, loss, tokens and metrics over the
// ranks (nothing with one rank).
func (e *Engine) reduce(g *model.Params, out *StepResult) error {
	if e.comm.Size() == 1 {
		return nil
	}
	t0, sent := time.Now(), e.red.BytesSent()
	if err := e.red.AllReduce(g.Data); err != nil {
		return fmt.Errorf("gradients: %w", err)
	}
	e.commBytes = e.red.BytesSent() - sent
	e.keys = e.keys[:0]
	for k := range out.Metrics {
		e.keys = append(e.keys, k)
	}
	slices.Sort(e.keys)
	e.scal = append(e.scal[:0], out.Loss, float64(out.Tokens), float64(len(e.keys)))
	for _, k := range e.keys {
		e.scal = append(e.scal, out.Metrics[k])
	}
	// Ranks with other metric names would sum unrelated numbers: the
	// count of names is summed too and checked.
	if err := e.red.Sum64(e.scal); err != nil {
		return fmt.Errorf("loss and metrics: %w", err)
	}
	if n := int(e.scal[2]); n != len(e.keys)*e.comm.Size() {
		return fmt.Errorf("the ranks report different metrics (rank %d: %v)", e.comm.Rank(), e.keys)
	}
	out.Loss, out.Tokens = e.scal[0], int64(e.scal[1])
	for i, k := range e.keys {
		out.Metrics[k] = e.scal[3+i]
	}
	e.commDur = time.Since(t0)
	return nil
}
