// Package train is herd's one training engine. It owns everything a
// training stage does besides computing its loss: the AdamW update with a
// learning-rate schedule per stage, gradient clipping, skipping steps with
// a non-finite loss or gradient norm (and stopping after a streak of
// them), checkpoints (a Hugging Face model directory plus the training
// state, keep-K pruning, atomic), exact resume, interruption (save, then
// report), metrics.jsonl, a progress bar or periodic log lines, evaluation
// and sample hooks, and the safety of the run directory (claimed, locked,
// leftovers removed, nothing written before every check has passed).
//
// A trainer (pretraining, SFT, a reward model, DPO) supplies only its step
// — loss and backward over its own data into the gradients — and its data
// position, serialised as JSON; see Trainer.
package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"time"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/dirlock"
	"github.com/herdml/herd/internal/outdir"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/optim"
)

// Files and directories of a run directory.
const (
	CheckpointsDir = "checkpoints"
	RecipeFile     = "recipe.yaml"
)

// Stage is a span of steps trained with one learning-rate schedule:
// pretraining's main, long-context and annealing stages; a post-training
// run usually has one.
type Stage struct {
	Name string
	// End is the global step count at which the stage ends; the stage runs
	// steps [previous stage's End, End).
	End int
	// Schedule gives the learning rate by the step within the stage.
	Schedule optim.Schedule
	// FLOPsPerToken, when positive, reports the gflop_per_s metric (and
	// mfu, with Options.PeakFLOPs).
	FLOPsPerToken float64
	// CheckpointEvery, when positive, replaces Options.CheckpointEvery in
	// this stage, counted from the stage's first step (e.g. evenly spaced
	// checkpoints of an annealing stage, to average).
	CheckpointEvery int
}

// StepResult is what a trainer's step computed.
type StepResult struct {
	// Loss is the step's loss (already normalised over the whole batch).
	Loss float64
	// Tokens is the number of training tokens of the step (used when
	// Options.TokensAt is nil).
	Tokens int64
	// Metrics are further numbers for the step's line of metrics.jsonl
	// (e.g. rewards/accuracies); may be nil.
	Metrics checkpoint.Metrics
}

// Trainer is what a stage supplies to the engine.
type Trainer interface {
	// Step computes the loss of the step after step steps (so step is
	// 0-based) over the trainer's own data and adds its gradients into
	// Options.Grads, which the engine has zeroed. It must not update the
	// weights. Errors should say which step and what failed.
	Step(step int) (StepResult, error)
	// Position is the data position after the last step taken, saved in
	// every checkpoint.
	Position() (json.RawMessage, error)
	// Restore sets the data position from a checkpoint's Position when a
	// run resumes.
	Restore(pos json.RawMessage) error
}

// StageStarter is implemented by trainers that prepare each stage (a new
// data mixture, a model configuration with other RoPE settings, a
// prefetching loader). The engine calls StartStage before the first step
// it runs in stage i, at global step step, and stop (when not nil) when it
// leaves the stage, also on an error or an interruption.
type StageStarter interface {
	StartStage(ctx context.Context, i, step int) (stop func(), err error)
}

// Point is where a run is when a hook is called.
type Point struct {
	Step   int    // global steps done
	Tokens int64  // training tokens seen
	Stage  string // the stage of the last step done
}

// Options describe a run to the engine.
type Options struct {
	// Dir is the run directory; DirKind is its outdir kind (default
	// outdir.Run).
	Dir     string
	DirKind string
	// Resume continues from the newest checkpoint in Dir (starting fresh
	// when there is none). Without it, a Dir that holds checkpoints is
	// refused.
	Resume bool

	// Params are the trained weights, Grads their gradients (same layout).
	// The layout may hold any tensors (an LM head, a reward head, both).
	Params, Grads *model.Params
	// Config is the model configuration saved with a checkpoint; it is
	// called at each save, so it may change between stages.
	Config func() model.Config
	// Backend splits the optimizer update across workers (nil: the
	// calling goroutine).
	Backend kernels.Backend

	// AdamW configures the optimizer; ClipGradNorm, when positive, clips
	// the global gradient norm.
	AdamW        optim.AdamWConfig
	ClipGradNorm float64
	// Stages are the run's stages in order (at least one).
	Stages []Stage
	// MaxBadSteps is how many consecutive non-finite steps stop the run
	// (at least 1).
	MaxBadSteps int
	// LogEvery logs every LogEvery-th step when there is no progress bar;
	// LogInterval (default 30 s) also logs a step when that long has
	// passed since the last line, so slow steps still show progress.
	LogEvery    int
	LogInterval time.Duration
	// EvalEvery calls the Eval and Samples hooks every EvalEvery steps
	// (0: only at the end).
	EvalEvery int
	// CheckpointEvery saves every CheckpointEvery steps (and always at the
	// end of a stage); Keep (at least 1) is how many checkpoints are kept.
	CheckpointEvery int
	Keep            int

	// Recipe is recorded in every checkpoint; RecipeText, when set, is
	// written to Dir/recipe.yaml.
	Recipe     json.RawMessage
	RecipeText []byte
	// CheckRecipe, when resuming from a checkpoint whose recorded recipe
	// differs from Recipe, decides whether the run may continue at step
	// (returning an error to refuse); nil accepts any change.
	CheckRecipe func(old json.RawMessage, step int) error
	// Extra files (e.g. the tokenizer's) are copied into every model
	// directory.
	Extra map[string][]byte
	// TokensAt, when set, is the number of training tokens seen after a
	// global step (a fixed plan); otherwise the engine counts the steps'
	// Tokens.
	TokensAt func(step int) int64

	// Eval, when set, evaluates the current weights; the numbers it
	// returns (nil: none) are written as a record of kind "eval".
	// "eval_loss" also shows on the progress bar.
	Eval func(ctx context.Context, at Point) (checkpoint.Metrics, error)
	// Samples, when set, is called after Eval (e.g. to write generated
	// samples).
	Samples func(ctx context.Context, at Point) error
	// AfterEval, when set, is called after Eval and Samples, with
	// metrics.jsonl flushed (e.g. to redraw the plots and the report).
	AfterEval func(ctx context.Context, at Point) error
	// PeakFLOPs, when positive, is the hardware's peak FLOP/s that the
	// mfu metric (model FLOPs utilisation: gflop_per_s·1e9 / PeakFLOPs)
	// is measured against.
	PeakFLOPs float64
	// ReduceGrads, when set, runs after each step's backward pass and
	// before clipping: where a data-parallel run all-reduces gradients
	// (tests poison them here). step is 1-based.
	ReduceGrads func(step int, grads *model.Params) error
	// Comm, when it has several ranks, makes the run data-parallel (see
	// DataParallel): nil is one process.
	Comm cluster.Comm
	// BucketValues is the all-reduce bucket size in values (0: the default
	// of cluster.NewReducer, 1<<20 values = 4 MiB).
	BucketValues int
	// OnStep, when set, is called as training starts and after every step
	// with the number of steps done.
	OnStep func(step int)
	// StopAt, when positive, stops the run as an interruption does once
	// this many steps are done.
	StopAt int

	// Logger receives progress and warnings (default: discard).
	Logger *slog.Logger
	// Progress, when set, shows a progress bar.
	Progress *Progress
}

// Result summarises what the engine did.
type Result struct {
	Steps       int     // global steps completed
	Tokens      int64   // training tokens seen
	Loss        float64 // last training loss
	Checkpoint  string  // newest checkpoint directory
	Interrupted bool    // stopped by the context or StopAt, after saving
}

// Engine runs one training run. Create it with New, claim the run
// directory with Claim, then Run it; Close it in every case.
type Engine struct {
	opt     Options
	t       Trainer
	log     *slog.Logger
	adam    *optim.AdamW
	lock    *dirlock.Lock
	metrics *metricsLog
	claimed bool
	resumed bool
	comm    cluster.Comm
	red     *cluster.Reducer
	scal    []float64 // the step's scalars to reduce, reused
	keys    []string  // the step's metric names, reused
	commDur time.Duration
	// commBytes: bytes this rank sent in the step's gradient all-reduce
	commBytes int64

	step    int       // steps done
	tokens  int64     // training tokens seen after step
	saved   int       // step of the newest checkpoint (-1 none)
	bad     int       // consecutive skipped steps
	started int       // step when this session started
	logged  time.Time // when the last step line was logged
	startT  int64     // tokens when this session started
	start   time.Time
	vals    checkpoint.Metrics // a train record's values, reused
	res     Result
}

// New checks the run directory and locks it, builds the optimizer, and
// restores the newest checkpoint when resuming (calling the trainer's
// Restore). It writes nothing: call Claim once the caller's own checks
// have passed.
func New(opt Options, t Trainer) (*Engine, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	if t == nil {
		return nil, errors.New("train: no trainer")
	}
	if opt.DirKind == "" {
		opt.DirKind = outdir.Run
	}
	e := &Engine{opt: opt, t: t, log: opt.Logger, saved: -1, vals: checkpoint.Metrics{}, comm: opt.Comm}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.comm == nil {
		e.comm = cluster.Single{}
	}
	e.red = cluster.NewReducer(e.comm, opt.BucketValues)
	if err := e.open(); err != nil {
		e.lock.Release()
		return nil, err
	}
	return e, nil
}

func (o *Options) validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("no run directory"))
	}
	if o.Params == nil || o.Grads == nil {
		errs = append(errs, errors.New("no parameters or gradients"))
	} else if o.Params.Layout.Total != o.Grads.Layout.Total {
		errs = append(errs, fmt.Errorf("the gradients (%d numbers) do not match the parameters (%d)", o.Grads.Layout.Total, o.Params.Layout.Total))
	}
	if o.Config == nil {
		errs = append(errs, errors.New("no model configuration"))
	}
	if len(o.Stages) == 0 {
		errs = append(errs, errors.New("no stages"))
	}
	prev := 0
	for i, s := range o.Stages {
		if s.End < prev || s.Schedule == nil {
			errs = append(errs, fmt.Errorf("stage %d (%s): ends at step %d after %d, schedule %v", i, s.Name, s.End, prev, s.Schedule))
		}
		prev = s.End
	}
	if o.MaxBadSteps < 1 {
		errs = append(errs, fmt.Errorf("max bad steps %d: must be at least 1", o.MaxBadSteps))
	}
	if o.Keep < 1 {
		errs = append(errs, fmt.Errorf("keep %d checkpoints: must be at least 1", o.Keep))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

// open checks and locks the directory, builds AdamW and restores.
func (e *Engine) open() error {
	dir := e.opt.Dir
	// The run directory is herd's own (or new), and one process writes it:
	// rank 0 of a data-parallel run.
	var err error
	if e.writer() {
		if err := outdir.CheckReplace(dir, e.opt.DirKind); err != nil {
			return err
		}
		if e.lock, err = dirlock.Acquire(dir, "run directory"); err != nil {
			return err
		}
	}
	if e.adam, err = optim.NewAdamW(e.opt.Params.Layout, e.opt.AdamW, e.opt.Backend); err != nil {
		return err
	}
	e.tokens = e.tokensAt(0)
	root := filepath.Join(dir, CheckpointsDir)
	if e.opt.Resume {
		latest, err := checkpoint.Latest(root)
		switch {
		case errors.Is(err, checkpoint.ErrNoCheckpoint):
			e.log.Info("no checkpoint to resume from; starting fresh", "dir", root)
		case err != nil:
			return err
		default:
			if err := e.restore(latest.Dir); err != nil {
				return fmt.Errorf("resume from %s: %w", latest.Dir, err)
			}
			e.resumed = true
		}
	} else if all, err := checkpoint.List(root); err == nil && len(all) > 0 && e.writer() {
		return fmt.Errorf("%s already holds checkpoints (newest step %d); continue it with -resume, or choose another out directory", root, all[len(all)-1].Step)
	}
	return e.agreeStart()
}

// restore loads a checkpoint into the engine and the trainer.
func (e *Engine) restore(dir string) error {
	_, params, st, err := checkpoint.Load(dir)
	if err != nil {
		return err
	}
	if !sameLayout(params.Layout, e.opt.Params.Layout) {
		return errors.New("the checkpoint holds a different model than the recipe describes")
	}
	if st.Optimizer == nil {
		return errors.New("the checkpoint has no optimizer state")
	}
	if err := e.t.Restore(st.DataPosition); err != nil {
		return fmt.Errorf("data position: %w", err)
	}
	if len(st.Recipe) == 0 {
		e.log.Warn("the checkpoint records no recipe; cannot check that the recipe is the one it was trained with")
	} else if string(st.Recipe) != string(e.opt.Recipe) && e.opt.CheckRecipe != nil {
		if err := e.opt.CheckRecipe(st.Recipe, st.Step); err != nil {
			return err
		}
	}
	copy(e.opt.Params.Data, params.Data)
	if err := e.adam.SetState(st.Optimizer.Step, st.Optimizer.M, st.Optimizer.V); err != nil {
		return err
	}
	e.step, e.saved = st.Step, st.Step
	if e.opt.TokensAt != nil {
		e.tokens = e.opt.TokensAt(e.step)
	} else {
		e.tokens = int64(st.Metrics["tokens"])
	}
	e.log.Info("resumed", "checkpoint", dir, "step", e.step)
	return nil
}

// sameLayout reports whether two layouts hold the same tensors (names and
// shapes, in order).
func sameLayout(a, b *model.Layout) bool {
	if a.Total != b.Total || len(a.Tensors) != len(b.Tensors) {
		return false
	}
	for i, t := range a.Tensors {
		u := b.Tensors[i]
		if t.Name != u.Name || t.Offset != u.Offset || !slices.Equal(t.Shape, u.Shape) {
			return false
		}
	}
	return true
}

// Step is the number of steps done (after New, the resumed step).
func (e *Engine) Step() int { return e.step }

// Resumed reports whether New restored a checkpoint.
func (e *Engine) Resumed() bool { return e.resumed }

// Claim marks the run directory as a run's, removes leftovers of an
// interrupted run, writes recipe.yaml and opens metrics.jsonl (keeping the
// lines up to the resumed step). From here on the directory is written.
func (e *Engine) Claim() error {
	e.claimed = true
	if !e.writer() {
		return nil
	}
	dir := e.opt.Dir
	if err := outdir.Claim(dir, e.opt.DirKind); err != nil {
		return err
	}
	if removed, err := atomicfile.RemoveTemps(dir); err != nil {
		return err
	} else if len(removed) > 0 {
		e.log.Info("removed leftovers of an interrupted run", "dir", dir, "entries", len(removed))
	}
	if e.opt.RecipeText != nil {
		if err := atomicfile.WriteFile(filepath.Join(dir, RecipeFile), e.opt.RecipeText, 0o644); err != nil {
			return err
		}
	}
	var err error
	e.metrics, err = openMetrics(filepath.Join(dir, MetricsFile), e.resumed, e.step)
	return err
}

// Close flushes metrics.jsonl and releases the run directory.
func (e *Engine) Close() error {
	var err error
	if e.metrics != nil {
		err = e.metrics.close()
		e.metrics = nil
	}
	if lerr := e.lock.Release(); err == nil {
		err = lerr
	}
	return err
}

// WriteRecord appends a record to metrics.jsonl.
func (e *Engine) WriteRecord(r Record) error {
	if !e.writer() {
		return nil
	}
	if e.metrics == nil {
		return errors.New("train: metrics.jsonl is not open (Claim first)")
	}
	return e.metrics.write(r)
}

// SyncMetrics flushes metrics.jsonl to disk.
func (e *Engine) SyncMetrics() error {
	if e.metrics == nil {
		return nil
	}
	return e.metrics.sync()
}

// tokensAt is the number of training tokens after step steps, by the plan
// when there is one, else as counted.
func (e *Engine) tokensAt(step int) int64 {
	if e.opt.TokensAt != nil {
		return e.opt.TokensAt(step)
	}
	return e.tokens
}

// stageAt is the index of the stage that step (0-based) belongs to; the
// number of stages when training is complete.
func (e *Engine) stageAt(step int) int {
	for i, s := range e.opt.Stages {
		if step < s.End {
			return i
		}
	}
	return len(e.opt.Stages)
}

func (e *Engine) stageStart(i int) int {
	if i == 0 {
		return 0
	}
	return e.opt.Stages[i-1].End
}

// Run trains from the current step to the end of the last stage, saving
// checkpoints as it goes, and at the end saves the last step and calls the
// Eval and Samples hooks. A cancelled context (or StopAt) saves a
// checkpoint and returns a Result with Interrupted set.
func (e *Engine) Run(ctx context.Context) (*Result, error) {
	if !e.claimed {
		return nil, errors.New("train: Run before Claim")
	}
	total := e.opt.Stages[len(e.opt.Stages)-1].End
	e.start, e.started, e.startT = time.Now(), e.step, e.tokens
	if e.opt.OnStep != nil {
		e.opt.OnStep(e.step)
	}
	if e.opt.Progress != nil {
		e.opt.Progress.start(total, e.step)
	}
	for si := e.stageAt(e.step); si < len(e.opt.Stages); si++ {
		interrupted, err := e.runStage(ctx, si)
		if err != nil {
			return &e.res, err
		}
		if interrupted {
			return &e.res, e.interrupt()
		}
	}
	return &e.res, e.finish(ctx)
}

// runStage runs the remaining steps of stage si.
func (e *Engine) runStage(ctx context.Context, si int) (interrupted bool, err error) {
	s := &e.opt.Stages[si]
	if ss, ok := e.t.(StageStarter); ok {
		stop, err := ss.StartStage(ctx, si, e.step)
		if err != nil {
			return false, err
		}
		if stop != nil {
			defer stop()
		}
	}
	start := e.stageStart(si)
	for e.step < s.End {
		stop, err := e.red.Any(ctx.Err() != nil || e.opt.StopAt > 0 && e.step >= e.opt.StopAt)
		if err != nil {
			return false, fmt.Errorf("step %d: agreeing on stopping: %w", e.step+1, err)
		}
		if stop {
			return true, nil
		}
		rec, err := e.trainStep(s, s.Schedule.LR(e.step-start))
		if err != nil {
			return false, err
		}
		if err := e.WriteRecord(rec); err != nil {
			return false, err
		}
		e.res.Loss = rec.Values["loss"]
		e.report(rec)
		if rec.Skipped {
			if e.bad >= e.opt.MaxBadSteps {
				last := "none was written"
				if e.saved >= 0 {
					last = filepath.Join(e.opt.Dir, CheckpointsDir, checkpoint.StepDirName(e.saved))
				}
				return false, fmt.Errorf("stopping: %d consecutive steps (up to step %d) had a non-finite loss or gradient norm; the last good checkpoint is %s. Lower optim.lr, raise optim.warmup_steps or set optim.clip_grad_norm, then resume with -resume", e.bad, e.step, last)
			}
			continue
		}
		if e.opt.EvalEvery > 0 && e.step%e.opt.EvalEvery == 0 && e.step < e.opt.Stages[len(e.opt.Stages)-1].End {
			if err := e.evaluate(ctx); err != nil {
				return false, err
			}
		}
		if e.checkpointDue(s, start) {
			if err := e.save(); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

// checkpointDue reports whether the step just done in stage s (which
// began at global step start) is saved.
func (e *Engine) checkpointDue(s *Stage, start int) bool {
	if e.step == s.End {
		return true
	}
	if s.CheckpointEvery > 0 {
		return (e.step-start)%s.CheckpointEvery == 0
	}
	return e.opt.CheckpointEvery > 0 && e.step%e.opt.CheckpointEvery == 0
}

// trainStep runs the trainer's step, clips, updates the weights unless
// the loss or gradient norm is not finite, and returns the step's record.
func (e *Engine) trainStep(s *Stage, lr float64) (Record, error) {
	g := e.opt.Grads
	g.Zero()
	out, err := e.t.Step(e.step)
	if err != nil {
		return Record{}, err
	}
	if err := e.reduce(g, &out); err != nil {
		return Record{}, fmt.Errorf("step %d: %w", e.step+1, err)
	}
	if e.opt.ReduceGrads != nil {
		if err := e.opt.ReduceGrads(e.step+1, g); err != nil {
			return Record{}, fmt.Errorf("step %d: gradients: %w", e.step+1, err)
		}
	}
	var gn float64
	if e.opt.ClipGradNorm > 0 {
		gn = optim.ClipGradNorm(g, e.opt.ClipGradNorm)
	} else {
		gn = optim.GradNorm(g)
	}
	skipped := false
	if !finite(out.Loss) || !finite(gn) {
		e.bad++
		skipped = true
		e.log.Warn("non-finite loss or gradient norm; update skipped", "step", e.step+1, "loss", out.Loss, "grad_norm", gn, "in_a_row", e.bad)
	} else {
		e.bad = 0
		if err := e.adam.Update(e.opt.Params, g, lr); err != nil {
			return Record{}, err
		}
	}
	e.step++
	if e.opt.OnStep != nil {
		e.opt.OnStep(e.step)
	}
	if e.opt.TokensAt != nil {
		e.tokens = e.opt.TokensAt(e.step)
	} else {
		e.tokens += out.Tokens
	}
	clear(e.vals)
	v := e.vals
	v["loss"], v["lr"], v["grad_norm"] = out.Loss, lr, gn
	el := time.Since(e.start).Seconds()
	tps := float64(e.tokens-e.startT) / el
	putNonZero(v, "elapsed_s", el)
	putNonZero(v, "tokens_per_s", tps)
	putNonZero(v, "gflop_per_s", tps*s.FLOPsPerToken/1e9)
	if e.opt.PeakFLOPs > 0 {
		putNonZero(v, "mfu", tps*s.FLOPsPerToken/e.opt.PeakFLOPs)
	}
	putNonZero(v, "allreduce_s", e.commDur.Seconds())
	putNonZero(v, "allreduce_bytes", float64(e.commBytes))
	for k, x := range out.Metrics {
		v[k] = x
	}
	return Record{Kind: "train", Step: e.step, Stage: s.Name, Tokens: e.tokens, Skipped: skipped, Values: v}, nil
}

// putNonZero sets m[k] = x unless x is 0 (optional numbers are left out
// of metrics.jsonl when zero).
func putNonZero(m checkpoint.Metrics, k string, x float64) {
	if x != 0 {
		m[k] = x
	}
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// report shows a step on the progress bar or, every LogEvery steps, in
// the log.
func (e *Engine) report(rec Record) {
	if !e.writer() {
		return
	}
	v := rec.Values
	if bar := e.opt.Progress; bar != nil {
		bar.update(rec.Step, rec.Stage, v["loss"], v["tokens_per_s"])
		return
	}
	interval := e.opt.LogInterval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	if e.opt.LogEvery > 0 && rec.Step%e.opt.LogEvery == 0 || rec.Step == e.started+1 || time.Since(e.logged) >= interval {
		e.logged = time.Now()
		e.log.Info("step", "step", rec.Step, "stage", rec.Stage, "loss", fmt.Sprintf("%.4f", v["loss"]),
			"lr", fmt.Sprintf("%.3g", v["lr"]), "grad_norm", fmt.Sprintf("%.3f", v["grad_norm"]),
			"tokens_per_s", fmt.Sprintf("%.0f", v["tokens_per_s"]), "gflop_per_s", fmt.Sprintf("%.1f", v["gflop_per_s"]))
	}
}

// at is the run's current point.
func (e *Engine) at() Point {
	s := e.opt.Stages[min(e.stageAt(max(e.step-1, 0)), len(e.opt.Stages)-1)]
	return Point{Step: e.step, Tokens: e.tokens, Stage: s.Name}
}

// evaluate calls the Eval and Samples hooks; an evaluation cut short by
// the context is dropped quietly.
func (e *Engine) evaluate(ctx context.Context) error {
	at := e.at()
	if e.opt.Eval != nil {
		vals, err := e.opt.Eval(ctx, at)
		if errors.Is(err, context.Canceled) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("eval at step %d: %w", e.step, err)
		}
		if vals != nil {
			if err := e.WriteRecord(Record{Kind: "eval", Step: at.Step, Stage: at.Stage, Tokens: at.Tokens, Values: vals}); err != nil {
				return err
			}
			if loss, ok := vals["eval_loss"]; ok && e.opt.Progress != nil {
				e.opt.Progress.eval(loss)
			}
		}
	}
	if e.opt.Samples != nil && e.writer() {
		err := e.opt.Samples(ctx, at)
		if errors.Is(err, context.Canceled) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("samples at step %d: %w", e.step, err)
		}
	}
	if e.opt.AfterEval != nil && e.writer() {
		if err := e.metrics.sync(); err != nil {
			return err
		}
		if err := e.opt.AfterEval(ctx, at); err != nil {
			return fmt.Errorf("after the eval at step %d: %w", e.step, err)
		}
	}
	return nil
}

// save writes a checkpoint of the current step and prunes old ones. It is
// skipped while the run is in a streak of non-finite steps, so the newest
// checkpoint stays a good one.
func (e *Engine) save() error {
	if e.bad > 0 || e.saved == e.step {
		return nil
	}
	if !e.writer() {
		e.saved = e.step
		return nil
	}
	pos, err := e.t.Position()
	if err != nil {
		return fmt.Errorf("checkpoint at step %d: data position: %w", e.step, err)
	}
	st := &checkpoint.TrainingState{
		Step:         e.step,
		Optimizer:    &checkpoint.OptimizerState{Name: "adamw", Step: e.adam.Step, M: e.adam.M, V: e.adam.V},
		DataPosition: pos,
		Recipe:       e.opt.Recipe,
		Metrics:      checkpoint.Metrics{"loss": e.res.Loss, "tokens": float64(e.tokens)},
	}
	// metrics.jsonl holds every step up to this one before the checkpoint
	// exists: a kill after it is published must not leave a gap.
	if err := e.metrics.sync(); err != nil {
		return err
	}
	root := filepath.Join(e.opt.Dir, CheckpointsDir)
	dir, err := checkpoint.Save(root, e.opt.Config(), e.opt.Params, st, checkpoint.SaveOptions{Extra: e.opt.Extra})
	if err != nil {
		return fmt.Errorf("checkpoint at step %d: %w", e.step, err)
	}
	if err := checkpoint.Prune(root, e.opt.Keep); err != nil {
		return err
	}
	e.saved = e.step
	e.res.Checkpoint = dir
	e.log.Debug("checkpoint", "dir", dir)
	return nil
}

// interrupt saves a checkpoint after Ctrl-C.
func (e *Engine) interrupt() error {
	e.res.Interrupted = true
	e.res.Steps, e.res.Tokens = e.step, e.tokens
	if err := e.save(); err != nil {
		return err
	}
	e.log.Warn("interrupted; checkpoint saved — continue with -resume", "step", e.step, "checkpoint", e.res.Checkpoint)
	return nil
}

// finish saves the last step and evaluates it (even when the context is
// cancelled by now).
func (e *Engine) finish(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	if err := e.save(); err != nil {
		return err
	}
	e.res.Steps, e.res.Tokens = e.step, e.tokens
	return e.evaluate(ctx)
}

// SaveFinal writes the final model to dir: the element-wise mean of the
// newest last checkpoints (Polyak averaging) when last ≥ 2 and there are
// at least two, else the current weights. It returns how many checkpoints
// were averaged (1 for the current weights). card, when not nil, is the
// directory's README.md model card.
func (e *Engine) SaveFinal(dir string, last int, card *checkpoint.ModelCard) (int, error) {
	if !e.writer() {
		return 0, nil
	}
	opts := checkpoint.SaveOptions{Extra: e.opt.Extra, Card: card}
	if last >= 2 {
		all, err := checkpoint.List(filepath.Join(e.opt.Dir, CheckpointsDir))
		if err != nil {
			return 0, err
		}
		if len(all) >= 2 {
			all = all[max(0, len(all)-last):]
			dirs := make([]string, len(all))
			steps := make([]int, len(all))
			for i, c := range all {
				dirs[i], steps[i] = c.Dir, c.Step
			}
			_, params, err := checkpoint.Average(dirs)
			if err != nil {
				return 0, err
			}
			if err := checkpoint.SaveModel(dir, e.opt.Config(), params, opts); err != nil {
				return 0, err
			}
			e.log.Info("averaged checkpoints", "steps", fmt.Sprint(steps), "into", dir)
			return len(all), nil
		}
	}
	return 1, checkpoint.SaveModel(dir, e.opt.Config(), e.opt.Params, opts)
}
