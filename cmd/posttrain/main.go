// Command posttrain trains a pretrained Llama model the way Llama 3 made
// its chat models: supervised fine-tuning, a reward model, and DPO, each a
// recipe kind; it also scores rows with a reward model, averages finished
// runs, and writes built-in task data.
//
//	posttrain -recipe sft_tiny|rm_tiny|dpo_tiny|FILE [-resume] [-out DIR] [key=value ...]
//	posttrain -recipe FILE -print-recipe                 → the resolved recipe (validated), every key documented
//	posttrain -recipe FILE -explain dpo.beta             → a key's doc and value (a section, or all)
//	posttrain cp sft_tiny my.yaml                        → a shipped recipe, comments and all, to edit
//	posttrain validate -recipe FILE [key=value ...]      → "ok" or every problem (exit 1)
//	posttrain score -model RM_DIR -jsonl IN [-out FILE]  → the reward of every row
//	posttrain average -out DIR [-weights w1,w2,...] RUN_OR_MODEL_DIR...
//	posttrain data -kind sft|pref [-tasks add,reverse,...] -n N [-seed S] -out FILE
//	posttrain eval -model DIR [-tasks a,b] [-n N] [-k K] [-rm RM_DIR] → held-out pass@1/pass@k per task
//
// Arguments after the flags are key=value overrides of recipe fields
// (`optim.lr=1e-5 train.steps=200`); list elements are addressed by index
// (`rounds.sft.0=optim.lr=1e-5`). Ctrl-C saves a checkpoint; -resume
// continues bit-exactly from the newest one.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/cli"
	"github.com/herdml/herd/posttrain"
	"github.com/herdml/herd/recipes"
	"github.com/herdml/herd/tasks"
)

func main() { cli.Main("posttrain", run) }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "score":
			return score(ctx, args[1:], stdin, stdout, stderr)
		case "average":
			return average(args[1:], stdout, stderr)
		case "data":
			return data(args[1:], stdout, stderr)
		case "eval":
			return eval(ctx, args[1:], stdout, stderr)
		case "validate":
			return validate(args[1:], stdout, stderr)
		case "cp":
			return cli.Copy(tool, args[1:], stdout)
		}
	}
	fs := flag.NewFlagSet("posttrain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf cli.RecipeFlags
	rf.Register(fs, tool)
	resume := fs.Bool("resume", false, "continue from the newest checkpoint in the run directory")
	force := fs.Bool("force", false, "with -resume: continue even though the recipe changed in ways that alter the run")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: posttrain -recipe NAME|FILE [flags] [key=value ...]\n       posttrain validate -recipe NAME|FILE [-out DIR] [key=value ...]\n       posttrain cp NAME FILE\n       posttrain score -model RM_DIR -jsonl IN [-out FILE]\n       posttrain average -out DIR [-weights w,...] RUN_OR_MODEL_DIR...\n       posttrain data -kind sft|pref -n N -out FILE\n       posttrain eval -model DIR [-tasks a,b] [-n N] [-k K] [-rm RM_DIR]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if help, err := cli.Parse(fs, args); help || err != nil {
		return err
	}
	r, err := load(&rf, fs.Args())
	if err != nil {
		return err
	}
	if done, err := rf.Inspect(stdout, stderr, r, func() (string, error) { return "", r.Validate() }); done {
		return err
	}
	if rf.Recipe == "" {
		return rf.NeedRecipe()
	}
	opt := posttrain.RunOptions{Resume: *resume, Force: *force}
	opt.Logger, opt.Progress = cli.Output(stderr, rf.Verbose, r.Kind)
	if r.Kind == posttrain.KindRounds {
		res, err := posttrain.RunRounds(ctx, r, opt)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(stdout, "interrupted; rerun the same command to continue (finished stages are kept, the current one resumes)\n")
			}
			return err
		}
		fmt.Fprintf(stdout, "held-out pass@1 after every stage:\n%s\nfinal model: %s\nreport: %s\n", res.Table, res.Final, filepath.Join(r.Out, "report.html"))
		return nil
	}
	res, err := posttrain.Run(ctx, r, opt)
	if err != nil {
		return err
	}
	return report(stdout, r, res)
}

// tool is this command among the recipe tools: its shipped recipes are
// the sft_, rm_, dpo_, rs_, rounds_ and posttrain_ ones.
var tool = recipes.ToolNamed("posttrain")

// load resolves a recipe: the file or shipped recipe, the key=value
// overrides, then the -out and -workers flags.
func load(rf *cli.RecipeFlags, overrides []string) (posttrain.Recipe, error) {
	return cli.Load(rf, posttrain.Default(), overrides, func(r *posttrain.Recipe) (*string, *int) { return &r.Out, &r.Workers })
}

// validate loads and checks a recipe without writing anything.
func validate(args []string, stdout, stderr io.Writer) error {
	return cli.Validate(tool, args, stdout, stderr, load, func(r posttrain.Recipe) (string, error) { return "", r.Validate() })
}

// report prints the outcome of a run (on rank 0 of a data-parallel job:
// the others' would repeat it).
func report(w io.Writer, r posttrain.Recipe, res *posttrain.Result) error {
	if res.Rank != 0 {
		return nil
	}
	if st := res.RS; st != nil {
		if res.Interrupted {
			fmt.Fprintf(w, "interrupted after %d chunks; rerun the same command to continue (finished chunks are kept)\n", st.Chunks)
			return nil
		}
		pass := 0.0
		if st.Samples > 0 {
			pass = float64(st.Passed) / float64(st.Samples)
		}
		fmt.Fprintf(w, "rs: %d prompts × %d samples: %.1f%% passed, %d prompts dropped (all failed); %d SFT rows in %s, %d pairs in %s (%d too close)\n",
			st.Prompts, r.RS.K, 100*pass, st.AllFailed, st.SFTRows, filepath.Join(r.Out, posttrain.RSSFTDir), st.Pairs, filepath.Join(r.Out, posttrain.RSPrefDir), st.CloseDropped)
		if st.Seconds > 0 {
			fmt.Fprintf(w, "sampled %d tokens at %.0f tokens/s\n", st.SampledTokens, float64(st.SampledTokens)/st.Seconds)
		}
		return nil
	}
	if res.Interrupted {
		fmt.Fprintf(w, "interrupted after step %d; checkpoint %s\ncontinue with: posttrain -recipe … -out %s -resume\n", res.Steps, res.Checkpoint, r.Out)
		return nil
	}
	fmt.Fprintf(w, "%s: trained %d steps; last training loss %.4f\n", r.Kind, res.Steps, res.Loss)
	show := func(what string, m map[string]float64, keys ...string) {
		var parts []string
		for _, k := range keys {
			if v, ok := m[k]; ok {
				parts = append(parts, fmt.Sprintf("%s %.4g", k, v))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "%s: %s\n", what, strings.Join(parts, ", "))
		}
	}
	show("last step", res.Metrics, "rewards/accuracies", "rewards/margins", "nll", "accuracy", "margin")
	show("held-out", res.Eval, "eval_loss", "eval_accuracy", "eval_margin", "eval_rewards/accuracies", "eval_rewards/margins", "eval_nll")
	fmt.Fprintf(w, "data: %s\n", res.Data.String())
	fmt.Fprintf(w, "final model: %s\nmetrics: %s  plot: %s  report: %s\n", res.Final, filepath.Join(r.Out, posttrain.MetricsFile), res.Plot, filepath.Join(r.Out, "report.html"))
	return nil
}

func score(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("posttrain score", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelDir := fs.String("model", "", "reward model directory (LlamaForSequenceClassification)")
	in := fs.String("jsonl", "", "input JSONL: preference rows (prompt/chosen/rejected[/edited]) or SFT rows (messages, prompt/completion); - for stdin")
	out := fs.String("out", "-", "output JSONL, one line per input row (- for stdout)")
	tok := fs.String("tokenizer", "", "tokenizer directory (default: the model directory)")
	seqLen := fs.Int("seq-len", 0, "longest sequence scored (0 = the model's max_position_embeddings)")
	workers := fs.Int("workers", 0, "compute goroutines (0 = all cores)")
	if help, err := cli.Parse(fs, args); help || err != nil {
		return err
	}
	if *modelDir == "" || *in == "" || fs.NArg() > 0 {
		return cli.UsageError{Err: errors.New("usage: posttrain score -model RM_DIR -jsonl IN [-out FILE]")}
	}
	if *seqLen < 0 || *workers < 0 {
		return cli.UsageError{Err: errors.New("-seq-len and -workers must be >= 0")}
	}
	r, name := stdin, "stdin"
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		r, name = f, *in
	}
	o := posttrain.ScoreOptions{Tokenizer: *tok, SeqLen: *seqLen, Workers: *workers}
	var sum posttrain.ScoreSummary
	var err error
	if *out == "-" {
		sum, err = posttrain.Score(ctx, *modelDir, r, name, stdout, o)
	} else {
		err = writeAtomic(*out, func(w io.Writer) error {
			var err error
			sum, err = posttrain.Score(ctx, *modelDir, r, name, w, o)
			return err
		})
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "scored %d of %d rows (%d bad)\n", sum.Scored, sum.Rows, sum.Bad)
	return nil
}

func average(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("posttrain average", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "output model directory")
	weights := fs.String("weights", "", "comma-separated weights, one per input (default: uniform)")
	if help, err := cli.Parse(fs, args); help || err != nil {
		return err
	}
	if *out == "" || fs.NArg() == 0 {
		return cli.UsageError{Err: errors.New("usage: posttrain average -out DIR [-weights w,...] RUN_OR_MODEL_DIR...")}
	}
	var w []float64
	if *weights != "" {
		for _, s := range strings.Split(*weights, ",") {
			x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return cli.UsageError{Err: fmt.Errorf("-weights: %q is not a number", s)}
			}
			w = append(w, x)
		}
		if len(w) != fs.NArg() {
			return cli.UsageError{Err: fmt.Errorf("-weights has %d values for %d inputs", len(w), fs.NArg())}
		}
	}
	// A run directory stands for its final model.
	inputs := make([]string, fs.NArg())
	for i, in := range fs.Args() {
		inputs[i] = in
		if _, err := os.Stat(filepath.Join(in, checkpoint.ConfigFile)); err != nil {
			if _, ferr := os.Stat(filepath.Join(in, posttrain.FinalDir, checkpoint.ConfigFile)); ferr == nil {
				inputs[i] = filepath.Join(in, posttrain.FinalDir)
			}
		}
	}
	if err := checkpoint.AverageModels(*out, inputs, w); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "averaged %d models into %s\n", len(inputs), *out)
	return nil
}

func data(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("posttrain data", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kind := fs.String("kind", "sft", "sft (prompt/completion rows) or pref (prompt/chosen/rejected rows)")
	names := fs.String("tasks", "", "comma-separated built-in tasks (default all: "+strings.Join(tasks.Names(), ", ")+")")
	n := fs.Int("n", 1000, "rows")
	seed := fs.Uint64("seed", 1, "seed")
	out := fs.String("out", "", "output JSONL file")
	if help, err := cli.Parse(fs, args); help || err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 || *n < 1 || *n > 1<<26 {
		return cli.UsageError{Err: errors.New("usage: posttrain data -kind sft|pref [-tasks a,b] -n N (1..67108864) [-seed S] -out FILE")}
	}
	var list []string
	if *names != "" {
		list = strings.Split(*names, ",")
	}
	write := tasks.WriteSFT
	switch *kind {
	case "sft":
	case "pref":
		write = tasks.WritePref
	default:
		return cli.UsageError{Err: fmt.Errorf("-kind %q: use sft or pref", *kind)}
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := writeAtomic(*out, func(w io.Writer) error { return write(w, list, *n, *seed) }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d %s rows to %s\n", *n, *kind, *out)
	return nil
}

// writeAtomic writes path through fn, publishing it only when fn succeeds.
func writeAtomic(path string, fn func(io.Writer) error) error {
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := fn(f); err != nil {
		return err
	}
	return f.Commit()
}

func eval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("posttrain eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelDir := fs.String("model", "", "model directory (a language model; see -rm for a reward model)")
	rmDir := fs.String("rm", "", "reward model directory: also report its accuracy on held-out (correct, wrong) pairs")
	names := fs.String("tasks", "", "comma-separated built-in tasks (default all: "+strings.Join(tasks.Names(), ", ")+")")
	n := fs.Int("n", 64, "held-out prompts per task")
	k := fs.Int("k", 0, "also sample K responses per prompt and report pass@K")
	seed := fs.Uint64("seed", 1, "seed of the prompts and samples")
	workers := fs.Int("workers", 0, "compute goroutines (0 = all cores)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if help, err := cli.Parse(fs, args); help || err != nil {
		return err
	}
	if *modelDir == "" && *rmDir == "" || fs.NArg() > 0 || *n < 1 || *n > 1<<20 || *k < 0 || *k > 1024 || *workers < 0 {
		return cli.UsageError{Err: errors.New("usage: posttrain eval -model DIR [-rm RM_DIR] [-tasks a,b] [-n N (1..1048576)] [-k K (0..1024)]")}
	}
	var list []string
	if *names != "" {
		list = strings.Split(*names, ",")
	}
	o := posttrain.TaskEvalOptions{Tasks: list, N: *n, K: *k, Seed: *seed}
	var out []posttrain.TaskScore
	if *modelDir != "" {
		s, err := posttrain.EvalModelDir(ctx, *modelDir, *workers, o, false)
		if err != nil {
			return err
		}
		out = s
	}
	if *rmDir != "" {
		s, err := posttrain.EvalModelDir(ctx, *rmDir, *workers, o, true)
		if err != nil {
			return err
		}
		if out == nil {
			out = s
		} else {
			for i := range out {
				for _, r := range s {
					if r.Task == out[i].Task {
						out[i].RMAccuracy = r.RMAccuracy
					}
				}
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return enc.Encode(out)
	}
	fmt.Fprintf(stdout, "%-10s %5s %8s", "task", "n", "pass@1")
	if *k > 1 {
		fmt.Fprintf(stdout, " %8s", fmt.Sprintf("pass@%d", *k))
	}
	if *rmDir != "" {
		fmt.Fprintf(stdout, " %8s", "rm_acc")
	}
	fmt.Fprintln(stdout)
	for _, t := range out {
		fmt.Fprintf(stdout, "%-10s %5d %7.1f%%", t.Task, t.N, 100*t.Pass1)
		if *k > 1 {
			fmt.Fprintf(stdout, " %7.1f%%", 100*t.PassK)
		}
		if *rmDir != "" {
			fmt.Fprintf(stdout, " %7.1f%%", 100*t.RMAccuracy)
		}
		fmt.Fprintln(stdout)
	}
	if *modelDir != "" {
		fmt.Fprintf(stdout, "mean pass@1 %.1f%%\n", 100*posttrain.MeanPass1(out))
	}
	return nil
}
