package pretrain

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/train"
)

// BenchmarkDataParallel trains pretrain_tiny's model over a 256-token
// vocabulary (16 sequences of 128 tokens per step in 2 micro-batches of
// 8) in one process and, when run under mpirun with -tags mpi, over every
// rank of the job on the same global batch (one micro-batch per rank of
// 2). Every process runs on one thread: one kernel worker and GOMAXPROCS
// 1, so the data loader and the garbage collector share it too.
//
//	go test -c -tags mpi ./pretrain
//	mpirun --allow-run-as-root --oversubscribe -np 2 ./pretrain.test -test.run '^$' -test.bench DataParallel -test.benchtime 30x
//
// (a fixed -benchtime Nx, so every rank runs the same steps). It reports
// training tokens/s over the steps after the first two (ns/op times the
// same steps), the all-reduce's share of the step time and the bytes each
// rank sent per step beside the gradient's size. While rank 0 runs the
// one-process case the other ranks wait sleeping, not polling a core in a
// collective; they print nothing.
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
	if comm.Rank() != 0 {
		quiet(b)
	}
	dir := sharedTempDir(b, comm)
	srcs := benchSource(b)
	b.Run("procs=1", func(b *testing.B) {
		if comm.Rank() != 0 {
			b.Skip("rank 0 alone runs the one-process case")
		}
		benchDataParallel(b, srcs, cluster.Single{}, dir)
	})
	if comm.Size() == 1 {
		b.Log("one process: run the test binary under mpirun -np 2 (built with -tags mpi) for the data-parallel case")
		return
	}
	oneDone := filepath.Join(dir, "procs1-done")
	if comm.Rank() == 0 {
		if err := os.WriteFile(oneDone, nil, 0o644); err != nil {
			b.Fatal(err)
		}
	} else {
		for deadline := time.Now().Add(time.Hour); ; time.Sleep(50 * time.Millisecond) {
			if _, err := os.Stat(oneDone); err == nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("rank 0 did not finish the one-process case within an hour")
			}
		}
	}
	b.Run(fmt.Sprintf("procs=%d", comm.Size()), func(b *testing.B) { benchDataParallel(b, srcs, comm, dir) })
}

// quiet sends this process's standard output to /dev/null, so that the
// benchmark lines of a job are rank 0's alone (the others would print
// their names and timings in between).
func quiet(b *testing.B) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	if err := syscall.Dup3(int(null.Fd()), int(os.Stdout.Fd()), 0); err != nil {
		b.Fatal(err)
	}
}

// sharedTempDir is a directory rank 0 makes (and removes at the end) and
// every rank is told.
func sharedTempDir(b *testing.B, comm cluster.Comm) string {
	buf := make([]byte, 4096)
	if comm.Rank() == 0 {
		d, err := os.MkdirTemp("", "herd-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		copy(buf, d)
	}
	if err := comm.Broadcast(buf, 0); err != nil {
		b.Fatal(err)
	}
	return strings.TrimRight(string(buf), "\x00")
}

func benchDataParallel(b *testing.B, srcs []Source, comm cluster.Comm, dir string) {
	const warm = 2
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	r := Default()
	// A new run directory for each call (b.N differs between the calls of
	// one sub-benchmark; the communicator's size between sub-benchmarks).
	r.Out = filepath.Join(dir, fmt.Sprintf("run-procs%d-n%d", comm.Size(), b.N))
	r.Workers = 1
	r.Model = ModelSpec{VocabSize: 256, HiddenSize: 128, IntermediateSize: 384, NumHiddenLayers: 4, NumAttentionHeads: 4,
		NumKeyValueHeads: 2, RMSNormEps: 1e-5, RopeTheta: 10000, TieWordEmbeddings: true, InitializerRange: 0.02}
	r.Data.Sources = srcs
	r.Train = Train{Steps: warm + b.N, SeqLen: 128, BatchTokens: 2048, MicroBatch: 8, MaxBadSteps: 5, LogEvery: 1000}
	r.Eval.Tokens = 0
	r.Checkpoint = CheckpointSpec{Every: 0, Keep: 1}
	b.StopTimer()
	res, err := Run(context.Background(), r, RunOptions{Comm: comm, onStep: func(step int) {
		switch step {
		case warm:
			b.ResetTimer()
			b.StartTimer()
		case warm + b.N:
			b.StopTimer()
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
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
