package posttrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/data/chatdata"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/dirlock"
	"github.com/herdml/herd/internal/outdir"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/optim"
	"github.com/herdml/herd/recipes"
	"github.com/herdml/herd/train"
)

// Files and directories of a run directory.
const (
	FinalDir    = "final"
	MetricsFile = train.MetricsFile
)

// RunOptions control Run beyond the recipe.
type RunOptions struct {
	// Resume continues from the newest checkpoint in the run directory
	// (starting fresh when there is none).
	Resume bool
	// Force resumes even when the recipe changed in ways that alter the
	// run (the changes are logged).
	Force bool
	// Logger receives progress and warnings (default: discard).
	Logger *slog.Logger
	// Progress, when set, shows a progress bar.
	Progress *train.Progress
	// Backend runs the model (default: kernels.NewCPU(recipe.workers)).
	Backend kernels.Backend
	// Comm makes an sft, rm or dpo run data-parallel over its ranks
	// (train.micro_batches split over them); nil opens the job's
	// communicator from the environment (cluster.Open) and closes it at
	// the end.
	Comm cluster.Comm

	// stopAt, in tests, interrupts the run (as Ctrl-C does) once this many
	// steps are done; onStep, in benchmarks, sees every step; onEval, in
	// tests, sees every held-out batch this rank scores.
	stopAt int
	onStep func(step int)
	onEval func(batch int)
}

// Result summarises a run.
type Result struct {
	Steps       int
	Tokens      int64   // training tokens (non-padding) seen
	Loss        float64 // last training loss
	Metrics     checkpoint.Metrics
	Eval        checkpoint.Metrics // the last held-out evaluation (nil: none)
	Data        chatdata.Stats     // the training rows read (this session)
	Checkpoint  string
	Final       string // final/ ("" when interrupted)
	Interrupted bool
	Plot        string
	// RS are the rejection-sampling counts (kind rs).
	RS *RSStats
	// Rank is this process's rank in a data-parallel sft, rm or dpo job (0
	// in one process): rank 0 wrote the run directory and its Result is
	// the run's summary to print; the others' is partial.
	Rank int
}

// trainer is what a recipe kind supplies beside the engine's Trainer.
type trainer interface {
	train.Trainer
	// open starts reading the data at the restored position (and, for
	// DPO, computes the reference log-probabilities), once the run
	// directory is claimed.
	open(ctx context.Context) error
	// evaluate scores held-out batches with the current weights.
	evaluate(ctx context.Context) (checkpoint.Metrics, error)
	// stats are the counts of the training rows read so far.
	stats() chatdata.Stats
	close() error
}

// runner is the state shared by every kind.
type runner struct {
	r      Recipe
	opt    RunOptions
	log    *slog.Logger
	be     kernels.Backend
	tok    *tokenizer.Tokenizer
	extra  map[string][]byte
	m      *model.Model
	e      *train.Engine
	t      trainer
	res    Result
	tokDir string
	comm   cluster.Comm
	sum    cluster.LeafSum  // the parts' gradients
	red    *cluster.Reducer // held-out sums over the ranks (see heldOut)
}

// Run trains the recipe. An interrupted context saves a checkpoint and
// returns a Result with Interrupted set.
func Run(ctx context.Context, r Recipe, opt RunOptions) (*Result, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	if r.Kind == KindRS {
		st, err := runRS(ctx, r, opt)
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return &Result{RS: st, Interrupted: true}, nil
		}
		return &Result{RS: st}, err
	}
	if opt.Progress != nil {
		defer opt.Progress.Finish()
	}
	return cluster.With(opt.Comm, func(comm cluster.Comm) (*Result, error) {
		run := &runner{r: r, opt: opt, log: train.RankLogger(opt.Logger, comm), comm: comm}
		if comm.Rank() != 0 {
			run.opt.Progress = nil
		}
		run.res.Rank = comm.Rank()
		return run.run(ctx)
	})
}

func (run *runner) run(ctx context.Context) (_ *Result, err error) {
	r, opt := run.r, run.opt
	defer func() {
		if run.t != nil {
			run.t.close()
		}
		if run.e != nil {
			// Close flushes metrics.jsonl: a failure there is the run's.
			if cerr := run.e.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("close the run: %w", cerr)
			}
		}
		if c, ok := run.be.(interface{ Close() }); ok && opt.Backend == nil {
			c.Close()
		}
	}()
	if err := run.setup(ctx); err != nil {
		return nil, err
	}
	run.log.Info("training", "kind", r.Kind, "params", run.m.Params.Layout.Total, "steps", r.Train.Steps,
		"from_step", run.e.Step(), "backend", run.be.Name(), "model", r.Model)
	er, err := run.e.Run(ctx)
	if er != nil {
		run.res.Steps, run.res.Tokens, run.res.Loss = er.Steps, er.Tokens, er.Loss
		run.res.Checkpoint, run.res.Interrupted = er.Checkpoint, er.Interrupted
	}
	run.res.Data = run.t.stats()
	if err != nil || run.res.Interrupted {
		return &run.res, err
	}
	return &run.res, run.finish()
}

// setup loads the tokenizer and the model, builds the trainer, and hands
// the run directory to the engine. Nothing in the run directory changes
// until every check has passed.
func (run *runner) setup(ctx context.Context) error {
	r := &run.r
	overlap, err := outdir.Overlaps(r.Out, r.Model)
	if err != nil {
		return err
	}
	if overlap {
		return fmt.Errorf("out %s is (or holds, or lies inside) the starting model %s; choose another run directory", r.Out, r.Model)
	}
	if err := run.loadTokenizer(); err != nil {
		return err
	}
	if err := run.loadModel(); err != nil {
		return err
	}
	switch r.Kind {
	case KindSFT:
		run.t = newSFT(run)
	case KindRM:
		run.t = newRM(run)
	case KindDPO:
		run.t = newDPO(run)
	}
	recipe, err := json.Marshal(r)
	if err != nil {
		return err
	}
	text, err := recipes.Marshal(r)
	if err != nil {
		return err
	}
	sched, err := r.schedule()
	if err != nil {
		return err
	}
	cfg := run.m.Config
	opt := train.Options{
		Dir: r.Out, DirKind: outdir.PostRun, Resume: run.opt.Resume,
		Params: run.m.Params, Grads: run.m.Grads, Config: func() model.Config { return cfg }, Backend: run.be,
		AdamW:        optim.AdamWConfig{Beta1: r.Optim.Beta1, Beta2: r.Optim.Beta2, Eps: r.Optim.Eps, WeightDecay: r.Optim.WeightDecay},
		ClipGradNorm: r.Optim.ClipGradNorm,
		Stages: []train.Stage{{Name: r.Kind, End: r.Train.Steps, Schedule: sched,
			FLOPsPerToken: model.FLOPsPerToken(cfg, r.Train.SeqLen)}},
		MaxBadSteps: r.Train.MaxBadSteps, LogEvery: r.Train.LogEvery, EvalEvery: r.Eval.Every,
		CheckpointEvery: r.Checkpoint.Every, Keep: r.Checkpoint.Keep,
		Recipe: recipe, RecipeText: text, CheckRecipe: run.checkRecipe, Extra: run.extra,
		Eval: run.evaluate, AfterEval: run.afterEval, PeakFLOPs: r.Train.PeakGFLOPs * 1e9,
		OnStep: run.opt.onStep, StopAt: run.opt.stopAt,
		Logger: run.log, Progress: run.opt.Progress, Comm: run.comm,
	}
	if err := run.checkParts(); err != nil {
		return err
	}
	if run.e, err = train.New(opt, run.t); err != nil {
		return err
	}
	if err := run.e.Claim(); err != nil {
		return err
	}
	return run.t.open(ctx)
}

// loadTokenizer loads the recipe's tokenizer, or the model directory's.
func (run *runner) loadTokenizer() error {
	dir := run.r.Tokenizer
	if dir == "" {
		dir = run.r.Model
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		if run.r.Tokenizer == "" {
			return fmt.Errorf("the model directory has no usable tokenizer (set tokenizer=DIR): %w", err)
		}
		return fmt.Errorf("tokenizer: %w", err)
	}
	if _, ok := tok.SpecialID(tokenizer.EOT); !ok {
		return fmt.Errorf("the tokenizer in %s lacks the Llama 3 chat tokens (%s); post-training needs a herd-trained or Llama 3 tokenizer", dir, tokenizer.EOT)
	}
	tj, cj, err := tok.MarshalHF()
	if err != nil {
		return err
	}
	run.tok, run.tokDir = tok, dir
	run.extra = map[string][]byte{tokenizer.TokenizerFile: tj, tokenizer.ConfigFile: cj}
	return nil
}

// loadModel loads the starting model and, for a reward model, puts a
// fresh scalar head on a language model's trunk.
func (run *runner) loadModel() error {
	r := &run.r
	cfg, params, err := checkpoint.LoadModel(r.Model)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if cfg.VocabSize != run.tok.VocabSize() {
		return fmt.Errorf("the model %s has vocab_size %d but the tokenizer %s has %d ids", r.Model, cfg.VocabSize, run.tokDir, run.tok.VocabSize())
	}
	if r.Kind != KindRS && r.Train.SeqLen > cfg.MaxPositionEmbeddings {
		return fmt.Errorf("train.seq_len %d exceeds the model's max_position_embeddings %d", r.Train.SeqLen, cfg.MaxPositionEmbeddings)
	}
	switch {
	case r.Kind == KindRM && !cfg.HasScoreHead():
		cfg, params = withRewardHead(cfg, params, padToken(run.tok), r.Seed)
	case r.Kind != KindRM && cfg.HasScoreHead():
		return fmt.Errorf("the model %s is a reward model (%s); %s training needs a language model", r.Model, model.SequenceClassifier, r.Kind)
	}
	run.be = run.opt.Backend
	if run.be == nil {
		run.be = kernels.NewCPU(r.Workers)
	}
	if run.m, err = model.NewWithParams(cfg, params, run.be); err != nil {
		return err
	}
	run.m.EnsureGrads()
	return nil
}

// padToken is the token of padding positions: <|finetune_right_pad_id|>,
// else <|end_of_text|>.
func padToken(tok *tokenizer.Tokenizer) int {
	for _, name := range []string{tokenizer.FinetunePad, tokenizer.EndOfText} {
		if id, ok := tok.SpecialID(name); ok {
			return int(id)
		}
	}
	return 0
}

// withRewardHead returns a reward model (a sequence classifier with one
// label) with the trunk of a language model and a fresh score head drawn
// from N(0, initializer_range²), as Hugging Face initialises it.
func withRewardHead(lm model.Config, p *model.Params, pad int, seed uint64) (model.Config, *model.Params) {
	cfg := lm.AsSequenceClassifier(1, pad)
	out := model.NewParams(model.NewLayout(cfg))
	for _, t := range out.Layout.Tensors {
		if src := p.Get(t.Name); src != nil {
			copy(out.Get(t.Name), src)
		}
	}
	std := cfg.InitializerRange
	if std == 0 {
		std = 0.02
	}
	rng := rand.New(rand.NewPCG(seed, 0x73636f7265))
	w := out.Get(model.ScoreWeight)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * std)
	}
	return cfg, out
}

// resumeSafe lists the recipe keys whose change does not alter the run
// being resumed.
var resumeSafe = []string{"out", "workers", "tokenizer", "train.steps", "train.log_every", "train.max_bad_steps",
	"checkpoint.every", "checkpoint.keep", "eval.", "average.last"}

// checkRecipe refuses to continue a checkpoint written with another recipe
// unless the changes are resume-safe (or -force).
func (run *runner) checkRecipe(old json.RawMessage, step int) error {
	var prev Recipe
	if err := json.Unmarshal(old, &prev); err != nil {
		return fmt.Errorf("the checkpoint's recipe: %w", err)
	}
	if prev.Train.MicroBatches == 0 {
		prev.Train.MicroBatches = 1 // written before train.micro_batches existed: the whole batch at once
	}
	var unsafe []string
	for _, c := range recipes.Diff(prev, run.r) {
		safe := false
		for _, k := range resumeSafe {
			if c.Key == k || strings.HasSuffix(k, ".") && strings.HasPrefix(c.Key, k) {
				safe = true
			}
		}
		// A longer or shorter run changes the schedule of the steps left.
		if c.Key == "train.steps" && run.r.Optim.Schedule != "constant" {
			safe = false
		}
		run.log.Warn("recipe changed since the checkpoint", "key", c.Key, "old", c.Old, "new", c.New)
		if !safe {
			unsafe = append(unsafe, "  "+c.String())
		}
	}
	if len(unsafe) == 0 || run.opt.Force {
		return nil
	}
	return fmt.Errorf("the recipe differs from the checkpoint's (step %d) in ways that change the run being resumed:\n%s\nresume with the run's recipe.yaml, start a new run directory, or pass -force", step, strings.Join(unsafe, "\n"))
}

// evaluate is the engine's Eval hook.
func (run *runner) evaluate(ctx context.Context, at train.Point) (checkpoint.Metrics, error) {
	if run.r.Data.HeldOut == 0 {
		return nil, nil
	}
	if run.comm.Size() > 1 {
		// The ranks split the held-out batches and sum them at the end: a
		// rank leaving early on Ctrl-C would strand the others there.
		ctx = context.WithoutCancel(ctx)
	}
	vals, err := run.t.evaluate(ctx)
	if err != nil || vals == nil {
		return vals, err
	}
	run.res.Eval = maps.Clone(vals)
	args := []any{"step", at.Step}
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		args = append(args, k, fmt.Sprintf("%.4g", vals[k]))
	}
	run.log.Info("eval", args...)
	return vals, nil
}

// finish writes final/ (averaging the last checkpoints when asked) with
// its model card, and the plot.
func (run *runner) finish() error {
	final := filepath.Join(run.r.Out, FinalDir)
	run.res.Final = final
	if run.comm.Rank() != 0 {
		return nil
	}
	if err := run.e.SyncMetrics(); err != nil {
		return err
	}
	recs, err := train.ReadMetrics(filepath.Join(run.r.Out, MetricsFile))
	if err != nil {
		return err
	}
	var lastEval checkpoint.Metrics
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Kind == "train" && run.res.Metrics == nil {
			run.res.Metrics = recs[i].Values
		}
		if recs[i].Kind == "eval" && lastEval == nil {
			lastEval = recs[i].Values
		}
	}
	n, err := run.e.SaveFinal(final, run.r.Average.Last, run.card(lastEval))
	if err != nil {
		return err
	}
	run.log.Info("final model", "dir", final, "averaged_checkpoints", n, "data", run.res.Data.String())
	return run.afterEval(context.Background(), train.Point{})
}

// card is final/'s model card: the kind of training, the base model, the
// data and the last held-out evaluation (of the last step's weights).
func (run *runner) card(eval checkpoint.Metrics) *checkpoint.ModelCard {
	r := &run.r
	what := "supervised fine-tuning on chat rows, loss on the assistant's tokens"
	switch r.Kind {
	case KindRM:
		what = "a Bradley–Terry reward model on preference pairs"
	case KindDPO:
		what = fmt.Sprintf("direct preference optimisation (%s loss, β %g)", r.DPO.Loss, r.DPO.Beta)
	}
	c := &checkpoint.ModelCard{
		Summary: fmt.Sprintf("Post-trained by herd with %s: %d steps, %d tokens, from %s.",
			what, run.res.Steps, run.res.Tokens, r.Model),
		Recipe:    filepath.Join(r.Out, train.RecipeFile),
		BaseModel: r.Model,
		Data:      r.Data.Paths,
	}
	if len(eval) > 0 {
		c.Eval = map[string]float64(eval)
		c.EvalNote = fmt.Sprintf("held-out split (%g of the data's rows) at the last step, before any checkpoint averaging", r.Data.HeldOut)
	}
	return c
}

// afterEval redraws the plots and report.html (the engine's AfterEval
// hook, and the end of the run).
func (run *runner) afterEval(context.Context, train.Point) error {
	files, err := train.WritePlots(run.r.Out)
	if err != nil {
		return err
	}
	run.res.Plot = files[0]
	return run.writeRunReport()
}

// loaderOptions are the chatdata options of the training split (heldOut
// false) or the held-out split.
func (run *runner) loaderOptions(heldOut bool) chatdata.Options {
	r := &run.r
	o := chatdata.Options{
		Paths: r.Data.Paths, Tokenizer: run.tok,
		Encode: chatdata.EncodeOptions{SeqLen: r.Train.SeqLen, Truncation: chatdata.Truncation(r.Data.Truncation),
			AllTokens: r.Data.LossOn == "all"},
		Shuffle: r.Data.Shuffle, Seed: r.Seed, Epochs: r.Data.Epochs, Strict: r.Data.Strict,
		MaxLineBytes: r.Data.MaxLineBytes, HoldOut: r.Data.HeldOut, HeldOut: heldOut,
	}
	if heldOut {
		o.Shuffle, o.Epochs = 1, 1
	}
	return o
}

// dataErr explains a loader that ran out of rows.
func dataErr(step int, err error, r *Recipe) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("step %d: the data ran out after data.epochs = %d passes; raise data.epochs (0 = as many as needed) or lower train.steps", step+1, r.Data.Epochs)
	}
	return fmt.Errorf("step %d: data: %w", step+1, err)
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

func nopLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// claimDir checks, locks and claims a run directory of a stage that does
// not go through the training engine (rs, rounds), removes leftovers of an
// interrupted run and writes the resolved recipe.yaml. Nothing is written
// before the checks pass. Release the lock when done.
func claimDir(r Recipe, what string) (*dirlock.Lock, error) {
	if err := outdir.CheckReplace(r.Out, outdir.PostRun); err != nil {
		return nil, err
	}
	lock, err := dirlock.Acquire(r.Out, what)
	if err != nil {
		return nil, err
	}
	err = outdir.Claim(r.Out, outdir.PostRun)
	if err == nil {
		_, err = atomicfile.RemoveTemps(r.Out)
	}
	var text []byte
	if err == nil {
		text, err = recipes.Marshal(r)
	}
	if err == nil {
		err = atomicfile.WriteFile(filepath.Join(r.Out, train.RecipeFile), text, 0o644)
	}
	if err != nil {
		lock.Release()
		return nil, err
	}
	return lock, nil
}
