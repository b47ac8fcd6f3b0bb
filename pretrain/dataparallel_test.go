package pretrain

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/cluster"
)

// runRanks runs r on world goroutine ranks (cluster.Local) and returns
// rank 0's result; opt adjusts each rank's options.
func runRanks(t *testing.T, r Recipe, world int, opt func(rank int, o *RunOptions)) *Result {
	t.Helper()
	comms := cluster.Local(world)
	res := make([]*Result, world)
	errs := make([]error, world)
	var wg sync.WaitGroup
	for rank := range world {
		wg.Go(func() {
			o := RunOptions{Comm: comms[rank]}
			if opt != nil {
				opt(rank, &o)
			}
			res[rank], errs[rank] = Run(context.Background(), r, o)
		})
	}
	wg.Wait()
	for rank, err := range errs {
		if err != nil {
			t.Fatalf("rank %d of %d: %v", rank, world, err)
		}
	}
	return res[0]
}

// sameRun checks that two runs wrote the same checkpoints, final model
// and losses, bit for bit.
func sameRun(t *testing.T, what string, a, b *Result, dirA, dirB string) {
	t.Helper()
	if a.Steps != b.Steps || a.Loss != b.Loss || a.FinalEval != b.FinalEval {
		t.Fatalf("%s: steps %d/%d, loss %v/%v, final eval %v/%v", what, a.Steps, b.Steps, a.Loss, b.Loss, a.FinalEval, b.FinalEval)
	}
	for _, f := range []string{"model.safetensors", checkpoint.OptimizerFile} {
		if !bytes.Equal(readFile(t, filepath.Join(a.Checkpoint, f)), readFile(t, filepath.Join(b.Checkpoint, f))) {
			t.Fatalf("%s: %s of the last checkpoint differs", what, f)
		}
	}
	if !bytes.Equal(readFile(t, filepath.Join(a.Final, "model.safetensors")), readFile(t, filepath.Join(b.Final, "model.safetensors"))) {
		t.Fatalf("%s: final models differ", what)
	}
	ma, err := ReadMetrics(filepath.Join(dirA, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	mb, err := ReadMetrics(filepath.Join(dirB, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(ma) != len(mb) {
		t.Fatalf("%s: %d metric records, %d", what, len(ma), len(mb))
	}
	for i := range ma {
		x, y := ma[i], mb[i]
		if x.Step != y.Step || x.Kind != y.Kind || x.Loss != y.Loss || x.EvalLoss != y.EvalLoss || x.GradNorm != y.GradNorm || x.Tokens != y.Tokens {
			t.Fatalf("%s: metrics record %d: %+v vs %+v", what, i, x, y)
		}
	}
}

// Two and four ranks, each taking its micro-batches of every global batch,
// train the bits one process does: checkpoints, final model, losses and
// held-out losses; a run stopped on one rank of two resumes with one
// process (and one process's with two) and ends as the straight run.
func TestDataParallelMatchesOneProcess(t *testing.T) {
	srcs := synthSources(t)
	dir := t.TempDir()
	r := tinyRecipe(filepath.Join(dir, "one"), srcs...)
	r.Train.Steps, r.Train.MicroBatch = 8, 2 // 4 micro-batches of 2 sequences
	r.Checkpoint.Every, r.Eval.Every = 4, 4
	one := mustRun(t, r, RunOptions{})
	for _, w := range []int{2, 4} {
		rw := r
		rw.Out = filepath.Join(dir, fmt.Sprint("ranks", w))
		got := runRanks(t, rw, w, nil)
		sameRun(t, fmt.Sprintf("%d ranks vs one process", w), one, got, r.Out, rw.Out)
	}
	for _, c := range [][2]int{{2, 1}, {1, 2}} {
		rs := r
		rs.Out = filepath.Join(dir, fmt.Sprintf("resume-%d-%d", c[0], c[1]))
		first := runRanks(t, rs, c[0], func(rank int, o *RunOptions) {
			if rank == c[0]-1 {
				o.stopAt = 5 // seen by the last rank only
			}
		})
		if !first.Interrupted || first.Steps != 5 {
			t.Fatalf("%v: first part %+v", c, first)
		}
		got := runRanks(t, rs, c[1], func(_ int, o *RunOptions) { o.Resume = true })
		sameRun(t, fmt.Sprintf("%d ranks resumed by %d", c[0], c[1]), one, got, r.Out, rs.Out)
	}
}
