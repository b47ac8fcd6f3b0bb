package posttrain

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/cluster/clustertest"
	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/train"
)

// runRanks runs r on world goroutine ranks (cluster.Local) and returns
// rank 0's result.
func runRanks(t *testing.T, r Recipe, world int, opt func(rank int, o *RunOptions)) *Result {
	t.Helper()
	return clustertest.RunRanks(t, cluster.Local(world), func(rank int, comm cluster.Comm) (*Result, error) {
		o := RunOptions{Comm: comm}
		if opt != nil {
			opt(rank, &o)
		}
		return Run(context.Background(), r, o)
	})
}

// sameRuns checks two runs' checkpoints and final model byte for byte,
// and every training number but the timings.
func sameRuns(t *testing.T, what string, outA, outB string) {
	t.Helper()
	clustertest.SameCheckpoints(t, what, outA, outB)
	ra, rb := trainRecords(t, outA), trainRecords(t, outB)
	if len(ra) != len(rb) {
		t.Fatalf("%s: %d and %d training records", what, len(ra), len(rb))
	}
	for i := range ra {
		for k, v := range ra[i].Values {
			if strings.HasSuffix(k, "_s") || k == "tokens_per_s" || k == "gflops" {
				continue
			}
			if w, ok := rb[i].Values[k]; !ok || w != v {
				t.Fatalf("%s: step %d %s = %v and %v", what, ra[i].Step, k, v, w)
			}
		}
	}
}

// SFT, RM and DPO over 2 and 4 ranks (train.micro_batches 4) train the bits
// of one process; a DPO run stopped on one of its 2 ranks resumes with
// one process (reading the reference store rank 0 computed) and ends the
// same.
func TestDataParallelPosttrainMatchesOneProcess(t *testing.T) {
	tok := testTokenizer(t)
	c := tinyLM()
	dir := traintest.SaveModel(t, c, initParams(c, 21), tok)
	for _, kind := range []string{KindSFT, KindRM, KindDPO} {
		t.Run(kind, func(t *testing.T) {
			data := writeLines(t, taskRows(t, kind != KindSFT, 64, 5))
			r := testRecipe(t, kind, dir, 4, 8, data)
			r.Train.MicroBatches = 4
			r.Checkpoint.Every = 2
			one := runRanks(t, r, 1, nil)
			for _, w := range []int{2, 4} {
				rw := r
				rw.Out = filepath.Join(t.TempDir(), "run")
				runRanks(t, rw, w, nil)
				sameRuns(t, fmt.Sprintf("%s on %d ranks vs one process", kind, w), r.Out, rw.Out)
			}
			rs := r
			rs.Out = filepath.Join(t.TempDir(), "run")
			first := runRanks(t, rs, 2, func(rank int, o *RunOptions) {
				if rank == 1 {
					o.stopAt = 2
				}
			})
			if !first.Interrupted || first.Steps != 2 {
				t.Fatalf("first part %+v", first)
			}
			got := runRanks(t, rs, 1, func(_ int, o *RunOptions) { o.Resume = true })
			if got.Steps != one.Steps {
				t.Fatalf("resumed run ended at step %d, the straight one at %d", got.Steps, one.Steps)
			}
			sameRuns(t, kind+" stopped on 2 ranks, resumed on 1", r.Out, rs.Out)
		})
	}
}

// Splitting a batch into micro-batches (gradient accumulation) trains what
// the whole batch does, to rounding: the first step's loss and gradient
// norm agree.
func TestMicroBatchesAccumulate(t *testing.T) {
	tok := testTokenizer(t)
	c := tinyLM()
	dir := traintest.SaveModel(t, c, initParams(c, 21), tok)
	for _, kind := range []string{KindSFT, KindRM, KindDPO} {
		data := writeLines(t, taskRows(t, kind != KindSFT, 32, 5))
		var first [2]map[string]float64
		for i, mb := range []int{1, 4} {
			r := testRecipe(t, kind, dir, 1, 8, data)
			r.Train.MicroBatches = mb
			runRanks(t, r, 1, nil)
			first[i] = trainRecords(t, r.Out)[0].Values
		}
		for _, k := range []string{"loss", "grad_norm"} {
			a, b := first[0][k], first[1][k]
			if math.Abs(a-b) > 1e-5*math.Abs(a) || a == 0 {
				t.Errorf("%s %s: whole batch %v, 4 micro-batches %v", kind, k, a, b)
			}
		}
	}
}

// The held-out evaluation of SFT, RM and DPO is split over the ranks
// (batch i on rank i mod ranks, each scored once) and gives the numbers
// of one process, bit for bit, also with a rank that scores nothing.
func TestDataParallelHeldOutEvalMatchesOneProcess(t *testing.T) {
	tok := testTokenizer(t)
	c := tinyLM()
	dir := traintest.SaveModel(t, c, initParams(c, 21), tok)
	for _, kind := range []string{KindSFT, KindRM, KindDPO} {
		t.Run(kind, func(t *testing.T) {
			data := writeLines(t, taskRows(t, kind != KindSFT, 96, 5))
			r := testRecipe(t, kind, dir, 4, 4, data)
			r.Train.MicroBatches = 4
			r.Data.HeldOut, r.Eval.Every, r.Eval.Batches = 0.3, 2, 3
			var want []train.Record
			for _, w := range []int{1, 2, 4} {
				rw := r
				rw.Out = filepath.Join(t.TempDir(), "run")
				var mu sync.Mutex
				scored := map[int][]int{} // batch → the ranks that scored it
				runRanks(t, rw, w, func(rank int, o *RunOptions) {
					o.onEval = func(b int) {
						mu.Lock()
						scored[b] = append(scored[b], rank)
						mu.Unlock()
					}
				})
				got := records(t, rw.Out, "eval")
				if len(got) != 2 {
					t.Fatalf("%d ranks: %d eval records, want 2 (steps 2 and 4)", w, len(got))
				}
				if len(scored) != r.Eval.Batches {
					t.Fatalf("%d ranks: held-out batches scored %v, want %d batches", w, scored, r.Eval.Batches)
				}
				for b, ranks := range scored {
					// Two evaluations, each scoring batch b on rank b mod w.
					if len(ranks) != 2 || ranks[0] != b%w || ranks[1] != b%w {
						t.Fatalf("%d ranks: held-out batch %d scored by ranks %v, want rank %d once per evaluation", w, b, ranks, b%w)
					}
				}
				if w == 1 {
					want = got
					continue
				}
				for i := range want {
					if len(got[i].Values) != len(want[i].Values) || len(want[i].Values) == 0 {
						t.Fatalf("%d ranks, step %d: eval %v, one process %v", w, got[i].Step, got[i].Values, want[i].Values)
					}
					for k, v := range want[i].Values {
						if got[i].Values[k] != v {
							t.Fatalf("%d ranks, step %d: %s = %v, one process %v", w, got[i].Step, k, got[i].Values[k], v)
						}
					}
				}
			}
		})
	}
}
