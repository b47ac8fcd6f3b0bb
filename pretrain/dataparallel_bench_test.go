package pretrain

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/train"
)

// BenchmarkDataParallel trains pretrain_tiny's model over a 256-token
// vocabulary (16 sequences of 128 tokens per step in 2 micro-batches of
// 8, 1 worker thread per process) in one
// process and, when run under mpirun with -tags mpi, over every rank of
// the job on the same global batch:
//
//	go test -c -tags mpi ./pretrain
//	mpirun --allow-run-as-root --oversubscribe -np 2 ./pretrain.test -test.run '^$' -test.bench DataParallel -test.benchtime 30x
//
// (a fixed -benchtime Nx, so every rank runs the same steps). It reports
// training tokens/s over the steps after the first two, the all-reduce's
// share of the step time and the bytes each rank sent per step.
func BenchmarkDataParallel(b *testing.B) {
	comm, err := cluster.Open()
	if err != nil {
		b.Fatal(err)
	}
	if comm.Size() > 1 {
		if bt := flag.Lookup("test.benchtime"); bt == nil || !strings.HasSuffix(bt.Value.String(), "x") {
			b.Fatal("under mpirun, pass a fixed -test.benchtime Nx so every rank runs the same number of steps")
		}
	}
	srcs := benchSource(b)
	b.Run("procs=1", func(b *testing.B) {
		if comm.Rank() != 0 {
			b.Skip("rank 0 alone runs the one-process case")
		}
		benchDataParallel(b, srcs, cluster.Single{})
	})
	if comm.Size() == 1 {
		b.Log("one process: run the test binary under mpirun -np 2 (built with -tags mpi) for the data-parallel case")
		return
	}
	b.Run(fmt.Sprintf("procs=%d", comm.Size()), func(b *testing.B) { benchDataParallel(b, srcs, comm) })
}

func benchDataParallel(b *testing.B, srcs []Source, comm cluster.Comm) {
	const warm = 2
	// Rank 0 makes the run directory every rank shares.
	var dir string
	buf := make([]byte, 4096)
	if comm.Rank() == 0 {
		d, err := os.MkdirTemp("", "herd-bench-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(d)
		copy(buf, d)
	}
	if err := comm.Broadcast(buf, 0); err != nil {
		b.Fatal(err)
	}
	dir = strings.TrimRight(string(buf), "\x00")
	r := Default()
	r.Out = filepath.Join(dir, "run")
	r.Workers = 1
	r.Model = ModelSpec{VocabSize: 256, HiddenSize: 128, IntermediateSize: 384, NumHiddenLayers: 4, NumAttentionHeads: 4,
		NumKeyValueHeads: 2, RMSNormEps: 1e-5, RopeTheta: 10000, TieWordEmbeddings: true, InitializerRange: 0.02}
	r.Data.Sources = srcs
	r.Train = Train{Steps: warm + b.N, SeqLen: 128, BatchTokens: 2048, MicroBatch: 8, MaxBadSteps: 5, LogEvery: 1000}
	r.Eval.Tokens = 0
	r.Checkpoint = CheckpointSpec{Every: 0, Keep: 1}
	b.ResetTimer()
	res, err := Run(context.Background(), r, RunOptions{Comm: comm, onStep: func(step int) {
		if step == warm {
			b.ResetTimer()
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if comm.Rank() != 0 || res.Steps != warm+b.N {
		return
	}
	recs, err := train.ReadMetrics(filepath.Join(r.Out, MetricsFile))
	if err != nil {
		b.Fatal(err)
	}
	var el0, el1, comms, bytes float64
	for _, rec := range recs {
		if rec.Kind != "train" {
			continue
		}
		v := rec.Values
		switch {
		case rec.Step == warm:
			el0 = v["elapsed_s"]
		case rec.Step > warm:
			el1 = v["elapsed_s"]
			comms += v["allreduce_s"]
			bytes += v["allreduce_bytes"]
		}
	}
	if el1 <= el0 {
		return
	}
	b.ReportMetric(float64(b.N*2048)/(el1-el0), "tokens/s")
	b.ReportMetric(100*comms/(el1-el0), "allreduce_%")
	b.ReportMetric(bytes/float64(b.N), "bytes_sent/step")
	c, err := r.ModelConfig(r.Plan()[0], 256)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(4*model.NewLayout(c).Total), "grad_bytes")
}
