package pretrain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/cluster/clustertest"
)

// runRanks runs r on world goroutine ranks (cluster.Local) and returns
// rank 0's result; opt adjusts each rank's options.
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

// noAbort is a goroutine rank whose Abort returns, so that a test sees
// every rank's error.
type noAbort struct{ cluster.Comm }

func (noAbort) Abort(int, string) {}

// A stage whose micro-batches do not split over the ranks is refused
// before anything is written, naming the key to change; one whose
// micro-batches per rank are not a power of two runs with a warning (not
// bit-identical to one process); a power of two runs quietly.
func TestDataParallelMicroBatchesPerRank(t *testing.T) {
	srcs := synthSources(t)
	for _, c := range []struct {
		name        string
		batchTokens int // sequences of 32 tokens: batchTokens/32
		micro       int
		stageMicro  int // a second stage's micro_batch (0: no second stage)
		err, warn   string
	}{
		{name: "one per rank", batchTokens: 256, micro: 4},
		{name: "two per rank", batchTokens: 256, micro: 2},
		{name: "three per rank", batchTokens: 384, micro: 2, warn: "not a power of two"},
		{name: "one for two ranks", batchTokens: 256, micro: 8, err: "1 micro-batches per step (8 sequences of 32 tokens, 8 per micro-batch) do not split over 2 ranks: set train.micro_batch"},
		{name: "stage one for two ranks", batchTokens: 256, micro: 4, stageMicro: 8, err: "stage stage1: its 1 micro-batches per step (8 sequences of 32 tokens, 8 per micro-batch) do not split over 2 ranks: set stages.0.micro_batch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := tinyRecipe(filepath.Join(t.TempDir(), "run"), srcs...)
			r.Train.Steps, r.Train.BatchTokens, r.Train.MicroBatch = 2, c.batchTokens, c.micro
			r.Eval.Every, r.Checkpoint.Every = 0, 0
			if c.stageMicro > 0 {
				r.Stages = []Stage{{Name: "stage1", Steps: 1, MicroBatch: c.stageMicro}}
			}
			var mu sync.Mutex
			var logs bytes.Buffer
			comms := cluster.Local(2)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for rank := range 2 {
				wg.Go(func() {
					log := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, nil))
					_, errs[rank] = Run(context.Background(), r, RunOptions{Comm: noAbort{comms[rank]}, Logger: log})
				})
			}
			wg.Wait()
			for rank, err := range errs {
				switch {
				case c.err == "" && err != nil:
					t.Fatalf("rank %d: %v", rank, err)
				case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
					t.Fatalf("rank %d: error %v, want one with %q", rank, err, c.err)
				}
			}
			if c.err != "" {
				if _, err := os.Stat(filepath.Join(r.Out, MetricsFile)); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("a refused run wrote %s (%v)", MetricsFile, err)
				}
			}
			if got := strings.Count(logs.String(), "not a power of two"); c.warn != "" && got == 0 || c.warn == "" && got > 0 {
				t.Fatalf("want warning %q: %v; logs:\n%s", c.warn, c.warn != "", logs.String())
			}
		})
	}
}

// lockedWriter serialises the writes of several goroutines.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
