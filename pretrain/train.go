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
	"strings"

	"github.com/zeebo/xxh3"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/data/tokens"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/optim"
	"github.com/herdml/herd/recipes"
	"github.com/herdml/herd/train"
)

// Files and directories of a run directory.
const (
	CheckpointsDir = train.CheckpointsDir
	FinalDir       = "final"
	RecipeFile     = train.RecipeFile
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
	Progress *train.Progress
	// Backend runs the model (default: kernels.NewCPU(recipe.workers)).
	Backend kernels.Backend
	// Force resumes a checkpoint even when the recipe changed in ways that
	// alter the run (the changes are logged).
	Force bool
	// AllowTokenizerMismatch trains with a tokenizer whose content differs
	// from the one the token shards were made with.
	AllowTokenizerMismatch bool
	// Comm makes the run data-parallel over its ranks (see train's
	// data-parallel runs); nil opens the job's communicator from the
	// environment (cluster.Open: one process unless started by mpirun,
	// srun or an MPIJob in a -tags mpi build) and closes it at the end.
	Comm cluster.Comm

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
	Steps      int     // global steps completed
	Tokens     int64   // training tokens seen
	Loss       float64 // last training loss
	Unigram    float64 // unigram entropy of the held-out targets (nats/token)
	EvalTokens int     // held-out tokens each evaluation scores
	Evals      []EvalPoint
	// FinalEval is the held-out loss of final/, the model kept (0 without
	// held-out data).
	FinalEval float64
	// AverageEval and LastEval are the held-out losses of the average of
	// the annealing stage's checkpoints (0 when none was made) and of the
	// last checkpoint; Kept is which became final/ ("average" or "last")
	// and Averaged the steps of the averaged checkpoints.
	AverageEval, LastEval float64
	Kept                  string
	Averaged              []int
	Checkpoint            string // newest checkpoint directory
	Final                 string // final/ directory ("" when interrupted)
	Interrupted           bool
	// Samples are the continuations of the recipe's prompts by final/
	// (by the last evaluation's weights while the run is going).
	Samples []Sample
	Plot    string // loss.png path
	Report  string // report.html path
	// Rank is this process's rank in a data-parallel job (0 in one
	// process): rank 0 wrote the run directory and its Result is the
	// run's summary to print; the others' is partial.
	Rank int
}

// dataPosition is the checkpoint's data position.
type dataPosition struct {
	Stage  int               `json:"stage"`
	Stream packedStreamState `json:"stream"`
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

// runner is one Run's state: the pretraining trainer the engine drives.
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
	e       *train.Engine
	state   packedStreamState // stream position after the last step
	stateOf int               // stage the state belongs to
	stage   int               // stage being trained
	pf      *batchPrefetcher  // its batches
	eval    *EvalSet
	comm    cluster.Comm
	red     *cluster.Reducer // eval's reductions
	sum     cluster.LeafSum  // the micro-batches' gradients
	res     Result
}

// Run trains the recipe's model: every stage, with evaluation, checkpoints,
// Polyak averaging into final/, a loss plot and samples. An interrupted
// context saves a checkpoint and returns a Result with Interrupted set.
func Run(ctx context.Context, r Recipe, opt RunOptions) (*Result, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	if opt.Progress != nil {
		defer opt.Progress.Finish()
	}
	return cluster.With(opt.Comm, func(comm cluster.Comm) (*Result, error) {
		run := &runner{r: r, opt: opt, log: train.RankLogger(opt.Logger, comm), plans: r.Plan(), comm: comm, red: cluster.NewReducer(comm, 0)}
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
	if note := r.WarmupClamped(); note != "" {
		run.log.Info(note)
	}
	if err := run.setup(ctx); err != nil {
		return nil, err
	}
	run.log.Info("training", "params", run.m.Params.Layout.Total, "steps", run.plans[len(run.plans)-1].End, "from_step", run.e.Step(),
		"stages", len(run.plans), "backend", run.be.Name(), "vocab", run.vocab)
	er, err := run.e.Run(ctx)
	if er != nil {
		run.res.Steps, run.res.Tokens, run.res.Loss = er.Steps, er.Tokens, er.Loss
		run.res.Checkpoint, run.res.Interrupted = er.Checkpoint, er.Interrupted
	}
	if err != nil {
		return &run.res, err
	}
	if run.res.Interrupted {
		return &run.res, nil
	}
	if err := run.finish(ctx); err != nil {
		return &run.res, err
	}
	return &run.res, nil
}

// setup checks the data and the tokenizer, builds the model, and hands the
// run directory to the engine (which checks, locks and, when resuming,
// restores it). Nothing in the run directory changes until every check has
// passed.
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
	recipe, err := json.Marshal(r)
	if err != nil {
		return err
	}
	text, err := recipes.Marshal(r)
	if err != nil {
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
	run.m = m
	stages, err := run.stages()
	if err != nil {
		return err
	}
	opt := train.Options{
		Dir: r.Out, Resume: run.opt.Resume,
		Params: m.Params, Grads: m.Grads, Config: func() model.Config { return run.m.Config }, Backend: run.be,
		AdamW:        optim.AdamWConfig{Beta1: r.Optim.Beta1, Beta2: r.Optim.Beta2, Eps: r.Optim.Eps, WeightDecay: r.Optim.WeightDecay},
		ClipGradNorm: r.Optim.ClipGradNorm,
		Stages:       stages, MaxBadSteps: r.Train.MaxBadSteps, LogEvery: r.Train.LogEvery, EvalEvery: r.Eval.Every,
		CheckpointEvery: r.Checkpoint.Every, Keep: r.Checkpoint.Keep,
		Recipe: recipe, RecipeText: text, CheckRecipe: run.checkRecipe, Extra: run.extraFiles(),
		TokensAt: func(step int) int64 { return tokensAt(run.plans, step) },
		Eval:     run.evaluate, Samples: run.samples, AfterEval: run.afterEval,
		PeakFLOPs: r.Train.PeakGFLOPs * 1e9,
		OnStep:    run.opt.onStep, StopAt: run.opt.stopAt,
		Logger: run.log, Progress: run.opt.Progress, Comm: run.comm,
	}
	if run.opt.corrupt != nil {
		opt.ReduceGrads = func(step int, g *model.Params) error { run.opt.corrupt(step, g); return nil }
	}
	if run.e, err = train.New(opt, run); err != nil {
		return err
	}
	if err := run.checkRanks(stageAt(run.plans, run.e.Step())); err != nil {
		return err
	}
	if err := run.setStage(stageAt(run.plans, run.e.Step())); err != nil {
		return err
	}
	// Every check has passed: from here on the run directory is written.
	if err := run.e.Claim(); err != nil {
		return err
	}
	if !run.e.Resumed() && run.comm.Rank() == 0 {
		if err := atomicfile.WriteFile(filepath.Join(r.Out, SamplesFile), nil, 0o644); err != nil {
			return err
		}
	}
	return run.buildEval(ctx)
}

// stages are the recipe's stages as the engine runs them.
func (run *runner) stages() ([]train.Stage, error) {
	out := make([]train.Stage, len(run.plans))
	for i := range run.plans {
		p := &run.plans[i]
		sched, err := p.schedule()
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", p.Name, err)
		}
		cfg, err := run.r.ModelConfig(*p, run.vocab)
		if err != nil {
			return nil, err
		}
		out[i] = train.Stage{Name: p.Name, End: p.End, Schedule: sched, FLOPsPerToken: model.FLOPsPerToken(cfg, p.SeqLen)}
	}
	// The annealing stage's checkpoints are spread evenly over it, so
	// that average.last of them are there to average.
	if k, ai := run.r.Average.Last, averageStage(run.plans); k >= 2 && run.plans[ai].Kind == "anneal" {
		every := max(1, (run.plans[ai].End-run.plans[ai].Start)/k)
		if ce := run.r.Checkpoint.Every; ce > 0 {
			every = min(every, ce)
		}
		out[ai].CheckpointEvery = every
	}
	return out, nil
}

// checkRecipe decides whether the recipe may continue a checkpoint at
// step written with recipe old (see checkResume), and logs the changes.
func (run *runner) checkRecipe(old json.RawMessage, step int) error {
	var prev Recipe
	if err := json.Unmarshal(old, &prev); err != nil {
		return fmt.Errorf("the checkpoint's recipe: %w", err)
	}
	changes, err := checkResume(prev, run.r, step, run.opt.Force)
	if err != nil {
		return err
	}
	for _, c := range changes {
		run.log.Warn("recipe changed since the checkpoint", "key", c.Key, "old", c.Old, "new", c.New)
	}
	return nil
}

// checkData resolves every source of the recipe (training stages and
// evaluation) through its manifests, so that missing, stale or unlisted
// shards fail before training, and checks that all the sources were
// tokenized by the same tokenizer. It returns the first source's manifest.
func (run *runner) checkData() (*tokens.Manifest, error) {
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
	var first *tokens.Manifest
	var firstAt string
	for _, u := range uses {
		shards, err := tokens.Resolve(u.src.Paths)
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
func (run *runner) loadTokenizer(man *tokens.Manifest) error {
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
	run.res.Unigram, run.res.EvalTokens = set.Unigram, set.Targets
	run.log.Info("held-out set", "tokens", set.Targets, "seq_len", seq, "unigram_nats", fmt.Sprintf("%.4f", set.Unigram))
	if note := run.evalShortfall(); note != "" {
		run.log.Warn(note)
	}
	return nil
}

// evalShortfall says so when the held-out data gave fewer tokens than
// eval.tokens asks for ("" when it did not).
func (run *runner) evalShortfall() string {
	if run.eval == nil || run.eval.Targets >= run.r.Eval.Tokens {
		return ""
	}
	where := fmt.Sprintf("the data.heldout_fraction (%g) of the training sources", run.r.Data.HeldOut)
	fix := "raise data.heldout_fraction, or set eval.sources"
	if len(run.r.Eval.Sources) > 0 {
		where, fix = "eval.sources", "add held-out documents to eval.sources"
	}
	return fmt.Sprintf("evaluation scores %d held-out tokens, fewer than eval.tokens = %d: %s hold no more (each document gives at most one sequence); %s, or lower eval.tokens",
		run.eval.Targets, run.r.Eval.Tokens, where, fix)
}

// Position is the data position after the last step (train.Trainer).
func (run *runner) Position() (json.RawMessage, error) {
	return json.Marshal(dataPosition{Stage: run.stateOf, Stream: run.state})
}

// Restore sets the data position of a checkpoint (train.Trainer).
func (run *runner) Restore(pos json.RawMessage) error {
	var p dataPosition
	if err := json.Unmarshal(pos, &p); err != nil {
		return err
	}
	run.state, run.stateOf = p.Stream, p.Stage
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

// StartStage prepares stage si from global step step: the stage's model
// configuration, its data stream (continuing the sources' positions after
// the previous stage's window) and a prefetching loader
// (train.StageStarter).
func (run *runner) StartStage(ctx context.Context, si, step int) (stop func(), err error) {
	p := run.plans[si]
	if err := run.setStage(si); err != nil {
		return nil, err
	}
	st := run.state.Clone()
	if run.stateOf != si {
		// A new stage: source positions carry on after the previous
		// stage's last window; the mixture's counters restart.
		pack := st.Pack
		if st.Index > 0 {
			if pack, err = run.windowEnd(run.stateOf, st); err != nil {
				return nil, err
			}
		}
		pack.Mix, pack.Sequences = nil, 0
		st = packedStreamState{Pack: pack}
	}
	stream, err := newPackedStream(p.Sources, run.streamOptions(p), &st)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", p.Name, err)
	}
	run.state, run.stateOf = stream.State(), si
	loader, err := newBatchLoader(stream, p.Seqs(), p.MicroBatch, run.comm.Rank(), run.comm.Size())
	if err != nil {
		stream.Close()
		return nil, fmt.Errorf("stage %s: %w", p.Name, err)
	}
	if step == p.Start {
		run.log.Info("stage", "name", p.Name, "steps", p.End-p.Start, "seq_len", p.SeqLen, "batch_tokens", p.BatchTokens,
			"micro_batches", p.Accum(), "rope_theta", run.m.Config.RopeTheta, "schedule", p.Schedule, "lr", p.LR)
	}
	pf := prefetch(loader, step, p.End, 2)
	run.pf, run.stage = pf, si
	return func() {
		pf.Close()
		stream.Close()
	}, nil
}

// Step runs forward/backward over the micro-batches of the step after
// step steps, into the model's gradients (train.Trainer).
func (run *runner) Step(step int) (train.StepResult, error) {
	p := &run.plans[run.stage]
	sb, err := run.pf.Next()
	if err != nil {
		return train.StepResult{}, fmt.Errorf("stage %s, step %d: data: %w", p.Name, step+1, err)
	}
	// Each micro-batch's gradient is computed alone and summed in the
	// fixed tree (cluster.LeafSum), so one process and several ranks
	// holding a power-of-two number of micro-batches each get the same
	// bits.
	var loss float64
	g := run.m.Grads.Data
	for i := range sb.Micro {
		l, err := run.m.ForwardBackward(&sb.Micro[i])
		if err != nil {
			return train.StepResult{}, fmt.Errorf("step %d: %w", step+1, err)
		}
		if i < len(sb.Micro)-1 {
			run.sum.Add(g, l)
		} else {
			loss = run.sum.Finish(g, l)
		}
	}
	run.state = sb.State
	run.pf.Release(sb)
	return train.StepResult{Loss: loss, Tokens: int64(p.BatchTokens)}, nil
}

func (run *runner) streamOptions(p StagePlan) packedStreamOptions {
	return packedStreamOptions{SeqLen: p.SeqLen, Seed: run.r.Seed, Vocab: run.vocab, HeldOut: run.r.Data.HeldOut, Window: run.r.Data.Window, GroupChunks: run.r.Data.GroupChunks, MaxDocTokens: p.MaxDocTok}
}

// windowEnd is where stage si's stream at st continues after its window.
func (run *runner) windowEnd(si int, st packedStreamState) (packState, error) {
	p := run.plans[si]
	s, err := newPackedStream(p.Sources, run.streamOptions(p), &st)
	if err != nil {
		return packState{}, fmt.Errorf("stage %s: %w", p.Name, err)
	}
	defer s.Close()
	return s.EndWindow()
}

// evaluate scores the held-out set with the current weights and logs it
// (the engine's Eval hook).
func (run *runner) evaluate(ctx context.Context, at train.Point) (checkpoint.Metrics, error) {
	if run.eval == nil {
		return nil, nil
	}
	loss, err := run.eval.LossOver(ctx, run.evalM, run.red)
	if err != nil {
		return nil, err
	}
	pt := EvalPoint{Step: at.Step, Tokens: at.Tokens, Loss: loss, PPL: math.Exp(loss)}
	run.res.Evals = append(run.res.Evals, pt)
	run.log.Info("eval", "step", at.Step, "tokens", pt.Tokens, "loss", fmt.Sprintf("%.4f", loss),
		"ppl", fmt.Sprintf("%.2f", pt.PPL), "unigram", fmt.Sprintf("%.4f", run.eval.Unigram))
	vals := Record{Kind: "eval", EvalLoss: loss, EvalPPL: pt.PPL, Unigram: run.eval.Unigram}.generic().Values
	vals["eval_tokens"] = float64(run.eval.Targets)
	return vals, nil
}

// samples continues the recipe's prompts and appends them to samples.jsonl
// (the engine's Samples hook).
func (run *runner) samples(ctx context.Context, at train.Point) error {
	if run.eval == nil {
		return nil
	}
	samples, err := generate(ctx, run.evalM, run.tok, run.r.Eval.Prompts, run.r.Eval, run.r.Seed, at.Step)
	if err != nil || len(samples) == 0 {
		return err
	}
	run.res.Samples = samples
	return run.appendSamples(samples)
}

// appendSamples appends samples to samples.jsonl.
func (run *runner) appendSamples(samples []Sample) error {
	f, err := os.OpenFile(filepath.Join(run.r.Out, SamplesFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, s := range samples {
		if err := enc.Encode(s); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", SamplesFile, err)
		}
		run.log.Debug("sample", "step", s.Step, "model", s.Model, "prompt", s.Prompt, "text", s.Text)
	}
	return f.Close()
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

// card is final/'s model card: the run's stages, data and held-out losses.
func (run *runner) card(cfg model.Config) *checkpoint.ModelCard {
	res := &run.res
	var stages []string
	for _, p := range run.plans {
		stages = append(stages, fmt.Sprintf("%s (%d steps, %d-token sequences, RoPE θ %g)", p.Name, p.End-p.Start, p.SeqLen, p.RopeTheta))
	}
	c := &checkpoint.ModelCard{
		Summary: fmt.Sprintf("A %d-parameter Llama-architecture model pretrained from scratch by herd: %d steps, %d tokens, stages %s.",
			run.m.Params.Layout.Total, res.Steps, res.Tokens, strings.Join(stages, ", ")),
		Recipe: filepath.Join(run.r.Out, train.RecipeFile),
	}
	seen := map[string]bool{}
	for _, p := range run.plans {
		for _, s := range p.Sources {
			for _, path := range s.Paths {
				if !seen[path] {
					seen[path] = true
					c.Data = append(c.Data, fmt.Sprintf("%s: %s", s.Name, path))
				}
			}
		}
	}
	if run.eval != nil {
		c.Eval = map[string]float64{"eval_loss": res.FinalEval, "eval_loss_last_checkpoint": res.LastEval}
		if res.AverageEval != 0 {
			c.Eval["eval_loss_average"] = res.AverageEval
		}
		c.EvalNote = fmt.Sprintf("held-out next-token loss (nats per token) over %d positions of the data's held-out documents; final/ is the %s", run.eval.Targets, res.Kept)
	}
	return c
}

// finish makes final/: it averages the annealing stage's checkpoints,
// evaluates the average and the last checkpoint, keeps the one
// average.keep asks for (by default the better), writes samples of
// final/, the plots and report.html (after the engine saved and evaluated
// the last step).
func (run *runner) finish(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	final := filepath.Join(run.r.Out, FinalDir)
	cfg := run.m.Config
	// Rank 0 wrote the checkpoints: every rank reads them once it is done.
	if err := run.comm.Barrier(); err != nil {
		return fmt.Errorf("waiting for rank 0's last checkpoint: %w", err)
	}
	avg, err := run.average()
	if err != nil {
		return err
	}
	res := &run.res
	// Every rank scores its share of the held-out set.
	if run.eval != nil {
		if n := len(res.Evals); n > 0 && res.Evals[n-1].Step == res.Steps {
			res.LastEval = res.Evals[n-1].Loss
		} else if res.LastEval, err = run.eval.LossOver(ctx, run.evalM, run.red); err != nil {
			return err
		}
		if avg != nil {
			am, err := model.NewWithParams(cfg, avg, run.be)
			if err != nil {
				return err
			}
			if res.AverageEval, err = run.eval.LossOver(ctx, am, run.red); err != nil {
				return err
			}
		}
	}
	keep := run.r.Average.Keep
	switch {
	case avg == nil:
		res.Kept = KeepLast
	case keep == KeepBetter && run.eval == nil:
		res.Kept = KeepAverage
		run.log.Warn("average.keep = better, but there is no held-out set to compare on: keeping the average")
	case keep == KeepBetter:
		res.Kept = KeepLast
		if res.AverageEval <= res.LastEval {
			res.Kept = KeepAverage
		}
	default:
		res.Kept = keep
	}
	params := run.m.Params
	res.FinalEval = res.LastEval
	if res.Kept == KeepAverage {
		params, res.FinalEval = avg, res.AverageEval
	}
	res.Final = final
	if run.comm.Rank() != 0 {
		return nil
	}
	if err := checkpoint.SaveModel(final, cfg, params, checkpoint.SaveOptions{Extra: run.extraFiles(), Card: run.card(cfg)}); err != nil {
		return err
	}
	args := []any{"dir", final, "kept", res.Kept, "averaged_steps", fmt.Sprint(res.Averaged)}
	if run.eval != nil {
		args = append(args, "eval_loss_last", fmt.Sprintf("%.4f", res.LastEval))
		if avg != nil {
			args = append(args, "eval_loss_average", fmt.Sprintf("%.4f", res.AverageEval))
		}
		p := run.plans[len(run.plans)-1]
		rec := Record{Kind: "final_eval", Step: res.Steps, Stage: p.Name, Tokens: res.Tokens,
			EvalLoss: res.FinalEval, EvalPPL: math.Exp(res.FinalEval), Unigram: run.eval.Unigram}.generic()
		rec.Values["eval_loss_last"] = res.LastEval
		rec.Values["averaged_checkpoints"] = float64(len(res.Averaged))
		if avg != nil {
			rec.Values["eval_loss_average"] = res.AverageEval
		}
		rec.Values["kept_average"] = 0
		if res.Kept == KeepAverage {
			rec.Values["kept_average"] = 1
		}
		if err := run.e.WriteRecord(rec); err != nil {
			return err
		}
	}
	run.log.Info("final model", args...)
	if err := run.finalSamples(ctx, cfg, params); err != nil {
		return err
	}
	if err := run.e.SyncMetrics(); err != nil {
		return err
	}
	return run.afterEval(ctx, train.Point{Step: res.Steps, Tokens: res.Tokens})
}

// average returns the mean of the newest average.last checkpoints of the
// averaged stage (see averageStage), or nil when there are fewer than two.
func (run *runner) average() (*model.Params, error) {
	if run.r.Average.Last < 2 {
		return nil, nil
	}
	all, err := checkpoint.List(filepath.Join(run.r.Out, CheckpointsDir))
	if err != nil {
		return nil, err
	}
	p := run.plans[averageStage(run.plans)]
	var dirs []string
	var steps []int
	for _, c := range all {
		if c.Step > p.Start && c.Step <= p.End {
			dirs, steps = append(dirs, c.Dir), append(steps, c.Step)
		}
	}
	if k := run.r.Average.Last; len(dirs) > k {
		dirs, steps = dirs[len(dirs)-k:], steps[len(steps)-k:]
	}
	if len(dirs) < 2 {
		run.log.Warn("fewer than two checkpoints of the stage to average: final/ is the last checkpoint", "stage", p.Name, "checkpoints", fmt.Sprint(steps))
		return nil, nil
	}
	_, params, err := checkpoint.Average(dirs)
	if err != nil {
		return nil, err
	}
	run.res.Averaged = steps
	run.log.Info("averaged checkpoints", "stage", p.Name, "steps", fmt.Sprint(steps))
	return params, nil
}

// finalSamples continues the recipe's prompts with final/'s weights and
// appends them to samples.jsonl (model "final").
func (run *runner) finalSamples(ctx context.Context, cfg model.Config, params *model.Params) error {
	if run.eval == nil || run.tok == nil || len(run.r.Eval.Prompts) == 0 {
		return nil
	}
	fm, err := model.NewWithParams(cfg, params, run.be)
	if err != nil {
		return err
	}
	samples, err := generate(ctx, fm, run.tok, run.r.Eval.Prompts, run.r.Eval, run.r.Seed, run.res.Steps)
	if err != nil {
		return err
	}
	for i := range samples {
		samples[i].Model = "final"
	}
	run.res.Samples = samples
	return run.appendSamples(samples)
}

// afterEval redraws the plots and report.html from metrics.jsonl (the
// engine's AfterEval hook, and the end of the run).
func (run *runner) afterEval(_ context.Context, _ train.Point) error {
	files, err := train.WritePlots(run.r.Out)
	if err != nil {
		return err
	}
	run.res.Plot = files[0]
	return run.writeReport()
}
