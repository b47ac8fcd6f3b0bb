package pretrain

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/herdml/herd/internal/benchutil"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
)

// configM is the model core's benchmark configuration M (model/bench_test.go):
// vocab 256, hidden 256, 4 layers, 8 heads, 4 KV heads, FFN 768; trained on
// sequences of 128, 16 per step.
func configM() ModelSpec {
	return ModelSpec{VocabSize: 256, HiddenSize: 256, IntermediateSize: 768, NumHiddenLayers: 4, NumAttentionHeads: 8,
		NumKeyValueHeads: 4, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 512, InitializerRange: 0.02}
}

// benchSource writes a 256-token-vocabulary source of about 1.5M tokens.
func benchSource(b *testing.B) []Source {
	dir := b.TempDir()
	d := synthSource(b, dir, "bench", 2000, 500, 256, 256, 5, 50, 1500)
	return []Source{{Name: "bench", Paths: []string{d}}}
}

// bareSteps runs n forward/backward passes of config M on a fixed random
// batch, exactly as model.BenchmarkTrainStepM does, and returns tokens/s.
func bareSteps(b *testing.B, n int) rates {
	r := Default()
	r.Model = configM()
	r.Train.SeqLen = 128
	c, err := r.ModelConfig(r.Plan()[0], 256)
	if err != nil {
		b.Fatal(err)
	}
	be := kernels.NewCPU(0)
	defer be.Close()
	m, err := model.New(c, be)
	if err != nil {
		b.Fatal(err)
	}
	m.Params.Init(c, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	batch := &model.Batch{B: 16, T: 128, Tokens: make([]int32, 2048), Targets: make([]int32, 2048)}
	for i := range batch.Tokens {
		batch.Tokens[i], batch.Targets[i] = int32(rng.IntN(256)), int32(rng.IntN(256))
	}
	m.EnsureGrads()
	if _, err := m.ForwardBackward(batch); err != nil {
		b.Fatal(err)
	}
	start, cpu := time.Now(), benchutil.CPUSeconds()
	for range n {
		m.Grads.Zero()
		if _, err := m.ForwardBackward(batch); err != nil {
			b.Fatal(err)
		}
	}
	return rates{wall: float64(n*2048) / time.Since(start).Seconds(), cpu: float64(n*2048) / (benchutil.CPUSeconds() - cpu)}
}

// rates are tokens per second of wall-clock time and per second of the
// process's CPU time (less sensitive to other work on the machine).
type rates struct{ wall, cpu float64 }

func (r *rates) add(o rates) { r.wall += o.wall; r.cpu += o.cpu }

// loopSteps trains config M for n steps through Run (data loading from
// token shards with prefetching, AdamW, clipping, schedule, metrics) and
// returns the tokens/s from the start of training to the end of step n.
func loopSteps(b *testing.B, srcs []Source, n int) rates {
	r := Default()
	r.Out = filepath.Join(b.TempDir(), "run")
	r.Model = configM()
	r.Data.Sources = srcs
	r.Train = Train{Steps: n, SeqLen: 128, BatchTokens: 2048, MicroBatch: 16, MaxBadSteps: 5, LogEvery: 1000}
	r.Optim.Warmup = 2
	r.Eval.Tokens = 0
	r.Checkpoint = CheckpointSpec{Every: 0, Keep: 1}
	var start time.Time
	var cpu float64
	var out rates
	onStep := func(step int) {
		switch step {
		case 0:
			start, cpu = time.Now(), benchutil.CPUSeconds()
		case n:
			out = rates{wall: float64(n*2048) / time.Since(start).Seconds(), cpu: float64(n*2048) / (benchutil.CPUSeconds() - cpu)}
		}
	}
	res, err := Run(context.Background(), r, RunOptions{onStep: onStep})
	if err != nil {
		b.Fatal(err)
	}
	if res.Steps != n {
		b.Fatalf("ran %d steps", res.Steps)
	}
	return out
}

// BenchmarkLoopM compares, in one run, the training loop's tokens/s on
// config M (real token shards, data loading included) with the model
// core's bare forward/backward rate on the same shape. Each iteration runs
// 20 bare steps and a 20-step training run, alternating.
func BenchmarkLoopM(b *testing.B) {
	srcs := benchSource(b)
	const n = 20
	var bare, loop rates
	for range b.N {
		bare.add(bareSteps(b, n))
		loop.add(loopSteps(b, srcs, n))
	}
	k := float64(b.N)
	b.ReportMetric(bare.wall/k, "bare-tokens/s")
	b.ReportMetric(loop.wall/k, "loop-tokens/s")
	b.ReportMetric(100*loop.wall/bare.wall, "loop/bare-%")
	b.ReportMetric(100*loop.cpu/bare.cpu, "loop/bare-cpu-%")
}

// BenchmarkLoaderM measures data loading alone: reading token shards,
// packing, shuffling and batching config M's global batches (16×128). Run
// it with the default -benchtime: a group of chunks is decoded every ~700
// steps, so a handful of iterations mostly measures one decode.
func BenchmarkLoaderM(b *testing.B) {
	srcs := benchSource(b)
	s, err := newPackedStream(srcs, packedStreamOptions{SeqLen: 128, Seed: 1, Vocab: 256, HeldOut: 0.01}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l, err := newBatchLoader(s, 16, 16, 0, 1)
	if err != nil {
		b.Fatal(err)
	}
	sb := l.NewStepBatch()
	if err := l.Next(sb); err != nil { // opens the first chunk group
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := l.Next(sb); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*2048)/b.Elapsed().Seconds(), "tokens/s")
}
