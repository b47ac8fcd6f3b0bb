// Package posttrain trains a pretrained Llama model after pretraining, the
// way Llama 3 made its chat models: supervised fine-tuning (SFT) on chat
// data with the loss on the assistant's tokens, a reward model (Bradley–
// Terry on ranked preference pairs, read at the last token), and direct
// preference optimisation (DPO, with the paper's β = 0.1, formatting tokens
// masked and an NLL term on the chosen response). Each is a recipe kind,
// run on the shared training engine (package train): checkpoints, exact
// resume, metrics.jsonl, plots and Ctrl-C handling are the engine's.
package posttrain

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/herdml/herd/data/chatdata"
	"github.com/herdml/herd/optim"
	"github.com/herdml/herd/recipes"
	"github.com/herdml/herd/tasks"
)

// Recipe kinds.
const (
	KindSFT = "sft"
	KindRM  = "rm"
	KindDPO = "dpo"
	KindRS  = "rs" // rejection sampling: no training, new SFT and preference data
)

// DPO loss variants.
const (
	LossSigmoid = "sigmoid" // −log σ(β·u), the DPO paper's and Llama 3's
	LossIPO     = "ipo"     // (u − 1/(2β))², IPO on the summed log-ratios
	LossHinge   = "hinge"   // max(0, 1 − β·u), SLiC's hinge
)

// Recipe is one post-training run. Every field has a default (Default); a
// recipe file lists only what it changes, and `key=value` overrides change
// single fields (`optim.lr=1e-5 train.steps=200`).
type Recipe struct {
	// Kind is the stage: "sft" (supervised fine-tuning), "rm" (reward
	// model), "dpo" (direct preference optimisation) or "rs" (rejection
	// sampling: new SFT rows and preference pairs from the model's own
	// samples, see rs) or "rounds" (iterative rounds of sft, rm, rs and
	// dpo, see rounds).
	Kind string `yaml:"kind"`
	// Out is the run directory: checkpoints/, final/, metrics.jsonl,
	// loss.png/svg, the resolved recipe.yaml (and for DPO the stored
	// reference log-probabilities, ref_logps.*).
	Out string `yaml:"out"`
	// Model is the Hugging Face model directory training starts from (a
	// pretraining run's final/, or a previous stage's). For DPO it is also
	// the frozen reference model; for a reward model its trunk is kept
	// and a fresh scalar head score.weight is added (unless it already is
	// a reward model).
	Model string `yaml:"model"`
	// Tokenizer is the directory with tokenizer.json (empty: the model
	// directory's own tokenizer files).
	Tokenizer string `yaml:"tokenizer"`
	// Seed drives the data order and a reward head's initialisation.
	Seed uint64 `yaml:"seed"`
	// Workers is the number of compute goroutines (0 = all cores).
	Workers int `yaml:"workers"`

	Data       Data           `yaml:"data"`
	Train      Train          `yaml:"train"`
	Optim      Optim          `yaml:"optim"`
	DPO        DPO            `yaml:"dpo"`
	RS         RS             `yaml:"rs"`
	Rounds     Rounds         `yaml:"rounds"`
	Eval       Eval           `yaml:"eval"`
	Checkpoint CheckpointSpec `yaml:"checkpoint"`
	Average    Average        `yaml:"average"`
}

// Data are the training rows and how they become examples.
type Data struct {
	// Paths are JSONL (.jsonl, .gz, .zst) or Parquet files, directories or
	// globs. SFT reads {"messages"} or {"prompt","completion"} rows; rm
	// and dpo read {"prompt","chosen","rejected"[,"edited"]} rows.
	Paths []string `yaml:"paths"`
	// HeldOut is the fraction of rows kept out of training for the
	// held-out metrics, chosen by a hash of each row (default 0.05; 0 =
	// no held-out evaluation).
	HeldOut float64 `yaml:"heldout_fraction"`
	// Shuffle is the number of examples shuffled together (default 1024).
	Shuffle int `yaml:"shuffle"`
	// Epochs is the number of passes over the data (0 = as many as
	// train.steps needs).
	Epochs int `yaml:"epochs"`
	// Truncation is "drop" (default: longer examples are dropped and
	// counted) or "truncate_left" (the prompt is cut from the left).
	Truncation string `yaml:"truncation"`
	// LossOn is, for SFT, "assistant" (default: the loss on the
	// assistant's tokens only) or "all" (every token).
	LossOn string `yaml:"loss_on"`
	// Pack puts several SFT examples in one sequence, each its own
	// document (positions restart, no attention across them); false pads
	// each example to the sequence length (default true).
	Pack bool `yaml:"pack"`
	// UseEdited, for a reward model, ranks edited > chosen > rejected when
	// a row has an edited response (all three ordered pairs from one
	// forward pass); rows without one add an empty third sequence.
	UseEdited bool `yaml:"use_edited"`
	// Strict makes the first bad row an error (naming its file and line)
	// instead of counting and skipping it.
	Strict bool `yaml:"strict"`
	// MaxLineBytes bounds a JSONL line or Parquet value (default 16 MiB).
	MaxLineBytes int `yaml:"max_line_bytes"`
}

// Train is the length of the run and the batch shape.
type Train struct {
	// Steps is the number of optimizer steps (default 100).
	Steps int `yaml:"steps"`
	// SeqLen is the sequence length T: the longest example (default 256).
	SeqLen int `yaml:"seq_len"`
	// Batch is, for SFT, the number of sequences per step; for rm and dpo
	// the number of preference examples per step (each 2 sequences, 3 with
	// data.use_edited). Default 8.
	Batch int `yaml:"batch"`
	// MicroBatches splits each step's batch into this many equal parts
	// (sequences for sft, examples for rm and dpo), each run forward and
	// backward alone, their gradients summed in a fixed tree: gradient
	// accumulation, and the unit a data-parallel run (mpirun -np N, N
	// dividing it) hands out, micro_batches/N to each rank. Runs with the
	// same value give the same bits on 1 or N ranks when micro_batches/N
	// is a power of two. Default 1 (the whole batch at once).
	MicroBatches int `yaml:"micro_batches"`
	// MaxBadSteps stops the run after this many consecutive steps with a
	// non-finite loss or gradient (each is skipped; default 5).
	MaxBadSteps int `yaml:"max_bad_steps"`
	// LogEvery prints a progress line every so many steps when the output
	// is not a terminal (default 10).
	LogEvery int `yaml:"log_every"`
	// PeakGFLOPs is the hardware's peak rate in GFLOP/s that MFU, the
	// model FLOPs utilisation, is measured against (mfu = gflop_per_s /
	// peak_gflop_per_s in metrics.jsonl, metrics.png and report.html;
	// 0 = unknown: no MFU).
	PeakGFLOPs float64 `yaml:"peak_gflop_per_s"`
}

// Optim is the optimizer and learning-rate schedule.
type Optim struct {
	LR     float64 `yaml:"lr"`           // peak learning rate (default 1e-5, Llama 3's SFT and DPO rate)
	MinLR  float64 `yaml:"min_lr"`       // floor of the cosine schedule (default 0)
	Warmup int     `yaml:"warmup_steps"` // linear warmup steps (default 0; at most train.steps)
	// Schedule is "cosine" (default), "linear" (to zero) or "constant".
	Schedule    string  `yaml:"schedule"`
	Beta1       float64 `yaml:"beta1"`        // AdamW decay of the gradient mean (default 0.9)
	Beta2       float64 `yaml:"beta2"`        // AdamW decay of the squared-gradient mean (default 0.95)
	Eps         float64 `yaml:"eps"`          // AdamW denominator epsilon (default 1e-8)
	WeightDecay float64 `yaml:"weight_decay"` // AdamW's decoupled weight decay (default 0)
	// ClipGradNorm clips the global gradient norm (0 = no clipping;
	// default 1).
	ClipGradNorm float64 `yaml:"clip_grad_norm"`
}

// DPO configures the preference loss (kind dpo only).
type DPO struct {
	// Beta is the strength of the KL anchor to the reference model
	// (default 0.1, Llama 3's).
	Beta float64 `yaml:"beta"`
	// Loss is "sigmoid" (default), "ipo" or "hinge".
	Loss string `yaml:"loss"`
	// NLLCoef weights the NLL of the chosen response (token mean over its
	// scored tokens) added to the loss (default 0.2, Llama 3's).
	NLLCoef float64 `yaml:"nll_coef"`
}

// Eval is the held-out evaluation on data.heldout_fraction of the rows.
type Eval struct {
	// Every evaluates every so many steps (0 = only at the end; default 50).
	Every int `yaml:"every"`
	// Batches is the most held-out batches scored per evaluation (default 8).
	Batches int `yaml:"batches"`
}

// CheckpointSpec says when checkpoints are written.
type CheckpointSpec struct {
	Every int `yaml:"every"` // steps between checkpoints (default 50; 0 = only at the end)
	Keep  int `yaml:"keep"`  // newest checkpoints kept (default 2)
}

// Average is the averaging of the last checkpoints into final/.
type Average struct {
	// Last is how many of the newest checkpoints are averaged into final/
	// (0 or 1: final/ is the last weights; at most checkpoint.keep).
	Last int `yaml:"last"`
}

// Default returns the recipe every file is decoded onto.
func Default() Recipe {
	return Recipe{
		Kind: KindSFT, Out: "runs/posttrain", Seed: 1,
		Data:       Data{HeldOut: 0.05, Shuffle: chatdata.DefaultShuffle, Truncation: string(chatdata.TruncateDrop), LossOn: "assistant", Pack: true},
		Train:      Train{Steps: 100, SeqLen: 256, Batch: 8, MicroBatches: 1, MaxBadSteps: 5, LogEvery: 10},
		Optim:      Optim{LR: 1e-5, Schedule: "cosine", Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, ClipGradNorm: 1},
		DPO:        DPO{Beta: 0.1, Loss: LossSigmoid, NLLCoef: 0.2},
		Rounds:     Rounds{Rounds: 3},
		Eval:       Eval{Every: 50, Batches: 8},
		Checkpoint: CheckpointSpec{Every: 50, Keep: 2},
	}
}

var (
	kinds      = []string{KindSFT, KindRM, KindDPO, KindRS, KindRounds}
	schedules  = []string{"cosine", "linear", "constant"}
	lossKinds  = []string{LossSigmoid, LossIPO, LossHinge}
	lossOn     = []string{"assistant", "all"}
	truncation = []string{string(chatdata.TruncateDrop), string(chatdata.TruncateLeft)}
)

// Validate reports every problem of the recipe, naming the field to fix.
func (r *Recipe) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	oneOf := func(key, v string, valid []string) {
		if !slices.Contains(valid, v) {
			bad("%s %q is not one of %s", key, v, strings.Join(valid, ", "))
		}
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	oneOf("kind", r.Kind, kinds)
	if r.Out == "" {
		bad("out: the run directory must be set")
	}
	if r.Model == "" {
		bad("model: the model directory to start from must be set (e.g. model=runs/demo/pretrain/final)")
	}
	if r.Workers < 0 {
		bad("workers must be >= 0, got %d", r.Workers)
	}
	if r.Kind == KindRounds {
		ro := r.Rounds
		if ro.Rounds < 1 || ro.Rounds > 100 {
			bad("rounds.rounds must be in [1, 100], got %d", ro.Rounds)
		}
		if len(ro.SFTData) == 0 {
			bad("rounds.sft_data must list the initial SFT rows")
		}
		for _, t := range ro.Tasks {
			if _, err := tasks.Get(t); err != nil {
				bad("rounds.tasks: %v", err)
			}
		}
		for _, st := range ro.Average {
			if st != KindSFT && st != KindDPO {
				bad("rounds.average lists %q; it averages the round's %s and %s models", st, KindSFT, KindDPO)
			}
		}
		if !(ro.LRDecay >= 0 && ro.LRDecay <= 1) {
			bad("rounds.lr_decay must be in [0, 1] (0 or 1: no decay), got %v", ro.LRDecay)
		}
		if ro.EvalN < -1 {
			bad("rounds.eval_n must be >= -1, got %d", ro.EvalN)
		}
		// Each stage's overrides must apply to a stage recipe, so that a
		// typo in rounds.dpo fails now, not after the SFT and RM stages.
		for _, st := range []struct {
			kind string
			list []string
		}{{KindSFT, ro.SFT}, {KindRM, ro.RM}, {KindRS, ro.RS}, {KindDPO, ro.DPO}} {
			for i, kv := range st.list {
				sr := Default()
				if err := recipes.Override(&sr, kv); err != nil {
					bad("rounds.%s.%d: %v", st.kind, i, err)
				}
			}
		}
	}
	if len(r.Data.Paths) == 0 && r.Kind != KindRS && r.Kind != KindRounds {
		bad("data.paths must list JSONL or Parquet files, directories or globs")
	}
	if r.Kind == KindRS {
		errs = append(errs, r.RS.validate(len(r.Data.Paths) > 0)...)
	}
	if !(r.Data.HeldOut >= 0 && r.Data.HeldOut < 1) {
		bad("data.heldout_fraction must be in [0, 1), got %v", r.Data.HeldOut)
	}
	if r.Data.Shuffle < 1 || r.Data.Shuffle > chatdata.MaxShuffle {
		bad("data.shuffle must be in [1, %d], got %d", chatdata.MaxShuffle, r.Data.Shuffle)
	}
	if r.Data.Epochs < 0 {
		bad("data.epochs must be >= 0, got %d", r.Data.Epochs)
	}
	if r.Data.MaxLineBytes < 0 {
		bad("data.max_line_bytes must be >= 0, got %d", r.Data.MaxLineBytes)
	}
	oneOf("data.truncation", r.Data.Truncation, truncation)
	oneOf("data.loss_on", r.Data.LossOn, lossOn)
	if r.Train.Steps < 1 {
		bad("train.steps must be >= 1, got %d", r.Train.Steps)
	}
	if r.Train.SeqLen < 2 || r.Train.SeqLen > 1<<20 {
		bad("train.seq_len must be in [2, 1048576], got %d", r.Train.SeqLen)
	}
	if r.Train.Batch < 1 || r.Train.Batch > 1<<16 {
		bad("train.batch must be in [1, 65536], got %d", r.Train.Batch)
	}
	if r.Train.MicroBatches < 1 || r.Train.Batch%max(r.Train.MicroBatches, 1) != 0 {
		bad("train.micro_batches must be >= 1 and divide train.batch %d, got %d", r.Train.Batch, r.Train.MicroBatches)
	}
	if r.Train.MaxBadSteps < 1 {
		bad("train.max_bad_steps must be >= 1, got %d", r.Train.MaxBadSteps)
	}
	if r.Train.LogEvery < 0 {
		bad("train.log_every must be >= 0, got %d", r.Train.LogEvery)
	}
	o := r.Optim
	if !(o.LR > 0) || !finite(o.LR) {
		bad("optim.lr must be a positive number, got %v", o.LR)
	}
	if !(o.MinLR >= 0) || o.MinLR > o.LR {
		bad("optim.min_lr must be in [0, optim.lr], got %v", o.MinLR)
	}
	if o.Warmup < 0 {
		bad("optim.warmup_steps must be >= 0, got %d", o.Warmup)
	}
	oneOf("optim.schedule", o.Schedule, schedules)
	if !(o.Beta1 >= 0 && o.Beta1 < 1) || !(o.Beta2 >= 0 && o.Beta2 < 1) {
		bad("optim.beta1 and optim.beta2 must be in [0, 1), got %v and %v", o.Beta1, o.Beta2)
	}
	if !(o.Eps > 0) || !finite(o.Eps) {
		bad("optim.eps must be positive, got %v", o.Eps)
	}
	if !(o.WeightDecay >= 0) || !finite(o.WeightDecay) {
		bad("optim.weight_decay must be >= 0, got %v", o.WeightDecay)
	}
	if !(o.ClipGradNorm >= 0) || !finite(o.ClipGradNorm) {
		bad("optim.clip_grad_norm must be >= 0, got %v", o.ClipGradNorm)
	}
	d := r.DPO
	if !(d.Beta > 0) || !finite(d.Beta) {
		bad("dpo.beta must be a positive number, got %v", d.Beta)
	}
	oneOf("dpo.loss", d.Loss, lossKinds)
	if !(d.NLLCoef >= 0) || !finite(d.NLLCoef) {
		bad("dpo.nll_coef must be >= 0, got %v", d.NLLCoef)
	}
	if r.Eval.Every < 0 || r.Eval.Batches < 1 {
		bad("eval.every must be >= 0 and eval.batches >= 1, got %d and %d", r.Eval.Every, r.Eval.Batches)
	}
	if r.Checkpoint.Every < 0 || r.Checkpoint.Keep < 1 {
		bad("checkpoint.every must be >= 0 and checkpoint.keep >= 1, got %d and %d", r.Checkpoint.Every, r.Checkpoint.Keep)
	}
	if r.Average.Last < 0 || r.Average.Last > r.Checkpoint.Keep {
		bad("average.last must be in [0, checkpoint.keep = %d], got %d", r.Checkpoint.Keep, r.Average.Last)
	}
	return errors.Join(errs...)
}

// schedule is the learning-rate schedule of the run.
func (r *Recipe) schedule() (optim.Schedule, error) {
	o := r.Optim
	warm := min(o.Warmup, r.Train.Steps)
	var s interface {
		optim.Schedule
		Validate() error
	}
	switch o.Schedule {
	case "cosine":
		s = optim.WarmupCosine{Peak: o.LR, Min: o.MinLR, Warmup: warm, Total: r.Train.Steps}
	case "linear":
		s = optim.WarmupLinear{Peak: o.LR, Warmup: warm, Total: r.Train.Steps}
	default:
		s = optim.Constant{Peak: o.LR, Warmup: warm}
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("optim: %w", err)
	}
	return s, nil
}
