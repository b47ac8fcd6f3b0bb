// Command pretrain trains a Llama model on Parquet token shards, and
// produces those shards from curated documents.
//
//	pretrain -recipe pretrain_tiny [-resume] [-out DIR] [key=value ...]
//	pretrain -recipe my.yaml -print-recipe            → the resolved recipe (validated), every key documented
//	pretrain -recipe my.yaml -explain optim.lr        → a key's doc and value (-explain optim: a section, all: every key)
//	pretrain validate -recipe my.yaml [key=value ...]   → "ok" or every problem (exit 1)
//	pretrain cp pretrain_tiny my.yaml                 → a shipped recipe, comments and all, to edit
//	pretrain tokenize -tokenizer DIR -out DIR [-bos=true] [-eos=true] [-workers N] DOCS...
//	pretrain average -out DIR CHECKPOINT_DIR...      → Polyak average of checkpoints
//
// Arguments after the flags are key=value overrides of recipe fields
// (`optim.lr=3e-4 train.steps=200`); list elements are addressed by index
// (`stages.0.steps=10`). Ctrl-C saves a checkpoint; -resume
// continues bit-exactly from the newest one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/data/tokens"
	"github.com/herdml/herd/internal/cli"
	"github.com/herdml/herd/pretrain"
	"github.com/herdml/herd/recipes"
)

func main() {
	cli.Main("pretrain", func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		return run(ctx, args, stdout, stderr)
	})
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "tokenize":
			return tokenize(ctx, args[1:], stdout, stderr)
		case "average":
			return average(args[1:], stdout, stderr)
		case "validate":
			return validate(args[1:], stdout, stderr)
		case "cp":
			return cli.Copy(tool, args[1:], stdout)
		}
	}
	fs := flag.NewFlagSet("pretrain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf cli.RecipeFlags
	rf.Register(fs, tool)
	resume := fs.Bool("resume", false, "continue from the newest checkpoint in the run directory")
	force := fs.Bool("force", false, "with -resume: continue even though the recipe changed in ways that alter the run (train.steps, checkpoint.*, eval.* … need no -force)")
	allowTok := fs.Bool("allow-tokenizer-mismatch", false, "train even when the tokenizer (or a source's) differs from the one the token shards were made with")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: pretrain -recipe NAME|FILE [flags] [key=value ...]\n       pretrain validate -recipe NAME|FILE [-out DIR] [key=value ...]\n       pretrain cp NAME FILE\n       pretrain tokenize [flags] DOCS...\n       pretrain average -out DIR CHECKPOINT...\n\nflags:\n")
		fs.PrintDefaults()
	}
	if help, err := cli.Parse(fs, args); help || err != nil {
		return err
	}
	r, err := load(&rf, fs.Args())
	if err != nil {
		return err
	}
	if done, err := rf.Inspect(stdout, stderr, r, func() (string, error) { return r.WarmupClamped(), r.Validate() }); done {
		return err
	}
	if rf.Recipe == "" {
		return rf.NeedRecipe()
	}
	opt := pretrain.RunOptions{Resume: *resume, Force: *force, AllowTokenizerMismatch: *allowTok}
	opt.Logger, opt.Progress = cli.Output(stderr, rf.Verbose, "pretrain")
	res, err := pretrain.Run(ctx, r, opt)
	if err != nil {
		return err
	}
	return report(stdout, r, res)
}

// tool is this command among the recipe tools: its shipped recipes are
// the pretrain_* ones.
var tool = recipes.ToolNamed("pretrain")

// load resolves a recipe: the file or shipped recipe, the key=value
// overrides, then the -out and -workers flags.
func load(rf *cli.RecipeFlags, overrides []string) (pretrain.Recipe, error) {
	return cli.Load(rf, pretrain.Default(), overrides, func(r *pretrain.Recipe) (*string, *int) { return &r.Out, &r.Workers })
}

// validate loads and checks a recipe without writing anything.
func validate(args []string, stdout, stderr io.Writer) error {
	return cli.Validate(tool, args, stdout, stderr, load, func(r pretrain.Recipe) (string, error) { return r.WarmupClamped(), r.Validate() })
}

// report prints the outcome of a run (on rank 0 of a data-parallel job:
// the others' would repeat it).
func report(w io.Writer, r pretrain.Recipe, res *pretrain.Result) error {
	if res.Rank != 0 {
		return nil
	}
	if res.Interrupted {
		fmt.Fprintf(w, "interrupted after step %d; checkpoint %s\ncontinue with: pretrain -recipe … -out %s -resume\n", res.Steps, res.Checkpoint, r.Out)
		return nil
	}
	fmt.Fprintf(w, "trained %d steps, %d tokens; last training loss %.4f\n", res.Steps, res.Tokens, res.Loss)
	if res.EvalTokens > 0 {
		fmt.Fprintf(w, "held-out set: %d tokens; unigram baseline %.4f nats/token\n", res.EvalTokens, res.Unigram)
	}
	if res.LastEval > 0 {
		fmt.Fprintf(w, "held-out loss of the last checkpoint (step %d): %.4f nats/token (perplexity %.2f)\n", res.Steps, res.LastEval, math.Exp(res.LastEval))
	}
	if len(res.Averaged) > 0 && res.AverageEval > 0 {
		fmt.Fprintf(w, "held-out loss of the average of steps %v: %.4f nats/token (perplexity %.2f)\n", res.Averaged, res.AverageEval, math.Exp(res.AverageEval))
	}
	fmt.Fprintf(w, "final model: %s (the %s; average.keep = %s)\nmetrics: %s/%s  plot: %s  report: %s\n",
		res.Final, map[string]string{pretrain.KeepAverage: "average", pretrain.KeepLast: "last checkpoint"}[res.Kept], r.Average.Keep,
		r.Out, pretrain.MetricsFile, res.Plot, res.Report)
	if len(res.Samples) > 0 {
		fmt.Fprintf(w, "\nsamples of the final model:")
	}
	for i, s := range res.Samples {
		fmt.Fprintf(w, "\n--- sample %d ---\n%s%s\n", i+1, s.Prompt, s.Text)
	}
	return nil
}

func tokenize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pretrain tokenize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tokDir := fs.String("tokenizer", "", "tokenizer directory (tokenizer.json, tokenizer_config.json)")
	out := fs.String("out", "", "output directory for tokens-*.parquet and manifest.json")
	bos := fs.Bool("bos", true, "add the tokenizer's BOS token before every document")
	eos := fs.Bool("eos", true, "add the tokenizer's EOS token after every document")
	workers := fs.Int("workers", 0, "encoding goroutines (0 = all cores)")
	rowGroup := fs.Int("row-group-docs", 1024, "documents per Parquet row group (the loader's shuffle unit)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: pretrain tokenize -tokenizer DIR -out DIR [flags] DOCS...\n  DOCS: docs-*.parquet files, directories holding them, or glob patterns\n\nflags:\n")
		fs.PrintDefaults()
	}
	if help, err := cli.Parse(fs, args); help || err != nil {
		return err
	}
	if *tokDir == "" || *out == "" || fs.NArg() == 0 {
		fs.Usage()
		return cli.UsageError{Err: errors.New("tokenize needs -tokenizer, -out and at least one input")}
	}
	tok, err := tokenizer.Load(*tokDir)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	man, err := tokens.Tokenize(ctx, tokens.TokenizeOptions{Inputs: fs.Args(), Out: *out, Tokenizer: tok,
		TokenizerDir: *tokDir, BOS: *bos, EOS: *eos, Workers: *workers, RowGroupDocs: *rowGroup, Logger: log})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d shards, %d documents, %d tokens → %s\n", len(man.Shards), man.Total.Docs, man.Total.Tokens, *out)
	for _, name := range tokens.SortedSources(man) {
		c := man.Sources[name]
		fmt.Fprintf(stdout, "  source %-16q %10d docs %12d tokens\n", name, c.Docs, c.Tokens)
	}
	return nil
}

func average(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pretrain average", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "output model directory")
	weightList := fs.String("weights", "", "relative weights, one per checkpoint, comma-separated (e.g. 0.5,0.3,0.2); default uniform")
	if help, err := cli.Parse(fs, args); help || err != nil {
		return err
	}
	if *out == "" || fs.NArg() == 0 {
		return cli.UsageError{Err: errors.New("usage: pretrain average -out DIR CHECKPOINT_DIR...")}
	}
	weights, err := parseWeights(*weightList, fs.NArg())
	if err != nil {
		return cli.UsageError{Err: err}
	}
	err = checkpoint.AverageModels(*out, fs.Args(), weights)
	var overlap *checkpoint.OverlapError
	if errors.As(err, &overlap) {
		return cli.UsageError{Err: fmt.Errorf("-out %s is (or holds, or lies inside) the input checkpoint %s; write the average to another directory", overlap.Out, overlap.Input)}
	}
	if errors.Is(err, checkpoint.ErrInvalidWeights) {
		return cli.UsageError{Err: err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "averaged %d checkpoints into %s\n", fs.NArg(), *out)
	return nil
}

// parseWeights parses the -weights flag of n checkpoints: comma-separated
// numbers, one per checkpoint; empty means uniform (nil).
func parseWeights(list string, n int) ([]float64, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	parts := strings.Split(list, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("-weights has %d values for %d checkpoints; give one per checkpoint", len(parts), n)
	}
	weights := make([]float64, n)
	for i, part := range parts {
		w, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil {
			return nil, fmt.Errorf("-weights value %d (%q) is not a finite number", i+1, strings.TrimSpace(part))
		}
		weights[i] = w
	}
	return weights, nil
}
