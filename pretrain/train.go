package pretrain

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/dirlock"
	"github.com/herdml/herd/internal/outdir"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/optim"
	"github.com/herdml/herd/recipes"
)

// Files and directories of a run directory.
const (
	CheckpointsDir = "checkpoints"
	FinalDir       = "final"
	RecipeFile     = "recipe.yaml"
	SamplesFile    = "samples.jsonl"
)

// RunOptions control Run beyond the recipe.
type RunOptions struct {
	// Resume continues from the newest checkpoint in the run directory
	// (starting fresh when there is none).
	Resume bool
	// Logger receives progress and warnings (default: discard).
	Logger *slog.Logger
	// Progress, when set, shows a progress bar (on a terminal). Give the
	// Logger a handler that writes to it so log lines print above the bar.
	Progress *Progress
	// Backend runs the model (default: kernels.NewCPU(recipe.workers)).
	Backend kernels.Backend
	// Force resumes a checkpoint even when the recipe changed in ways that
	// alter the run (the changes are logged).
	Force bool
	// AllowTokenizerMismatch trains with a tokenizer whose content differs
	// from the one the token shards were made with.
	AllowTokenizerMismatch bool

	// corrupt, in tests, may poison the gradients of a step.
	corrupt func(step int, g *model.Params)
	// stopAt, in tests, interrupts the run (as Ctrl-C does) once this many
	// steps are done.
	stopAt int
	// onStep, in benchmarks, is called when training starts and after
	// every step with the number of steps done.
	onStep func(step int)
}

// EvalPoint is one evaluation.
type EvalPoint struct {
	Step   int     `json:"step"`
	Tokens int64   `json:"tokens"`
	Loss   float64 `json:"loss"`
	PPL    float64 `json:"ppl"`
}

// Result summarises a run.
type Result struct {
	Steps       int     // global steps completed
	Tokens      int64   // training tokens seen
	Loss        float64 // last training loss
	Unigram     float64 // unigram entropy of the held-out targets (nats/token)
	Evals       []EvalPoint
	FinalEval   float64 // held-out loss of final/ (the averaged model)
	Checkpoint  string  // newest checkpoint directory
	Final       string  // final/ directory ("" when interrupted)
	Interrupted bool
	Samples     []Sample // the last evaluation's samples
	Plot        string   // loss.png path
}

// dataPosition is the checkpoint's data position.
type dataPosition struct {
	Stage  int         `json:"stage"`
	Stream StreamState `json:"stream"`
}

// tokensAt is the number of training tokens seen after step steps.
func tokensAt(plans []StagePlan, step int) int64 {
	var n int64
	for _, p := range plans {
		if step <= p.Start {
			break
		}
		n += int64(min(step, p.End)-p.Start) * int64(p.BatchTokens)
	}
	return n
}

// stageAt is the index of the stage that step (0-based) belongs to; the
// number of stages when training is complete.
func stageAt(plans []StagePlan, step int) int {
	for i, p := range plans {
		if step < p.End {
			return i
		}
	}
	return len(plans)
}

// runner is one Run's state.
type runner struct {
	r       Recipe
	opt     RunOptions
	log     *slog.Logger
	plans   []StagePlan
	be      kernels.Backend
	tok     *tokenizer.Tokenizer
	tokDir  string
	vocab   int
	m       *model.Model // training model
	evalM   *model.Model // shares m's parameters
	adam    *optim.AdamW
	step    int
	state   StreamState // stream position after step
	stateOf int         // stage the state belongs to
	metrics *metricsLog
	eval    *EvalSet
	recipe  json.RawMessage
	res     Result
	start   time.Time
	started int // step when this session started
	bad     int // consecutive skipped steps
	saved   int // step of the newest checkpoint (-1 none)
	bar     *Progress
	lock    *dirlock.Lock
}

// Run trains the recipe's model: every stage, with evaluation, checkpoints,
// Polyak averaging into final/, a loss plot and samples. An interrupted
// context saves a checkpoint and returns a Result with Interrupted set.
func Run(ctx context.Context, r Recipe, opt RunOptions) (*Result, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	if opt.Progress != nil {
		defer opt.Progress.finish()
	}
	run := &runner{r: r, opt: opt, log: opt.Logger, plans: r.Plan(), saved: -1}
	if run.log == nil {
		run.log = slog.New(slog.DiscardHandler)
	}
	defer func() { run.lock.Release() }()
	if err := run.setup(ctx); err != nil {
		return nil, err
	}
	defer run.metrics.close()
	if c, ok := run.be.(interface{ Close() }); ok && opt.Backend == nil {
		defer c.Close()
	}
	err := run.train(ctx)
	if err != nil {
		return &run.res, err
	}
	return &run.res, nil
}

// setup checks the data, the tokenizer and the run directory, builds the
// model and optimizer, and restores a checkpoint when resuming. Nothing in
// the run directory changes until every check has passed.
func (run *runner) setup(ctx context.Context) error {
	r := &run.r
	man, err := run.checkData()
	if err != nil {
		return err
	}
	run.vocab = r.Model.VocabSize
	if run.vocab == 0 {
		run.vocab = man.Tokenizer.VocabSize
		r.Model.VocabSize = run.vocab
	}
	if err := run.loadTokenizer(man); err != nil {
		return err
	}
	// The run directory is herd's own (or new), and one process writes it.
	if err := outdir.CheckReplace(r.Out, outdir.Run); err != nil {
		return err
	}
	if run.lock, err = dirlock.Acquire(r.Out, "run directory"); err != nil {
		return err
	}
	if run.recipe, err = json.Marshal(r); err != nil {
		return err
	}
	run.be = run.opt.Backend
	if run.be == nil {
		run.be = kernels.NewCPU(r.Workers)
	}
	cfg, err := r.ModelConfig(run.plans[0], run.vocab)
	if err != nil {
		return err
	}
	cfg = run.withTokens(cfg)
	m, err := model.New(cfg, run.be)
	if err != nil {
		return err
	}
	m.Params.Init(cfg, r.Seed)
	m.EnsureGrads()
	ac := optim.AdamWConfig{Beta1: r.Optim.Beta1, Beta2: r.Optim.Beta2, Eps: r.Optim.Eps, WeightDecay: r.Optim.WeightDecay}
	if run.adam, err = optim.NewAdamW(m.Params.Layout, ac, run.be); err != nil {
		return err
	}
	run.m = m
	root := filepath.Join(r.Out, CheckpointsDir)
	resumed := false
	if run.opt.Resume {
		latest, err := checkpoint.Latest(root)
		switch {
		case errors.Is(err, checkpoint.ErrNoCheckpoint):
			run.log.Info("no checkpoint to resume from; starting fresh", "dir", root)
		case err != nil:
			return err
		default:
			if err := run.restore(latest.Dir); err != nil {
				return fmt.Errorf("resume from %s: %w", latest.Dir, err)
			}
			resumed = true
		}
	} else if all, err := checkpoint.List(root); err == nil && len(all) > 0 {
		return fmt.Errorf("%s already holds checkpoints (newest step %d); continue it with -resume, or choose another out directory", root, all[len(all)-1].Step)
	}
	if err := run.setStage(stageAt(run.plans, run.step)); err != nil {
		return err
	}
	// Every check has passed: from here on the run directory is written.
	if err := outdir.Claim(r.Out, outdir.Run); err != nil {
		return err
	}
	if removed, err := atomicfile.RemoveTemps(r.Out); err != nil {
		return err
	} else if len(removed) > 0 {
		run.log.Info("removed leftovers of an interrupted run", "dir", r.Out, "entries", len(removed))
	}
	text, err := recipes.Marshal(r)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(r.Out, RecipeFile), text, 0o644); err != nil {
		return err
	}
	if run.metrics, err = openMetrics(filepath.Join(r.Out, MetricsFile), resumed, run.step); err != nil {
		return err
	}
	if !resumed {
		if err := atomicfile.WriteFile(filepath.Join(r.Out, SamplesFile), nil, 0o644); err != nil {
			return err
		}
	}
	return run.buildEval(ctx)
}

// checkData resolves every source of the recipe (training stages and
// evaluation) through its manifests, so that missing, stale or unlisted
// shards fail before training, and checks that all the sources were
// tokenized by the same tokenizer. It returns the first source's manifest.
func (run *runner) checkData() (*Manifest, error) {
	r := &run.r
	type use struct {
		where string
		src   Source
	}
	var uses []use
	for i, s := range r.Data.Sources {
		uses = append(uses, use{fmt.Sprintf("data.sources[%d] (%s)", i, s.Name), s})
	}
	for i, st := range r.Stages {
		for j, s := range st.Sources {
			uses = append(uses, use{fmt.Sprintf("stages[%d].sources[%d] (%s)", i, j, s.Name), s})
		}
	}
	for i, s := range r.Eval.Sources {
		uses = append(uses, use{fmt.Sprintf("eval.sources[%d] (%s)", i, s.Name), s})
	}
	var first *Manifest
	var firstAt string
	for _, u := range uses {
		shards, err := tokenShards(u.src.Paths)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u.where, err)
		}
		for _, sh := range shards {
			if first == nil {
				first, firstAt = sh.Manifest, sh.Dir
				continue
			}
			if sh.Manifest.Tokenizer.Hash != first.Tokenizer.Hash || sh.Manifest.Tokenizer.VocabSize != first.Tokenizer.VocabSize {
				msg := fmt.Sprintf("%s: the token shards in %s were made with tokenizer %s (hash %s, %d ids), those in %s with %s (hash %s, %d ids); every source must use the same tokenizer",
					u.where, sh.Dir, sh.Manifest.Tokenizer.Dir, sh.Manifest.Tokenizer.Hash, sh.Manifest.Tokenizer.VocabSize,
					firstAt, first.Tokenizer.Dir, first.Tokenizer.Hash, first.Tokenizer.VocabSize)
				if !run.opt.AllowTokenizerMismatch {
					return nil, errors.New(msg + " (or pass -allow-tokenizer-mismatch)")
				}
				run.log.Warn(msg)
			}
		}
	}
	if first == nil {
		return nil, errors.New("data.sources: no token shards")
	}
	return first, nil
}

// loadTokenizer loads the recipe's tokenizer, or else the one the token
// shards' manifest names, and checks that its content is the one the
// shards were made with.
func (run *runner) loadTokenizer(man *Manifest) error {
	run.tokDir = run.r.Tokenizer
	if run.tokDir == "" && man.Tokenizer.Dir != "" {
		if _, err := os.Stat(filepath.Join(man.Tokenizer.Dir, tokenizer.TokenizerFile)); err == nil {
			run.tokDir = man.Tokenizer.Dir
		} else {
			run.log.Warn("the tokenizer the token shards were made with is gone; samples will be token ids and checkpoints carry no tokenizer (set tokenizer=DIR)", "dir", man.Tokenizer.Dir)
		}
	}
	if run.tokDir == "" {
		return nil
	}
	tok, err := tokenizer.Load(run.tokDir)
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	if tok.VocabSize() > run.vocab {
		return fmt.Errorf("the tokenizer in %s has %d ids but model.vocab_size is %d", run.tokDir, tok.VocabSize(), run.vocab)
	}
	if hash, ok := sameTokenizer(run.tokDir, tok, man.Tokenizer.Hash); !ok {
		msg := fmt.Sprintf("the tokenizer in %s (hash %s) is not the one the token shards were made with (%s, hash %s): the ids would decode to other text",
			run.tokDir, hash, cmp.Or(man.Tokenizer.Dir, "no directory recorded"), man.Tokenizer.Hash)
		if !run.opt.AllowTokenizerMismatch {
			return errors.New(msg + "; set tokenizer= to the right directory, re-tokenize, or pass -allow-tokenizer-mismatch")
		}
		run.log.Warn(msg)
	}
	run.tok = tok
	return nil
}

// sameTokenizer reports whether the tokenizer in dir is the one with the
// manifest's hash: of its tokenizer.json bytes, or, for manifests made from
// an in-memory tokenizer, of its serialised form. It returns dir's hash.
func sameTokenizer(dir string, tok *tokenizer.Tokenizer, want string) (string, bool) {
	var hash string
	if data, err := os.ReadFile(filepath.Join(dir, tokenizer.TokenizerFile)); err == nil {
		hash = fmt.Sprintf("%016x", xxh3.Hash(data))
		if hash == want {
			return hash, true
		}
	}
	if tj, _, err := tok.MarshalHF(); err == nil && fmt.Sprintf("%016x", xxh3.Hash(tj)) == want {
		return hash, true
	}
	return hash, false
}

// withTokens records the tokenizer's BOS/EOS ids in a model config.
func (run *runner) withTokens(c model.Config) model.Config {
	if run.tok == nil {
		return c
	}
	if id, ok := run.tok.SpecialID(run.tok.Config().BOS); ok {
		v := int(id)
		c.BOSTokenID = &v
	}
	if id, ok := run.tok.SpecialID(run.tok.Config().EOS); ok {
		c.EOSTokenID = int(id)
	}
	return c
}

func (run *runner) buildEval(ctx context.Context) error {
	r := &run.r
	seq := r.Eval.SeqLen
	if seq == 0 {
		seq = run.plans[0].SeqLen
	}
	if r.Eval.Tokens == 0 || len(r.Eval.Sources) == 0 && r.Data.HeldOut == 0 {
		run.log.Warn("no held-out evaluation (set data.heldout_fraction or eval.sources, and eval.tokens)")
		return nil
	}
	set, err := BuildEvalSet(ctx, r.Data.Sources, r.Eval.Sources, r.Data.HeldOut, run.vocab, seq, r.Eval.Batch, r.Eval.Tokens)
	if err != nil {
		return err
	}
	run.eval = set
	run.res.Unigram = set.Unigram
	run.log.Info("held-out set", "tokens", set.Targets, "seq_len", seq, "unigram_nats", fmt.Sprintf("%.4f", set.Unigram))
	return nil
}

// restore loads a checkpoint into the runner.
func (run *runner) restore(dir string) error {
	cfg, params, st, err := checkpoint.Load(dir)
	if err != nil {
		return err
	}
	if params.Layout.Total != run.m.Params.Layout.Total || cfg.HiddenSize != run.m.Config.HiddenSize || cfg.VocabSize != run.vocab {
		return errors.New("the checkpoint holds a different model than the recipe describes")
	}
	if st.Optimizer == nil {
		return errors.New("the checkpoint has no optimizer state")
	}
	var pos dataPosition
	if err := json.Unmarshal(st.DataPosition, &pos); err != nil {
		return fmt.Errorf("data position: %w", err)
	}
	if len(st.Recipe) == 0 {
		run.log.Warn("the checkpoint records no recipe; cannot check that the recipe is the one it was trained with")
	} else if string(st.Recipe) != string(run.recipe) {
		var old Recipe
		if err := json.Unmarshal(st.Recipe, &old); err != nil {
			return fmt.Errorf("the checkpoint's recipe: %w", err)
		}
		changes, err := checkResume(old, run.r, st.Step, run.opt.Force)
		if err != nil {
			return err
		}
		for _, c := range changes {
			run.log.Warn("recipe changed since the checkpoint", "key", c.Key, "old", c.Old, "new", c.New)
		}
	}
	copy(run.m.Params.Data, params.Data)
	if err := run.adam.SetState(st.Optimizer.Step, st.Optimizer.M, st.Optimizer.V); err != nil {
		return err
	}
	run.step, run.saved = st.Step, st.Step
	run.state, run.stateOf = pos.Stream, pos.Stage
	run.log.Info("resumed", "checkpoint", dir, "step", run.step)
	return nil
}

// setStage switches the model to a stage's configuration (RoPE, maximum
// positions), keeping the weights, gradients and optimizer state.
func (run *runner) setStage(i int) error {
	if i >= len(run.plans) {
		i = len(run.plans) - 1
	}
	cfg, err := run.r.ModelConfig(run.plans[i], run.vocab)
	if err != nil {
		return err
	}
	cfg = run.withTokens(cfg)
	if run.evalM == nil || !sameConfig(cfg, run.m.Config) {
		m, err := model.NewWithParams(cfg, run.m.Params, run.be)
		if err != nil {
			return err
		}
		m.Grads = run.m.Grads
		run.m = m
		if run.evalM, err = model.NewWithParams(cfg, run.m.Params, run.be); err != nil {
			return err
		}
	}
	return nil
}

func sameConfig(a, b model.Config) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// train runs the stages from the current step to the end.
func (run *runner) train(ctx context.Context) error {
	total := run.plans[len(run.plans)-1].End
	run.start, run.started = time.Now(), run.step
	if run.opt.onStep != nil {
		run.opt.onStep(run.step)
	}
	if run.opt.Progress != nil {
		run.bar = run.opt.Progress
		run.bar.start(total, run.step)
	}
	run.log.Info("training", "params", run.m.Params.Layout.Total, "steps", total, "from_step", run.step,
		"stages", len(run.plans), "backend", run.be.Name(), "vocab", run.vocab)
	for si := stageAt(run.plans, run.step); si < len(run.plans); si++ {
		interrupted, err := run.trainStage(ctx, si)
		if err != nil {
			return err
		}
		if interrupted {
			return run.interrupt()
		}
	}
	return run.finish(ctx)
}

// trainStage runs the remaining steps of stage si.
func (run *runner) trainStage(ctx context.Context, si int) (interrupted bool, err error) {
	r := &run.r
	p := run.plans[si]
	if err := run.setStage(si); err != nil {
		return false, err
	}
	st := run.state.Clone()
	if run.stateOf != si {
		// A new stage: source positions carry on after the previous
		// stage's last window; the mixture's counters restart.
		pack := st.Pack
		if st.Index > 0 {
			if pack, err = run.windowEnd(run.stateOf, st); err != nil {
				return false, err
			}
		}
		pack.Mix, pack.Sequences = nil, 0
		st = StreamState{Pack: pack}
	}
	stream, err := NewStream(p.Sources, run.streamOptions(p), &st)
	if err != nil {
		return false, fmt.Errorf("stage %s: %w", p.Name, err)
	}
	defer stream.Close()
	run.state, run.stateOf = stream.State(), si
	loader, err := NewLoader(stream, p.Seqs(), p.MicroBatch, 0, 1)
	if err != nil {
		return false, fmt.Errorf("stage %s: %w", p.Name, err)
	}
	sched, err := p.schedule()
	if err != nil {
		return false, fmt.Errorf("stage %s: %w", p.Name, err)
	}
	if run.step == p.Start {
		run.log.Info("stage", "name", p.Name, "steps", p.End-p.Start, "seq_len", p.SeqLen, "batch_tokens", p.BatchTokens,
			"micro_batches", p.Accum(), "rope_theta", run.m.Config.RopeTheta, "schedule", p.Schedule, "lr", p.LR)
	}
	pf := Prefetch(loader, run.step, p.End, 2)
	defer pf.Close()
	flopsPerToken := model.FLOPsPerToken(run.m.Config, p.SeqLen)
	for run.step < p.End {
		if ctx.Err() != nil || run.opt.stopAt > 0 && run.step >= run.opt.stopAt {
			return true, nil
		}
		sb, err := pf.Next()
		if err != nil {
			return false, fmt.Errorf("stage %s, step %d: data: %w", p.Name, run.step+1, err)
		}
		rec, err := run.trainStep(sb, sched.LR(run.step-p.Start))
		if err != nil {
			return false, err
		}
		run.state = sb.State
		pf.Release(sb)
		run.step++
		if run.opt.onStep != nil {
			run.opt.onStep(run.step)
		}
		rec.Step, rec.Stage, rec.Tokens = run.step, p.Name, tokensAt(run.plans, run.step)
		el := time.Since(run.start).Seconds()
		rec.ElapsedS = el
		rec.TokensPerS = float64(rec.Tokens-tokensAt(run.plans, run.started)) / el
		rec.GFLOPs = rec.TokensPerS * flopsPerToken / 1e9
		if err := run.metrics.write(rec); err != nil {
			return false, err
		}
		run.res.Loss = rec.Loss
		run.report(rec)
		if rec.Skipped {
			if run.bad >= r.Train.MaxBadSteps {
				last := "none was written"
				if run.saved >= 0 {
					last = filepath.Join(r.Out, CheckpointsDir, checkpoint.StepDirName(run.saved))
				}
				return false, fmt.Errorf("stopping: %d consecutive steps (up to step %d) had a non-finite loss or gradient norm; the last good checkpoint is %s. Lower optim.lr, raise optim.warmup_steps or set optim.clip_grad_norm, then resume with -resume", run.bad, run.step, last)
			}
			continue
		}
		if r.Eval.Every > 0 && run.step%r.Eval.Every == 0 && run.step < run.plans[len(run.plans)-1].End {
			if err := run.evaluate(ctx, "eval"); err != nil {
				return false, err
			}
		}
		if r.Checkpoint.Every > 0 && run.step%r.Checkpoint.Every == 0 || run.step == p.End {
			if err := run.save(); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

func (run *runner) streamOptions(p StagePlan) StreamOptions {
	return StreamOptions{SeqLen: p.SeqLen, Seed: run.r.Seed, Vocab: run.vocab, HeldOut: run.r.Data.HeldOut, Window: run.r.Data.Window, GroupChunks: run.r.Data.GroupChunks, MaxDocTokens: p.MaxDocTok}
}

// windowEnd is where stage si's stream at st continues after its window.
func (run *runner) windowEnd(si int, st StreamState) (PackState, error) {
	p := run.plans[si]
	s, err := NewStream(p.Sources, run.streamOptions(p), &st)
	if err != nil {
		return PackState{}, fmt.Errorf("stage %s: %w", p.Name, err)
	}
	defer s.Close()
	return s.EndWindow()
}

// trainStep runs forward/backward over the micro-batches of one step and
// updates the weights unless the loss or gradient is not finite.
func (run *runner) trainStep(sb *StepBatch, lr float64) (Record, error) {
	m := run.m
	m.Grads.Zero()
	var loss float64
	for i := range sb.Micro {
		l, err := m.ForwardBackward(&sb.Micro[i])
		if err != nil {
			return Record{}, fmt.Errorf("step %d: %w", run.step+1, err)
		}
		loss += l
	}
	if run.opt.corrupt != nil {
		run.opt.corrupt(run.step+1, m.Grads)
	}
	var gn float64
	if run.r.Optim.ClipGradNorm > 0 {
		gn = optim.ClipGradNorm(m.Grads, run.r.Optim.ClipGradNorm)
	} else {
		gn = optim.GradNorm(m.Grads)
	}
	rec := Record{Kind: "train", Loss: loss, LR: lr, GradNorm: gn}
	if !finite(loss) || !finite(gn) {
		run.bad++
		rec.Skipped = true
		run.log.Warn("non-finite loss or gradient norm; update skipped", "step", run.step+1, "loss", loss, "grad_norm", gn, "in_a_row", run.bad)
		return rec, nil
	}
	run.bad = 0
	if err := run.adam.Update(m.Params, m.Grads, lr); err != nil {
		return Record{}, err
	}
	return rec, nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// report shows a step on the progress bar or, every log_every steps, in
// the log.
func (run *runner) report(rec Record) {
	if run.bar != nil {
		run.bar.update(rec)
		return
	}
	if rec.Step%run.r.Train.LogEvery == 0 || rec.Step == run.started+1 {
		run.log.Info("step", "step", rec.Step, "stage", rec.Stage, "loss", fmt.Sprintf("%.4f", rec.Loss),
			"lr", fmt.Sprintf("%.3g", rec.LR), "grad_norm", fmt.Sprintf("%.3f", rec.GradNorm),
			"tokens_per_s", fmt.Sprintf("%.0f", rec.TokensPerS), "gflops", fmt.Sprintf("%.1f", rec.GFLOPs))
	}
}

// evaluate scores the held-out set with the current weights, logs it, and
// writes samples.
func (run *runner) evaluate(ctx context.Context, kind string) error {
	if run.eval == nil {
		return nil
	}
	loss, err := run.eval.Loss(ctx, run.evalM)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("eval at step %d: %w", run.step, err)
	}
	p := run.plans[min(stageAt(run.plans, max(run.step-1, 0)), len(run.plans)-1)]
	pt := EvalPoint{Step: run.step, Tokens: tokensAt(run.plans, run.step), Loss: loss, PPL: math.Exp(loss)}
	run.res.Evals = append(run.res.Evals, pt)
	rec := Record{Kind: kind, Step: run.step, Stage: p.Name, Tokens: pt.Tokens, EvalLoss: loss, EvalPPL: pt.PPL, Unigram: run.eval.Unigram}
	if err := run.metrics.write(rec); err != nil {
		return err
	}
	run.log.Info("eval", "step", run.step, "tokens", pt.Tokens, "loss", fmt.Sprintf("%.4f", loss),
		"ppl", fmt.Sprintf("%.2f", pt.PPL), "unigram", fmt.Sprintf("%.4f", run.eval.Unigram))
	if run.bar != nil {
		run.bar.eval(loss)
	}
	samples, err := generate(ctx, run.evalM, run.tok, run.r.Eval.Prompts, run.r.Eval, run.r.Seed, run.step)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("samples at step %d: %w", run.step, err)
	}
	if len(samples) > 0 {
		run.res.Samples = samples
		f, err := os.OpenFile(filepath.Join(run.r.Out, SamplesFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(f)
		for _, s := range samples {
			enc.Encode(s)
			run.log.Debug("sample", "step", run.step, "prompt", s.Prompt, "text", s.Text)
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// save writes a checkpoint of the current step and prunes old ones. It is
// skipped while the run is in a streak of non-finite steps, so the newest
// checkpoint stays a good one.
func (run *runner) save() error {
	if run.bad > 0 || run.saved == run.step {
		return nil
	}
	pos, err := json.Marshal(dataPosition{Stage: run.stateOf, Stream: run.state})
	if err != nil {
		return err
	}
	st := &checkpoint.TrainingState{
		Step:         run.step,
		Optimizer:    &checkpoint.OptimizerState{Name: "adamw", Step: run.adam.Step, M: run.adam.M, V: run.adam.V},
		DataPosition: pos,
		Recipe:       run.recipe,
		Metrics:      checkpoint.Metrics{"loss": run.res.Loss, "tokens": float64(tokensAt(run.plans, run.step))},
	}
	root := filepath.Join(run.r.Out, CheckpointsDir)
	dir, err := checkpoint.Save(root, run.m.Config, run.m.Params, st, checkpoint.SaveOptions{Extra: run.extraFiles()})
	if err != nil {
		return fmt.Errorf("checkpoint at step %d: %w", run.step, err)
	}
	if err := checkpoint.Prune(root, run.r.Checkpoint.Keep); err != nil {
		return err
	}
	if err := run.metrics.sync(); err != nil {
		return err
	}
	run.saved = run.step
	run.res.Checkpoint = dir
	run.log.Debug("checkpoint", "dir", dir)
	return nil
}

// extraFiles are the tokenizer files copied into every model directory.
func (run *runner) extraFiles() map[string][]byte {
	if run.tok == nil {
		return nil
	}
	tj, cj, err := run.tok.MarshalHF()
	if err != nil {
		return nil
	}
	return map[string][]byte{tokenizer.TokenizerFile: tj, tokenizer.ConfigFile: cj}
}

// interrupt saves a checkpoint after Ctrl-C.
func (run *runner) interrupt() error {
	run.res.Interrupted = true
	run.res.Steps, run.res.Tokens = run.step, tokensAt(run.plans, run.step)
	if err := run.save(); err != nil {
		return err
	}
	run.log.Warn("interrupted; checkpoint saved — continue with -resume", "step", run.step, "checkpoint", run.res.Checkpoint)
	return nil
}

// finish evaluates, averages the last checkpoints into final/, plots the
// losses and records samples.
func (run *runner) finish(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	if err := run.save(); err != nil {
		return err
	}
	run.res.Steps, run.res.Tokens = run.step, tokensAt(run.plans, run.step)
	if err := run.evaluate(ctx, "eval"); err != nil {
		return err
	}
	final := filepath.Join(run.r.Out, FinalDir)
	n, err := run.average(final)
	if err != nil {
		return err
	}
	run.res.Final = final
	if run.eval != nil {
		cfg, params, err := checkpoint.LoadModel(final)
		if err != nil {
			return err
		}
		fm, err := model.NewWithParams(cfg, params, run.be)
		if err != nil {
			return err
		}
		loss, err := run.eval.Loss(ctx, fm)
		if err != nil {
			return err
		}
		run.res.FinalEval = loss
		p := run.plans[len(run.plans)-1]
		if err := run.metrics.write(Record{Kind: "final_eval", Step: run.step, Stage: p.Name, Tokens: run.res.Tokens,
			EvalLoss: loss, EvalPPL: math.Exp(loss), Unigram: run.eval.Unigram}); err != nil {
			return err
		}
		run.log.Info("final model", "dir", final, "averaged_checkpoints", n, "eval_loss", fmt.Sprintf("%.4f", loss))
	}
	if err := run.metrics.sync(); err != nil {
		return err
	}
	recs, err := ReadMetrics(filepath.Join(run.r.Out, MetricsFile))
	if err != nil {
		return err
	}
	png := filepath.Join(run.r.Out, "loss.png")
	if err := PlotLoss(recs, png, filepath.Join(run.r.Out, "loss.svg")); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	run.res.Plot = png
	return nil
}
