// Command scaling runs IsoFLOP sweeps of pretraining runs and fits scaling
// laws to them (package scaling).
//
//	scaling -recipe scaling_tiny [-resume] [-workers N] [key=value ...]   → the sweep's runs
//	scaling -recipe FILE -print-recipe                                  → the resolved recipe and the planned runs
//	scaling fit -runs DIR|FILE -out DIR [-target-flops C] [-recipe R] [-tasks a,b | -tasks-file F]
//	scaling forecast-check -recipe R -fit DIR [-resume]                 → trains the forecast model and compares
//
// Under mpirun, Slurm or a Kubernetes indexed job each process trains the
// runs i with i % world == rank (cluster.RankFromEnv).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/internal/interrupt"
	"github.com/herdml/herd/recipes"
	"github.com/herdml/herd/scaling"
)

func main() {
	ctx, stop := interrupt.Context(context.Background())
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	code := interrupt.ExitCode(ctx)
	stop()
	if err != nil && !(code != 0 && errors.Is(err, context.Canceled)) {
		fmt.Fprintln(os.Stderr, "scaling:", err)
		var ue usageError
		if code == 0 && errors.As(err, &ue) {
			code = 2
		} else if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

type usageError struct{ error }

// tool is this command among the recipe tools.
var tool = recipes.ToolNamed("scaling")

var recipeHelp = "sweep recipe file or shipped recipe name (" + strings.Join(tool.Shipped(), ", ") + ")"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "fit":
			return fit(ctx, args[1:], stdout, stderr)
		case "forecast-check":
			return forecastCheck(ctx, args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("scaling", flag.ContinueOnError)
	fs.SetOutput(stderr)
	recipe := fs.String("recipe", "", recipeHelp)
	resume := fs.Bool("resume", false, "continue unfinished runs from their newest checkpoint (finished runs are always skipped)")
	workers := fs.Int("workers", -1, "compute goroutines per run (overrides pretrain.workers; 0 = all cores)")
	out := fs.String("out", "", "sweep directory (overrides out)")
	printRecipe := fs.Bool("print-recipe", false, "print the resolved recipe and the planned runs, and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: scaling -recipe NAME|FILE [flags] [key=value ...]\n       scaling fit -runs DIR|FILE -out DIR [flags]\n       scaling forecast-check -recipe NAME|FILE -fit DIR [flags]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if *recipe == "" {
		return usageError{errors.New("-recipe is required (a file or one of: " + strings.Join(tool.Shipped(), ", ") + ")")}
	}
	r, err := recipes.LoadFor(tool, *recipe, scaling.Default(), fs.Args())
	if err != nil {
		return err
	}
	if *out != "" {
		r.Out = *out
	}
	if *printRecipe {
		return printPlan(stdout, r)
	}
	rank, world, src, ok, err := cluster.RankFromEnv(nil)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if ok {
		log = log.With("rank", rank)
		log.Info("splitting the sweep", "world", world, "from", src)
	}
	pts, err := scaling.Sweep(ctx, r, scaling.SweepOptions{Resume: *resume, Rank: rank, World: world, Logger: log, Workers: *workers})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d finished runs in %s\n", len(pts), r.Out)
	scaling.WritePointTable(stdout, pts)
	fmt.Fprintf(stdout, "fit them with: scaling fit -runs %s -out %s/fit\n", r.Out, r.Out)
	return nil
}

// printPlan prints the resolved recipe and the planned runs.
func printPlan(w io.Writer, r scaling.Recipe) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("recipe: %w", err)
	}
	text, err := recipes.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := w.Write(text); err != nil {
		return err
	}
	vocab, err := r.Vocab()
	if err != nil {
		fmt.Fprintf(w, "# runs not planned: %v\n", err)
		return nil
	}
	runs, err := r.Plan(vocab)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "# %d runs (vocab %d)\n", len(runs), vocab)
	for _, run := range runs {
		fmt.Fprintf(w, "#  %-14s layers %2d hidden %4d heads %2d/%d  N %9d  D %10d  steps %6d  C %.3g\n", run.Name,
			run.Config.NumHiddenLayers, run.Config.HiddenSize, run.Config.NumAttentionHeads, run.Config.NumKeyValueHeads,
			run.Params, run.Tokens, run.Recipe.Train.Steps, run.FLOPs)
	}
	return nil
}
