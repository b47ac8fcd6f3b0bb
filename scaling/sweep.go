package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"time"

	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/data/tokens"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/dirlock"
	"github.com/herdml/herd/internal/outdir"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/pretrain"
	"github.com/herdml/herd/recipes"
)

// Files of a sweep.
const (
	// pointFile, in a finished run directory, records the run's point.
	pointFile = "point.json"
	// SweepKind is the kind of the sweep directory's outdir marker.
	SweepKind = "scaling-sweep"
	// RecipeFile is the resolved sweep recipe in the sweep directory.
	RecipeFile = "scaling.yaml"
)

// Run is one planned run of a sweep.
type Run struct {
	Name          string  // directory name inside the sweep, b<budget>-s<size>
	Budget        float64 // the budget it was planned for (FLOPs)
	Size          int     // the size knob
	Config        model.Config
	Recipe        pretrain.Recipe
	FLOPsPerToken float64
	Params        int64   // N: model.MatmulParams
	Tokens        int64   // D: train.steps · batch_tokens
	FLOPs         float64 // C = D · FLOPsPerToken
}

// runName is the run directory name of (budget, size).
func runName(budget float64, size int) string {
	return "b" + strconv.FormatFloat(budget, 'g', 4, 64) + "-s" + strconv.Itoa(size)
}

// Vocab returns the vocabulary the sweep's models use: pretrain.model.vocab_size
// or, when 0, the tokenizer's size from the first source's manifest.
func (r *Recipe) Vocab() (int, error) {
	if v := r.Pretrain.Model.VocabSize; v > 0 {
		return v, nil
	}
	if len(r.Pretrain.Data.Sources) == 0 {
		return 0, errors.New("pretrain.data.sources: no source to take the vocabulary size from")
	}
	shards, err := tokens.Resolve(r.Pretrain.Data.Sources[0].Paths)
	if err != nil {
		return 0, fmt.Errorf("pretrain.data.sources[0]: %w", err)
	}
	if len(shards) == 0 || shards[0].Manifest.Tokenizer.VocabSize <= 0 {
		return 0, errors.New("pretrain.data.sources[0]: the manifest names no vocabulary size; set pretrain.model.vocab_size")
	}
	return shards[0].Manifest.Tokenizer.VocabSize, nil
}

// Plan lists the sweep's runs, budgets ascending then sizes as listed,
// with a vocabulary of vocab ids.
func (r *Recipe) Plan(vocab int) ([]Run, error) {
	var runs []Run
	for _, b := range r.sortedBudgets() {
		for _, s := range r.Sizes {
			run, err := r.PlanRun(b, s, vocab)
			if err != nil {
				return nil, err
			}
			runs = append(runs, run)
		}
	}
	return runs, nil
}

// PlanRun is the run of size s at budget FLOPs: tokens = budget /
// FLOPs-per-token, rounded to whole batches (at least one).
func (r *Recipe) PlanRun(budget float64, s, vocab int) (Run, error) {
	return r.planModel(budget, r.Shape.Shape(r.Pretrain.Model, s), s, vocab, runName(budget, s))
}

func (r *Recipe) planModel(budget float64, spec pretrain.ModelSpec, s, vocab int, name string) (Run, error) {
	p := r.Pretrain
	p.Model = spec
	p.Model.VocabSize = vocab
	p.Out = filepath.Join(r.Out, name)
	plans := p.Plan()
	cfg, err := p.ModelConfig(plans[0], vocab)
	if err != nil {
		return Run{}, fmt.Errorf("run %s: %w", name, err)
	}
	fpt := model.FLOPsPerToken(cfg, p.Train.SeqLen)
	steps := max(1, int(math.Round(budget/(fpt*float64(p.Train.BatchTokens)))))
	for r.MaxSteps > 0 && steps > r.MaxSteps {
		p.Train.BatchTokens *= 2
		p.Train.MicroBatch *= 2
		steps = max(1, int(math.Round(budget/(fpt*float64(p.Train.BatchTokens)))))
	}
	p.Train.Steps = steps
	if w := int(math.Round(r.WarmupFraction * float64(steps))); w < p.Optim.Warmup {
		p.Optim.Warmup = w
	}
	if p.Checkpoint.Every > steps {
		p.Checkpoint.Every = 0
	}
	d := int64(steps) * int64(p.Train.BatchTokens)
	return Run{Name: name, Budget: budget, Size: s, Config: cfg, Recipe: p, FLOPsPerToken: fpt,
		Params: int64(model.MatmulParams(cfg)), Tokens: d, FLOPs: float64(d) * fpt}, nil
}

// SweepOptions control Sweep.
type SweepOptions struct {
	Resume bool
	// Rank and World split the runs: this process trains runs i with
	// i % World == Rank (World 0 or 1: all).
	Rank, World int
	Logger      *slog.Logger
	// Workers overrides pretrain.workers when >= 0.
	Workers int
}

// Sweep trains the runs of the recipe that fall to this rank, skipping
// finished ones (those with point.json) and ones another process is
// training (locked run directories), and returns the points of every
// finished run of the sweep (this rank's and others' found on disk).
func Sweep(ctx context.Context, r Recipe, opt SweepOptions) ([]Point, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	world := max(opt.World, 1)
	vocab, err := r.Vocab()
	if err != nil {
		return nil, err
	}
	runs, err := r.Plan(vocab)
	if err != nil {
		return nil, err
	}
	if err := outdir.Claim(r.Out, SweepKind); err != nil {
		return nil, fmt.Errorf("sweep directory: %w", err)
	}
	text, err := recipes.Marshal(r)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(r.Out, RecipeFile), text, 0o644); err != nil {
		return nil, err
	}
	for i, run := range runs {
		if i%world != opt.Rank {
			continue
		}
		if opt.Workers >= 0 {
			run.Recipe.Workers = opt.Workers
		}
		dir := run.Recipe.Out
		if pt, err := readPointFile(filepath.Join(dir, pointFile)); err == nil {
			if pt.Params != float64(run.Params) || pt.FLOPs != run.FLOPs {
				return nil, fmt.Errorf("run %s is finished with N = %.0f, C = %.4g, but the recipe now plans N = %d, C = %.4g: the shape rule, data or batch changed; sweep into another out directory",
					run.Name, pt.Params, pt.FLOPs, run.Params, run.FLOPs)
			}
			log.Info("finished, skipped", "run", run.Name)
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		log.Info("training", "run", run.Name, "params", run.Params, "tokens", run.Tokens, "steps", run.Recipe.Train.Steps,
			"flops", fmt.Sprintf("%.3g", run.FLOPs), "layers", run.Config.NumHiddenLayers, "hidden", run.Config.HiddenSize)
		start, cpu0 := time.Now(), processCPU()
		pt, err := TrainRun(ctx, run, opt.Resume, log.With("run", run.Name))
		if errors.Is(err, dirlock.ErrLocked) {
			// Another process (an overlapping sweep) trains it.
			log.Warn("in use by another process, skipped", "run", run.Name, "err", err)
			continue
		}
		if err != nil {
			return nil, err
		}
		if pt == nil { // interrupted
			return nil, ctx.Err()
		}
		// Wall time depends on the machine's load; CPU time (user + system,
		// all of this process's threads) much less: on c idle cores a run
		// takes about cpu_s / c.
		log.Info("finished", "run", run.Name, "loss", fmt.Sprintf("%.4f", pt.Loss), "batch_tokens", run.Recipe.Train.BatchTokens,
			"wall_s", fmt.Sprintf("%.1f", time.Since(start).Seconds()), "cpu_s", fmt.Sprintf("%.1f", (processCPU()-cpu0).Seconds()))
	}
	return ReadRuns(r.Out)
}

// TrainRun trains one run (resuming when asked) and writes its point.json.
// It returns nil when the run was interrupted.
func TrainRun(ctx context.Context, run Run, resume bool, log *slog.Logger) (*Point, error) {
	// The sweep splits whole runs over the ranks; each run trains in this
	// one process, whatever the launcher's world size.
	res, err := pretrain.Run(ctx, run.Recipe, pretrain.RunOptions{Resume: resume, Logger: log, Comm: cluster.Single{}})
	if err != nil {
		if !resume && errors.Is(err, fs.ErrExist) {
			err = fmt.Errorf("%w (continue the sweep with -resume)", err)
		}
		return nil, fmt.Errorf("run %s: %w", run.Name, err)
	}
	if res.Interrupted {
		return nil, nil
	}
	loss := res.FinalEval
	if loss == 0 && len(res.Evals) > 0 {
		loss = res.Evals[len(res.Evals)-1].Loss
	}
	if !(loss > 0) {
		return nil, fmt.Errorf("run %s: no held-out loss (set pretrain.data.heldout_fraction or pretrain.eval.sources, and pretrain.eval.tokens > 0)", run.Name)
	}
	pt := &Point{FLOPs: run.FLOPs, Params: float64(run.Params), Tokens: float64(res.Tokens), Loss: loss,
		Budget: run.Budget, Size: run.Size, Run: run.Name, Layers: run.Config.NumHiddenLayers, Hidden: run.Config.HiddenSize}
	data, err := json.MarshalIndent(pt, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(run.Recipe.Out, pointFile), append(data, '\n'), 0o644); err != nil {
		return nil, err
	}
	return pt, nil
}
