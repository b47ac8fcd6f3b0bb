// Command quantize writes a model directory in another precision: FP8 the
// Llama 3 way (E4M3 feed-forward weights with per-row scales in the
// compressed-tensors layout vLLM loads), or BF16/F16/F32 Hugging Face
// weights; and, on request, measures the cost in herd.
//
//	quantize -model DIR -scheme fp8|bf16|f16|f32 -out DIR [-act-scale-ub 1200]
//	         [-heldout TOKENS_DIR [-heldout-fraction 0.02] [-eval-tokens N] [-seq-len T]]
//	         [-rm RM_DIR -prompts FILE.jsonl [-n 64] [-k 4] [-max-new-tokens 64] [-temperature 1] [-top-p 1] [-seed 1]]
//	         [-report FILE.json]
//
// -heldout measures the held-out loss of the input (F32), its BF16
// rounding and the output scheme (FP8 with per-token activation
// quantization, and weights only); -rm with -prompts samples responses
// from the BF16 and the output model for the same prompts and seeds and
// reports the reward model's score distribution of each. The numbers are
// printed as JSON, written to -report, and put in the output's README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/interrupt"
	"github.com/herdml/herd/quantize"
)

func main() {
	ctx, stop := interrupt.Context(context.Background())
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	code := interrupt.ExitCode(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "quantize:", err)
		if code == 0 {
			code = 1
			if errors.Is(err, flag.ErrHelp) {
				code = 2
			}
		}
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quantize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o quantize.Options
	fs.StringVar(&o.Model, "model", "", "input model directory")
	fs.StringVar(&o.Out, "out", "", "output model directory (new, empty, or one herd wrote)")
	fs.StringVar(&o.Scheme, "scheme", "", "fp8, bf16, f16 or f32")
	ub := fs.Float64("act-scale-ub", 0, "fp8: cap on the per-token activation amax (0: the input's, else 1200)")
	heldout := fs.String("heldout", "", "token shards (comma-separated files or directories) whose held-out documents measure the loss")
	fs.Float64Var(&o.Compare.HeldOutFraction, "heldout-fraction", 0.02, "held-out fraction of the shards' documents (the pretraining recipe's data.heldout_fraction)")
	fs.IntVar(&o.Compare.EvalTokens, "eval-tokens", 16384, "held-out tokens scored")
	fs.IntVar(&o.Compare.SeqLen, "seq-len", 0, "held-out sequence length (0: the model's context)")
	fs.StringVar(&o.Compare.RewardModel, "rm", "", "reward model directory scoring sampled responses")
	fs.StringVar(&o.Compare.Prompts, "prompts", "", "JSONL prompts (\"prompt\" or \"messages\" rows) for the reward comparison, or \"tasks\": the built-in tasks' held-out prompts")
	fs.IntVar(&o.Compare.NumPrompts, "n", 64, "prompts used")
	fs.IntVar(&o.Compare.Samples, "k", 4, "responses sampled per prompt")
	fs.IntVar(&o.Compare.MaxNewTokens, "max-new-tokens", 64, "new tokens per response at most")
	fs.Float64Var(&o.Compare.Temperature, "temperature", 1, "sampling temperature (> 0)")
	fs.Float64Var(&o.Compare.TopP, "top-p", 1, "nucleus sampling threshold")
	fs.Uint64Var(&o.Compare.Seed, "seed", 1, "sampling seed (both precisions draw the same random numbers)")
	fs.IntVar(&o.Compare.Workers, "threads", 0, "compute goroutines (0: all cores)")
	report := fs.String("report", "", "also write the report JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *heldout != "" {
		o.Compare.HeldOut = strings.Split(*heldout, ",")
	}
	if !(o.Compare.Temperature > 0) {
		return fmt.Errorf("-temperature %v must be positive", o.Compare.Temperature)
	}
	o.ActivationScaleUB = float32(*ub)
	log := slog.New(slog.NewTextHandler(stderr, nil))
	rep, err := quantize.Run(ctx, o, log)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if *report != "" {
		if err := atomicfile.WriteFile(*report, b, 0o644); err != nil {
			return err
		}
	}
	_, err = stdout.Write(b)
	return err
}
