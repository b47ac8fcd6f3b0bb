package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/recipes"
	"github.com/herdml/herd/scaling"
)

// fit is `scaling fit`.
func fit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("scaling fit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runs := fs.String("runs", "", "sweep directory (its finished runs) or a JSONL of points {\"flops\",\"params\",\"tokens\",\"loss\"}")
	out := fs.String("out", "", "output directory for fits.json, fits.txt, isoflop.png, frontier.png")
	target := fs.Float64("target-flops", 0, "forecast budget in FLOPs (default: the recipe's fit.target_flops, else 4× the largest budget)")
	recipe := fs.String("recipe", "", "sweep recipe for the forecast's model shape and the downstream task set (default: the sweep directory's "+scaling.RecipeFile+")")
	boot := fs.Int("bootstrap", -1, "bootstrap resamples (default: the recipe's fit.bootstrap, else 1000)")
	seed := fs.Uint64("seed", 0, "bootstrap seed (default: the recipe's fit.seed, else 1)")
	taskList := fs.String("tasks", "", "built-in tasks for the downstream forecast, comma-separated (overrides the recipe's downstream.tasks; \"none\" skips it)")
	taskFile := fs.String("tasks-file", "", "JSONL of {\"question\",\"choices\",\"answer\"} for the downstream forecast")
	workers := fs.Int("workers", 0, "compute goroutines for downstream scoring (0 = all cores)")
	budgetList := fs.String("budgets", "", "fit only these budgets, comma-separated (e.g. 5e11,1e12: a forecast from the smaller budgets of a sweep)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: scaling fit -runs DIR|FILE -out DIR [flags]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if *runs == "" || *out == "" || fs.NArg() > 0 {
		return usageError{errors.New("fit needs -runs DIR|FILE and -out DIR (and no other arguments)")}
	}
	pts, err := scaling.LoadPoints(*runs)
	if err != nil {
		return err
	}
	if *budgetList != "" {
		if pts, err = scaling.SelectBudgets(pts, *budgetList); err != nil {
			return usageError{err}
		}
	}
	o := scaling.FitOptions{Bootstrap: 1000, Seed: 1, Workers: *workers,
		Logger: slog.New(slog.NewTextHandler(stderr, nil))}
	var r scaling.Recipe
	switch {
	case *recipe != "":
		if r, err = recipes.LoadFor(tool, *recipe, scaling.Default(), nil); err != nil {
			return err
		}
		o.Recipe, o.RecipeRef = &r, *recipe
	default:
		if st, err := os.Stat(*runs); err == nil && st.IsDir() {
			var ok bool
			var path string
			if r, path, ok, err = scaling.LoadSweepRecipe(*runs); err != nil {
				return err
			} else if ok {
				o.Recipe, o.RecipeRef = &r, path
			}
		}
	}
	if o.Recipe != nil {
		o.Bootstrap, o.Seed, o.TargetFLOPs = r.Fit.Bootstrap, r.Fit.Seed, r.Fit.TargetFLOPs
	}
	if *boot >= 0 {
		o.Bootstrap = *boot
	}
	if *seed != 0 {
		o.Seed = *seed
	}
	if *target > 0 {
		o.TargetFLOPs = *target
	}
	switch {
	case *taskFile != "":
		o.Downstream = scaling.DownstreamSpec{File: *taskFile}
	case *taskList == "none":
		if o.Recipe != nil {
			o.Recipe.Downstream.Tasks, o.Recipe.Downstream.File = nil, ""
		}
	case *taskList != "":
		o.Downstream = scaling.Default().Downstream
		if o.Recipe != nil {
			o.Downstream = o.Recipe.Downstream
			o.Downstream.File = ""
		}
		o.Downstream.Tasks = strings.Split(*taskList, ",")
	}
	if o.Recipe == nil && (o.Downstream.File != "" || len(o.Downstream.Tasks) > 0) {
		return usageError{errors.New("the downstream forecast scores the runs' models: give -runs a sweep directory")}
	}
	f, err := scaling.Fit(ctx, pts, o)
	if err != nil {
		return err
	}
	if err := scaling.WriteFits(*out, f); err != nil {
		return err
	}
	scaling.WriteTable(stdout, f)
	fmt.Fprintf(stdout, "\nwrote %s\n", strings.Join([]string{filepath.Join(*out, scaling.FitsFile), filepath.Join(*out, scaling.TableFile),
		filepath.Join(*out, scaling.IsoFLOPPlot), filepath.Join(*out, scaling.FrontierPlot)}, ", "))
	return nil
}

// CheckFile records a forecast check in the fit directory.
const CheckFile = "forecast_check.json"

// forecastCheck is `scaling forecast-check`: it trains the model the fit
// forecasts for its target budget and compares the held-out loss it
// reaches with the predicted one.
func forecastCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("scaling forecast-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fitDir := fs.String("fit", "", "directory of a `scaling fit` of a sweep directory (its fits.json names the forecast shape and the recipe)")
	out := fs.String("out", "", "run directory of the forecast model (default FIT/forecast-run)")
	resume := fs.Bool("resume", false, "continue the forecast run from its newest checkpoint")
	workers := fs.Int("workers", -1, "compute goroutines (overrides pretrain.workers; 0 = all cores)")
	tol := fs.Float64("tolerance", 0.03, "relative error the check accepts")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: scaling forecast-check -fit DIR [flags]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if *fitDir == "" || fs.NArg() > 0 {
		return usageError{errors.New("forecast-check needs -fit DIR")}
	}
	f, err := scaling.ReadFits(filepath.Join(*fitDir, scaling.FitsFile))
	if err != nil {
		return err
	}
	sf := f.Forecast.Shape
	if sf == nil || sf.RecipeRef == "" {
		return errors.New("the fit names no model shape: fit a sweep directory (or pass -recipe to scaling fit)")
	}
	r, err := recipes.LoadFor(tool, sf.RecipeRef, scaling.Default(), nil)
	if err != nil {
		return err
	}
	vocab, err := r.Vocab()
	if err != nil {
		return err
	}
	run, err := r.PlanRun(f.Forecast.FLOPs, sf.Size, vocab)
	if err != nil {
		return err
	}
	run.Name = "forecast-" + run.Name
	run.Recipe.Out = *out
	if run.Recipe.Out == "" {
		run.Recipe.Out = filepath.Join(*fitDir, "forecast-run")
	}
	if *workers >= 0 {
		run.Recipe.Workers = *workers
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	log.Info("training the forecast model", "size", sf.Size, "params", run.Params, "tokens", run.Tokens, "flops", fmt.Sprintf("%.4g", run.FLOPs), "dir", run.Recipe.Out)
	pt, err := scaling.TrainRun(ctx, run, *resume, log)
	if err != nil {
		return err
	}
	if pt == nil {
		return ctx.Err()
	}
	rel := pt.Loss/sf.Loss - 1
	ok := math.Abs(rel) <= *tol
	text := fmt.Sprintf("{\"flops\": %g, \"size\": %d, \"params\": %g, \"tokens\": %g, \"predicted_loss\": %.6f, \"actual_loss\": %.6f, \"relative_error\": %.6f, \"tolerance\": %g, \"within\": %t}\n",
		run.FLOPs, sf.Size, float64(run.Params), pt.Tokens, sf.Loss, pt.Loss, rel, *tol, ok)
	if err := atomicfile.WriteFile(filepath.Join(*fitDir, CheckFile), []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "forecast at C = %.4g FLOPs, size %d (N = %d, D = %d)\npredicted held-out loss %.4f, reached %.4f: %+.2f%% (tolerance ±%.1f%%: %s)\n",
		run.FLOPs, sf.Size, run.Params, run.Tokens, sf.Loss, pt.Loss, 100*rel, 100**tol, map[bool]string{true: "within", false: "outside"}[ok])
	return nil
}
