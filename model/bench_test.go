package model_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/herdml/herd/internal/benchutil"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/model/modeltest"
)

// ConfigM is the benchmark configuration of the model-core issue: vocab 256,
// hidden 256, 4 layers, 8 heads, 4 KV heads, FFN 768 (sequence 128, batch 16
// → 42.7 GFLOP per training step).
func configM() model.Config {
	c := model.Config{VocabSize: 256, HiddenSize: 256, IntermediateSize: 768, NumHiddenLayers: 4,
		NumAttentionHeads: 8, NumKeyValueHeads: 4, MaxPositionEmbeddings: 512, RopeTheta: 10000}
	c.Normalize()
	return c
}

func benchBatch(c model.Config, B, T int) *model.Batch {
	rng := rand.New(rand.NewPCG(1, 1))
	b := &model.Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
	for i := range b.Tokens {
		b.Tokens[i] = int32(rng.IntN(c.VocabSize))
		b.Targets[i] = int32(rng.IntN(c.VocabSize))
	}
	return b
}

// BenchmarkTrainStepM measures forward + backward of config M (batch 16 ×
// 128 tokens) and reports GFLOP/s by the 6N + attention count, on the
// build's default backend ("default", kernels.NewCPU), on its pure-Go
// GEMM ("go") and, in openblas builds, on OpenBLAS ("openblas"). Compare
// it with BenchmarkSgemmPeak in the same run: the target for the
// pure-Go step is 60% of that peak.
func BenchmarkTrainStepM(b *testing.B) {
	for _, path := range []string{"default", "go", "openblas"} {
		b.Run(path, func(b *testing.B) {
			c := configM()
			var be *kernels.CPU
			switch path {
			case "go":
				be = kernels.NewCPUGo(0)
			case "openblas":
				var ok bool
				if be, ok = kernels.NewCPUBLAS(0); !ok {
					b.Skip("not an openblas build")
				}
			default:
				be = kernels.NewCPU(0)
			}
			b.Cleanup(be.Close)
			m, err := model.New(c, be)
			if err != nil {
				b.Fatal(err)
			}
			m.Params.Init(c, 1)
			benchTrainStep(b, m)
		})
	}
}

func benchTrainStep(b *testing.B, m *model.Model) {
	c := m.Config
	batch := benchBatch(c, 16, 128)
	m.EnsureGrads()
	if _, err := m.ForwardBackward(batch); err != nil {
		b.Fatal(err)
	}
	flops := model.FLOPsPerToken(c, 128) * 16 * 128
	timeFLOPs(b, flops, m.Backend().Workers(), func() {
		m.Grads.Zero()
		if _, err := m.ForwardBackward(batch); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportMetric(float64(16*128*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkSgemmPeak is the machine's practical peak by the issue's
// definition: the GEMM rate of a large square sgemm (2048³) by OpenBLAS
// with its native kernels when built with -tags openblas and run with
// OPENBLAS_CORETYPE unset (by the default backend in other builds).
func BenchmarkSgemmPeak(b *testing.B) {
	be, ok := kernels.NewCPUBLAS(0)
	if !ok {
		be = kernels.NewCPU(0)
	}
	benchGemm(b, be, false, 2048, 2048, 2048)
}

// BenchmarkGemmM runs the backend's GEMM on the model's largest matmul
// shape (an MLP projection: [2048×256]·[768×256]ᵀ).
func BenchmarkGemmM(b *testing.B) { benchGemm(b, kernels.NewCPU(0), true, 2048, 768, 256) }

// benchGemm times C = A·op(B) for A [M×K] on be, which it closes.
func benchGemm(b *testing.B, be *kernels.CPU, transB bool, M, N, K int) {
	defer be.Close()
	x, w, y := make([]float32, M*K), make([]float32, N*K), make([]float32, M*N)
	for i := range x {
		x[i] = float32(i%7) * 0.1
	}
	for i := range w {
		w[i] = float32(i%5) * 0.1
	}
	ldb := N
	if transB {
		ldb = K
	}
	timeFLOPs(b, 2*float64(M)*float64(N)*float64(K), be.Workers(), func() {
		be.Gemm(false, transB, M, N, K, 1, x, K, w, ldb, 0, y, N)
	})
}

// timeFLOPs runs f b.N times and reports its rate in GFLOP/s for flops
// per call, by wall time and by CPU time (reportCPU).
func timeFLOPs(b *testing.B, flops float64, workers int, f func()) {
	b.ResetTimer()
	cpu0 := benchutil.CPUSeconds()
	for range b.N {
		f()
	}
	reportCPU(b, flops*float64(b.N), cpu0, workers)
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// reportCPU reports GFLOP per CPU-second of this process times the worker
// count: on a shared, loaded machine wall-clock rates swing with other
// processes, while this figure estimates the rate the workers would reach
// with their cores to themselves.
func reportCPU(b *testing.B, flops float64, cpu0 float64, workers int) {
	if s := benchutil.CPUSeconds() - cpu0; s > 0 && cpu0 > 0 {
		b.ReportMetric(flops/s/1e9*float64(workers), "GFLOP/s-cpu")
	}
}

// benchGenerate generates 128 tokens for each of batch prompts of config
// M, in sub-benchmarks: "matvec" (the decoder's matrix-vector fast path),
// "matvec-openblas" (the same on OpenBLAS, in openblas builds), "gemm"
// (every projection through the backend's Gemm, as before it) and
// "copy" (a copy() of the bytes of the weights a decoding step reads,
// once per step, as a memory-bandwidth yardstick). Each reports tokens/s
// and weight GB/s: the bytes of the matmul weights, read once per
// decoding step, over the time.
func benchGenerate(b *testing.B, batch int) {
	c := configM()
	const newTokens = 128
	wbytes := 4 * float64(model.MatmulParams(c))
	prompts := make([][]int32, batch)
	for i := range prompts {
		prompts[i] = []int32{1, 2, 3, 4}
	}
	for _, path := range []string{"gemm", "matvec", "matvec-openblas"} {
		b.Run(path, func(b *testing.B) {
			var m *model.Model
			if path == "matvec-openblas" {
				be, ok := kernels.NewCPUBLAS(0)
				if !ok {
					b.Skip("not an openblas build")
				}
				m = newTestModelOn(b, c, be)
			} else {
				m = newCPUTestModel(b, c, 0)
			}
			model.SetDecodeGemm(m, path == "gemm")
			b.ResetTimer()
			for range b.N {
				if _, err := m.Generate(context.Background(), prompts, model.SampleOptions{Temperature: 0.8, TopK: 40, MaxTokens: newTokens, Seed: 1}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batch*newTokens*b.N)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(wbytes*newTokens*float64(b.N)/b.Elapsed().Seconds()/1e9, "weightGB/s")
		})
	}
	b.Run("copy", func(b *testing.B) {
		src := make([]float32, model.MatmulParams(c))
		for i := range src {
			src[i] = float32(i)
		}
		dst := make([]float32, len(src))
		b.ResetTimer()
		for range b.N {
			copy(dst, src)
		}
		b.ReportMetric(wbytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "weightGB/s")
	})
}

// BenchmarkGenerateM1 and BenchmarkGenerateM16 measure KV-cache generation
// of 128 tokens for config M, one sequence and a batch of 16.
func BenchmarkGenerateM1(b *testing.B)  { benchGenerate(b, 1) }
func BenchmarkGenerateM16(b *testing.B) { benchGenerate(b, 16) }

// config29M is the 29M-parameter Llama of the single-stream
// comparison with llama.cpp (hidden 512, FFN 1536, 8 layers, 8/4 heads,
// vocab 4096): its 117 MB of F32 weights do not fit in the caches, as a
// real model's do not, where config M's 13 MB do.
func config29M() model.Config {
	c := model.Config{VocabSize: 4096, HiddenSize: 512, IntermediateSize: 1536, NumHiddenLayers: 8,
		NumAttentionHeads: 8, NumKeyValueHeads: 4, MaxPositionEmbeddings: 512}
	c.Normalize()
	return c
}

// BenchmarkGenerateBatchRatio measures the speed-up of batched decoding,
// for config M ("M") and the 29M model ("29M"): each iteration generates
// 128 tokens for one sequence and then for a batch of 16, timed
// separately, so that both see the same machine load; it reports both
// rates and their ratio (batch16/single, the issue asks for ≥ 4).
func BenchmarkGenerateBatchRatio(b *testing.B) {
	for _, cfg := range []struct {
		name string
		c    model.Config
	}{{"M", configM()}, {"29M", config29M()}} {
		b.Run(cfg.name, func(b *testing.B) { benchBatchRatio(b, cfg.c) })
	}
}

func benchBatchRatio(b *testing.B, c model.Config) {
	m := newCPUTestModel(b, c, 0)
	opt := model.SampleOptions{Temperature: 0.8, TopK: 40, MaxTokens: 128, Seed: 1}
	batch := make([][]int32, 16)
	for i := range batch {
		batch[i] = []int32{1, 2, 3, 4}
	}
	ctx := context.Background()
	var tSingle, tBatch, cSingle, cBatch float64 // wall and CPU seconds
	var nSingle, nBatch int
	for b.Loop() {
		for _, prompts := range [][][]int32{batch[:1], batch} {
			start, cpu0 := time.Now(), benchutil.CPUSeconds()
			g, err := m.Generate(ctx, prompts, opt)
			if err != nil {
				b.Fatal(err)
			}
			sec, cpu := time.Since(start).Seconds(), benchutil.CPUSeconds()-cpu0
			n := 0
			for _, s := range g {
				n += len(s.Tokens)
			}
			if len(prompts) == 1 {
				tSingle, cSingle, nSingle = tSingle+sec, cSingle+cpu, nSingle+n
			} else {
				tBatch, cBatch, nBatch = tBatch+sec, cBatch+cpu, nBatch+n
			}
		}
	}
	single, batched := float64(nSingle)/tSingle, float64(nBatch)/tBatch
	b.ReportMetric(single, "single_tokens/s")
	b.ReportMetric(batched, "batch16_tokens/s")
	b.ReportMetric(batched/single, "batch16/single")
	// The same ratio by the process's CPU seconds, which a loaded machine
	// disturbs less than wall time (pool workers spinning count as CPU).
	if cSingle > 0 && cBatch > 0 {
		b.ReportMetric(float64(nBatch)/cBatch/(float64(nSingle)/cSingle), "batch16/single-cpu")
	}
}

// newCPUTestModel is an initialised model on a CPU backend with the given
// workers (0 = all cores) that is closed when the test ends.
func newCPUTestModel(t testing.TB, c model.Config, workers int) *model.Model {
	t.Helper()
	return newTestModelOn(t, c, kernels.NewCPU(workers))
}

// newTestModelOn is an initialised model on be, which is closed when the
// test ends.
func newTestModelOn(t testing.TB, c model.Config, be *kernels.CPU) *model.Model {
	t.Helper()
	t.Cleanup(be.Close)
	m, err := model.New(c, be)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(c, 1)
	return m
}

// TestTrainStepAllocs checks that a training step allocates nothing once
// the workspace exists.
func TestTrainStepAllocs(t *testing.T) {
	c := modeltest.TinyConfig(false, true)
	m := newCPUTestModel(t, c, 2)
	batch := modeltest.RandomBatch(c, 2, 16, rand.New(rand.NewPCG(1, 1)), true, true)
	m.EnsureGrads()
	if _, err := m.ForwardBackward(batch); err != nil {
		t.Fatal(err)
	}
	// AllocsPerRun counts every allocation in the process and reports the
	// integer mean: enough runs that a stray runtime allocation on a loaded
	// machine rounds away, while one allocation per step still shows.
	allocs := testing.AllocsPerRun(40, func() {
		if _, err := m.ForwardBackward(batch); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per training step, want 0", allocs)
	}
}

// TestDecodeStepAllocs checks that a KV-cache decoding step allocates
// nothing once the decoder's scratch has grown.
func TestDecodeStepAllocs(t *testing.T) {
	checkDecodeStepAllocs(t, newCPUTestModel(t, modeltest.TinyConfig(true, false), 2), "decode step")
}

// checkDecodeStepAllocs fails t unless a decoding step of two sequences
// on m allocates nothing after the first (what names the step).
func checkDecodeStepAllocs(t *testing.T, m *model.Model, what string) {
	t.Helper()
	dec, err := m.NewDecoder(2, 40)
	if err != nil {
		t.Fatal(err)
	}
	slots := []int{0, 1}
	toks := [][]int32{{1}, {2}}
	if _, err := dec.Step(slots, toks, false); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := dec.Step(slots, toks, false); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per %s, want 0", allocs, what)
	}
}

// BenchmarkRejectionSampling compares rejection sampling's generation — 8
// prompts of 90 tokens (the length of a chat-rendered task prompt), K = 8
// samples each from one shared prefill, 16 new tokens per sample — with
// single-stream generation of the same prompt and length, in one run, and
// reports the ratio of sampled tokens per second (rejection sampling's
// throughput over the model's single-stream rate).
func BenchmarkRejectionSampling(b *testing.B) {
	c := configM()
	m := newCPUTestModel(b, c, 0)
	const nPrompts, k, newTokens, promptLen = 8, 8, 16, 90
	prompts := make([][]int32, nPrompts)
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range prompts {
		for range promptLen {
			prompts[i] = append(prompts[i], int32(rng.IntN(c.VocabSize)))
		}
	}
	opt := model.SampleOptions{Temperature: 0.8, TopP: 0.95, MaxTokens: newTokens, Seed: 1}
	ctx := context.Background()
	var single, shared float64 // seconds
	var singleTok, sharedTok int
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		g, err := m.Generate(ctx, prompts[:1], opt)
		if err != nil {
			b.Fatal(err)
		}
		single += time.Since(start).Seconds()
		singleTok += len(g[0].Tokens)
		start = time.Now()
		res, err := m.GenerateShared(ctx, prompts, k, opt, nil)
		if err != nil {
			b.Fatal(err)
		}
		shared += time.Since(start).Seconds()
		for _, s := range res.Samples {
			for _, g := range s {
				sharedTok += len(g.Tokens)
			}
		}
	}
	b.ReportMetric(float64(singleTok)/single, "single_tokens/s")
	b.ReportMetric(float64(sharedTok)/shared, "rs_tokens/s")
	b.ReportMetric(float64(sharedTok)/shared/(float64(singleTok)/single), "rs/single")
}
