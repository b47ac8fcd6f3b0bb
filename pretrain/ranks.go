package pretrain

import "fmt"

// checkRanks refuses, before the run directory is touched, a stage from
// first on whose micro-batches (batch_tokens / seq_len / micro_batch of
// them per step) do not split evenly over the ranks, and warns where each
// rank's share is not a power of two: then the ranks' partial sums are
// not nodes of one process's summation tree (cluster.LeafSum), and the
// run, still deterministic, is not bit-identical to one process.
func (run *runner) checkRanks(first int) error {
	w := run.comm.Size()
	if w == 1 {
		return nil
	}
	for _, p := range run.plans[first:] {
		key := "train.micro_batch"
		if p.Index > 0 {
			key = fmt.Sprintf("stages.%d.micro_batch", p.Index-1)
		}
		n := p.Accum()
		if n%w != 0 {
			return fmt.Errorf("stage %s: its %d micro-batches per step (%d sequences of %d tokens, %d per micro-batch) do not split over %d ranks: set %s so that the number of micro-batches is a multiple of %d (a power of two times %d keeps the run bit-identical to one process)",
				p.Name, n, p.Seqs(), p.SeqLen, p.MicroBatch, w, key, w, w)
		}
		if per := n / w; per&(per-1) != 0 {
			run.log.Warn("the micro-batches per rank are not a power of two: the run is deterministic but not bit-identical to one process; change "+key+" so that they are",
				"stage", p.Name, "micro_batches", n, "ranks", w, "per_rank", per)
		}
	}
	return nil
}
