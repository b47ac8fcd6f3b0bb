// Command demo is herd's main job on its built-in default corpus: it trains
// a small byte-level Llama model on the Go distribution's own source tree
// for about a minute, reports held-out loss against the unigram baseline,
// saves a Hugging Face checkpoint, and prints samples.
//
//	go run -tags openblas ./cmd/demo [-duration 60s] [-corpus DIR] [-out DIR]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// goSourceTree is the default corpus: $(go env GOROOT)/src.
func goSourceTree() string {
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		if root := strings.TrimSpace(string(out)); root != "" {
			return filepath.Join(root, "src")
		}
	}
	return filepath.Join(runtime.GOROOT(), "src")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opt := defaultTrainOptions()
	corpus := fs.String("corpus", "", "directory of text files to train on (default: $(go env GOROOT)/src)")
	exts := fs.String("ext", ".go", "comma-separated file extensions to read")
	duration := fs.Duration("duration", time.Minute, "training time budget")
	out := fs.String("out", "runs/demo", "output directory (checkpoint, metrics.jsonl)")
	threads := fs.Int("threads", 0, "worker goroutines (0 = all cores)")
	fs.IntVar(&opt.Batch, "batch", opt.Batch, "sequences per step")
	fs.IntVar(&opt.Seq, "seq", opt.Seq, "sequence length")
	fs.Uint64Var(&opt.Seed, "seed", opt.Seed, "initialisation seed")
	maxSteps := fs.Int("max-steps", 0, "stop after this many steps (0 = only the time budget)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *corpus == "" {
		*corpus = goSourceTree()
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	train, held, err := listFiles(*corpus, strings.Split(*exts, ","), 50)
	if err != nil {
		return err
	}
	be := kernels.NewCPU(*threads)
	defer be.Close()
	t, err := newTrainer(opt, be, train)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	metricsFile, err := os.Create(filepath.Join(*out, "metrics.jsonl"))
	if err != nil {
		return err
	}
	defer metricsFile.Close()
	metrics := json.NewEncoder(metricsFile)
	log.Info("training", "corpus", *corpus, "train_files", len(train), "heldout_files", len(held),
		"params", t.m.Params.Layout.Total, "backend", be.Name(), "budget", *duration)

	const evalBatches = 8
	h0, err := unigramEntropy(held, opt, evalBatches)
	if err != nil {
		return err
	}
	flopsPerStep := model.FLOPsPerToken(t.m.Config, opt.Seq) * float64(opt.Batch*opt.Seq)
	start := time.Now()
	deadline := start.Add(*duration)
	var last stepResult
	for {
		if ctx.Err() != nil {
			log.Warn("interrupted; saving a checkpoint")
			break
		}
		if *maxSteps > 0 && t.step >= *maxSteps || time.Now().After(deadline) {
			break
		}
		if t.step == 5 {
			// Fit the cosine schedule to the time budget from the measured speed.
			per := time.Since(start) / 5
			if steps := int(time.Until(deadline)/per) + 5; steps > opt.Warmup+10 && *maxSteps == 0 {
				t.sched.Total = steps
			}
		}
		last, err = t.trainStep()
		if err != nil {
			return err
		}
		el := time.Since(start).Seconds()
		rec := map[string]any{"step": t.step, "loss": last.Loss, "lr": last.LR, "grad_norm": last.GradNorm,
			"skipped": last.Skipped, "tokens_per_s": float64(t.step*opt.Batch*opt.Seq) / el,
			"gflops": flopsPerStep * float64(t.step) / el / 1e9, "elapsed_s": el}
		if err := metrics.Encode(rec); err != nil {
			return err
		}
		if t.step%25 == 0 || t.step == 1 {
			fmt.Fprintf(stderr, "step %5d  loss %.3f  lr %.2e  |g| %.2f  %6.0f tok/s  %5.1f GFLOP/s  %4.0fs left\n",
				t.step, last.Loss, last.LR, last.GradNorm, rec["tokens_per_s"], rec["gflops"], time.Until(deadline).Seconds())
		}
	}
	ev, err := evalLoss(t.m, held, opt, evalBatches)
	if err != nil {
		return err
	}
	dir, err := t.save(filepath.Join(*out, "checkpoints"))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "trained %d steps (%d tokens) in %.0fs\n", t.step, t.step*opt.Batch*opt.Seq, time.Since(start).Seconds())
	fmt.Fprintf(stdout, "held-out loss %.3f nats/byte (%.3f bits/byte); unigram baseline %.3f nats/byte\n", ev, ev/0.6931471805599453, h0)
	fmt.Fprintf(stdout, "checkpoint: %s\n", dir)
	for i, prompt := range []string{"package main\n\nimport (\n", "func (s *Server) ", "// Copyright 2009 The Go Authors."} {
		text, err := sample(ctx, t.m, prompt, 200, uint64(i))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\n--- sample %d ---\n%s%s\n", i+1, prompt, text)
	}
	return nil
}

// sample continues a text prompt byte by byte.
func sample(ctx context.Context, m *model.Model, prompt string, n int, seed uint64) (string, error) {
	ids := []int32{bosID}
	for _, c := range []byte(prompt) {
		ids = append(ids, int32(c))
	}
	gens, err := m.Generate(ctx, [][]int32{ids}, model.SampleOptions{Temperature: 0.8, TopK: 40, MaxTokens: n, Seed: seed, StopTokens: []int32{eosID}})
	if err != nil && !errors.Is(err, context.Canceled) {
		return "", err
	}
	var b bytes.Buffer
	for _, t := range gens[0].Tokens {
		if t < 256 {
			b.WriteByte(byte(t))
		}
	}
	return b.String(), nil
}

var _ = checkpoint.Latest
