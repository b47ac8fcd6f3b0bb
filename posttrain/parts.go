package posttrain

import (
	"fmt"

	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/data/chatdata"
	"github.com/herdml/herd/model"
)

// Every rank reads the whole batch of a step (so the data order, the
// position saved in checkpoints and DPO's reference store do not depend
// on the number of ranks) and computes its consecutive train.micro_batches
// / ranks parts of it; the engine sums the gradients, losses and metrics
// over the ranks.

// partRange is this rank's parts [lo, hi) of the micro_batches parts.
func (run *runner) partRange() (lo, hi, parts int) {
	p := run.r.Train.MicroBatches
	per := p / run.comm.Size()
	return run.comm.Rank() * per, (run.comm.Rank() + 1) * per, p
}

// checkParts refuses a split that leaves some rank without parts and
// warns when ranks and one process would not give the same bits.
func (run *runner) checkParts() error {
	p, w := run.r.Train.MicroBatches, run.comm.Size()
	if p%w != 0 {
		return fmt.Errorf("train.micro_batches %d does not split over %d ranks: set it to a multiple of %d (a one-process run with the same value trains the same bits)", p, w, w)
	}
	if per := p / w; per&(per-1) != 0 {
		run.log.Warn("train.micro_batches / ranks is not a power of two: the run is deterministic but not bit-identical to one process", "micro_batches", p, "ranks", w)
	}
	return nil
}

// rowsOf is the view of rows [lo, hi) of b, with the loss normaliser den.
func rowsOf(b *model.Batch, lo, hi int, den float64) model.Batch {
	T := b.T
	v := model.Batch{B: hi - lo, T: T, Tokens: b.Tokens[lo*T : hi*T], Denominator: den}
	if b.Targets != nil {
		v.Targets = b.Targets[lo*T : hi*T]
	}
	if b.Weights != nil {
		v.Weights = b.Weights[lo*T : hi*T]
	}
	if b.DocIDs != nil {
		v.DocIDs = b.DocIDs[lo*T : hi*T]
	}
	return v
}

// prefPart is part p of parts of a preference batch: its rows from row
// lo, as a batch of its own examples (0 when the last batch of a finite
// run ends before it).
func prefPart(pb *chatdata.PrefBatch, p, parts, batch int) (part chatdata.PrefBatch, lo int) {
	per := batch / parts // examples per part
	lo = p * per * pb.PerExample
	hi := lo + per*pb.PerExample
	part = chatdata.PrefBatch{Batch: rowsOf(&pb.Batch, lo, hi, 0), PerExample: pb.PerExample,
		Examples: min(max(pb.Examples-p*per, 0), per)}
	if pb.Last != nil {
		part.Last = pb.Last[lo:hi]
	}
	if pb.PromptLen != nil {
		part.PromptLen = pb.PromptLen[lo:hi]
	}
	if pb.Scored != nil {
		part.Scored = pb.Scored[lo:hi]
	}
	return part, lo
}

// heldOut scores up to limit held-out batches split over the ranks:
// batch i on rank i mod ranks. Every rank reads every batch with next
// (io.EOF: no more), so all see the same number of them; score puts the k
// numbers of the batch just read into dst on the rank that owns it. It
// returns each number summed over the batches in batch order, after a
// rank-tree sum in which the other ranks add zeros: the same bits on every
// rank and for any number of ranks. Every rank must call it (it is a
// collective).
func (run *runner) heldOut(k, limit int, next func() error, score func(dst []float64) error) ([]float64, error) {
	var per []float64 // per[i*k+j]: number j of batch i (0 on the ranks not owning it)
	w, rank := run.comm.Size(), run.comm.Rank()
	for i := range limit {
		if err := next(); isEOF(err) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("held-out batch %d: %w", i+1, err)
		}
		per = append(per, make([]float64, k)...)
		if i%w == rank {
			if run.opt.onEval != nil {
				run.opt.onEval(i)
			}
			if err := score(per[i*k : (i+1)*k]); err != nil {
				return nil, fmt.Errorf("held-out batch %d: %w", i+1, err)
			}
		}
	}
	if run.red == nil {
		run.red = cluster.NewReducer(run.comm, 0)
	}
	if err := run.red.Sum64(per); err != nil {
		return nil, fmt.Errorf("held-out evaluation: %w", err)
	}
	sums := make([]float64, k)
	for i := 0; i < len(per); i += k {
		for j := range sums {
			sums[j] += per[i+j]
		}
	}
	return sums, nil
}

// partSums sums a step's per-part numbers in the parts' tree.
type partSums struct {
	vals [][]float64 // vals[i]: the i-th number of every part
}

func (s *partSums) reset(n int) {
	if len(s.vals) != n {
		s.vals = make([][]float64, n)
	}
	for i := range s.vals {
		s.vals[i] = s.vals[i][:0]
	}
}

// add appends one part's numbers.
func (s *partSums) add(x ...float64) {
	for i, v := range x {
		s.vals[i] = append(s.vals[i], v)
	}
}

// sum is the tree sum of the i-th number.
func (s *partSums) sum(i int) float64 { return cluster.TreeSum64(s.vals[i]) }
