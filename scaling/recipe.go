// Package scaling runs IsoFLOP sweeps of pretraining runs and fits scaling
// laws to them, as Llama 3 (§3.2.1) and Chinchilla (Hoffmann et al. 2022)
// did: a parabola in log model size per compute budget, power laws of the
// compute-optimal size and token count against compute, the parametric
// law L(N, D) = E + A/N^α + B/D^β, a forecast for a larger budget, and a
// two-stage forecast of downstream accuracy.
//
// # Model size and compute
//
// N is the number of parameters that take part in matrix multiplications
// (model.MatmulParams: every layer's projections plus the LM head; the
// embedding lookup and the norms are left out), D the number of training
// tokens, and the compute of a run C = D · model.FLOPsPerToken (6N plus the
// attention scores and values at the run's sequence length).
//
// # Shapes from the size knob
//
// A sweep lists integer sizes s; a size maps to a Llama shape by [Shape]:
//
//	hidden_size        = width_per_size · s      (default 32 · s)
//	num_attention_heads = hidden_size / head_dim  (default head_dim 32, so s heads)
//	num_key_value_heads = heads / kv_group when that divides, else heads
//	intermediate_size  = ffn_mult · hidden_size  (default 3×)
//	num_hidden_layers  = max(1, round(layers_per_size · s))  (default 1 · s)
//
// so width and depth grow together and N grows roughly as s³.
package scaling

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/herdml/herd/pretrain"
)

// Recipe is a sweep: one pretraining run per (budget, size).
type Recipe struct {
	// Out is the sweep directory: one run directory per (budget, size),
	// named b<budget>-s<size> (default "runs/scaling").
	Out string `yaml:"out"`
	// Budgets are the compute budgets in FLOPs.
	Budgets []float64 `yaml:"budgets"`
	// Sizes are the values of the size knob (see Shape).
	Sizes []int `yaml:"sizes"`
	// Shape maps a size to the model's width, depth and heads.
	Shape ShapeRule `yaml:"shape"`
	// Pretrain is the pretraining recipe every run starts from (data,
	// held-out split, optimizer, batch); the sweep sets its out, model
	// shape, train.steps and warmup. Stages must be empty: the FLOP count
	// is the main stage's.
	Pretrain pretrain.Recipe `yaml:"pretrain"`
	// WarmupFraction is each run's warmup as a fraction of its steps,
	// capped at pretrain.optim.warmup_steps (default 0.1).
	WarmupFraction float64 `yaml:"warmup_fraction"`
	// MaxSteps, when > 0, caps a run's optimizer steps: a run that would
	// take more doubles pretrain.train.batch_tokens (and micro_batch, when
	// set) until it does not: fewer, larger steps for small models at large
	// budgets. Every run still trains on budget / FLOPs-per-token tokens, but
	// a larger batch can cost loss at equal tokens, which bends the fitted
	// law (0: one batch size for all runs).
	MaxSteps int `yaml:"max_steps"`
	// Downstream scores each finished run on an eval task set (see
	// Downstream); empty tasks and file: skipped.
	Downstream DownstreamSpec `yaml:"downstream"`
	// Fit holds the fitting options used by `scaling fit` on this sweep.
	Fit FitSpec `yaml:"fit"`
}

// ShapeRule maps the size knob to a model shape (package doc).
type ShapeRule struct {
	WidthPerSize  int     `yaml:"width_per_size"`  // default 32
	HeadDim       int     `yaml:"head_dim"`        // default 32
	KVGroup       int     `yaml:"kv_group"`        // query heads per key/value head (default 2)
	FFNMult       float64 `yaml:"ffn_mult"`        // default 3
	LayersPerSize float64 `yaml:"layers_per_size"` // default 1
}

// DownstreamSpec is the eval task set of the downstream forecast.
type DownstreamSpec struct {
	// Tasks are built-in task names (tasks.Names); each problem's choices
	// are its answer and wrong answers drawn by the task.
	Tasks []string `yaml:"tasks"`
	// File is a JSONL of {"question", "choices", "answer"} rows (answer:
	// the index of the correct choice), used instead of Tasks.
	File string `yaml:"file"`
	// N is the number of built-in problems (default 200).
	N int `yaml:"n"`
	// Choices is the number of choices per built-in problem (default 4).
	Choices int `yaml:"choices"`
	// Seed draws the built-in problems (default 1).
	Seed uint64 `yaml:"seed"`
}

// FitSpec are fitting options.
type FitSpec struct {
	// Bootstrap is the number of bootstrap resamples for the confidence
	// intervals (default 1000).
	Bootstrap int `yaml:"bootstrap"`
	// Seed drives the bootstrap (default 1).
	Seed uint64 `yaml:"seed"`
	// TargetFLOPs is the forecast's budget (default 4× the largest budget).
	TargetFLOPs float64 `yaml:"target_flops"`
}

// Default returns the recipe a sweep file is decoded onto.
func Default() Recipe {
	p := pretrain.Default()
	p.Eval.Every = 0
	p.Eval.Tokens = 65536
	p.Checkpoint = pretrain.CheckpointSpec{Every: 250, Keep: 1}
	return Recipe{
		Out:            "runs/scaling",
		Shape:          ShapeRule{WidthPerSize: 32, HeadDim: 32, KVGroup: 2, FFNMult: 3, LayersPerSize: 1},
		Pretrain:       p,
		WarmupFraction: 0.1,
		Downstream:     DownstreamSpec{N: 200, Choices: 4, Seed: 1},
		Fit:            FitSpec{Bootstrap: 1000, Seed: 1},
	}
}

// Shape returns the model of size s: the base model spec with width,
// depth and heads from the rule.
func (r *ShapeRule) Shape(base pretrain.ModelSpec, s int) pretrain.ModelSpec {
	m := base
	m.HiddenSize = r.WidthPerSize * s
	m.HeadDim = 0
	m.NumAttentionHeads = max(1, m.HiddenSize/r.HeadDim)
	m.NumKeyValueHeads = m.NumAttentionHeads
	if r.KVGroup > 1 && m.NumAttentionHeads%r.KVGroup == 0 {
		m.NumKeyValueHeads = m.NumAttentionHeads / r.KVGroup
	}
	m.IntermediateSize = int(math.Round(r.FFNMult * float64(m.HiddenSize)))
	m.NumHiddenLayers = max(1, int(math.Round(r.LayersPerSize*float64(s))))
	return m
}

// Validate reports every problem of the recipe, naming the field.
func (r *Recipe) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if r.Out == "" {
		bad("out: the sweep directory must be set")
	}
	if len(r.Budgets) == 0 {
		bad("budgets: list at least one compute budget in FLOPs, e.g. [1e12, 2e12, 4e12]")
	}
	for i, b := range r.Budgets {
		if !(b > 0) || math.IsInf(b, 0) {
			bad("budgets[%d] must be a positive number of FLOPs, got %v", i, b)
		}
	}
	if hasDup(r.Budgets) {
		bad("budgets: a budget is listed twice")
	}
	if len(r.Sizes) == 0 {
		bad("sizes: list at least one value of the size knob, e.g. [2, 3, 4, 5]")
	}
	for i, s := range r.Sizes {
		if s < 1 || s > 1024 {
			bad("sizes[%d] must be in [1, 1024], got %d", i, s)
		}
	}
	if hasDup(r.Sizes) {
		bad("sizes: a size is listed twice")
	}
	sh := r.Shape
	if sh.WidthPerSize < 1 || sh.HeadDim < 1 || sh.KVGroup < 1 || !(sh.FFNMult > 0) || !(sh.LayersPerSize > 0) {
		bad("shape: width_per_size, head_dim, kv_group must be >= 1 and ffn_mult, layers_per_size > 0")
	} else if sh.WidthPerSize%sh.HeadDim != 0 && sh.HeadDim%sh.WidthPerSize != 0 {
		bad("shape: width_per_size (%d) and head_dim (%d) must divide one another so every size has whole heads", sh.WidthPerSize, sh.HeadDim)
	}
	if !(r.WarmupFraction >= 0 && r.WarmupFraction < 1) {
		bad("warmup_fraction must be in [0, 1), got %v", r.WarmupFraction)
	}
	if len(r.Pretrain.Stages) > 0 {
		bad("pretrain.stages must be empty: a sweep run is its main stage only")
	}
	if r.MaxSteps < 0 {
		bad("max_steps must be >= 0 (0: no cap), got %d", r.MaxSteps)
	}
	if r.Downstream.N < 1 || r.Downstream.Choices < 2 {
		bad("downstream: n must be >= 1 and choices >= 2")
	}
	if r.Fit.Bootstrap < 0 || r.Fit.TargetFLOPs < 0 {
		bad("fit: bootstrap and target_flops must be >= 0")
	}
	if len(errs) == 0 {
		for _, s := range r.Sizes {
			p := r.Pretrain
			p.Out = "x"
			p.Model = r.Shape.Shape(p.Model, s)
			if err := p.Validate(); err != nil {
				bad("size %d: %v", s, err)
				break
			}
		}
	}
	return errors.Join(errs...)
}

func hasDup[T comparable](xs []T) bool {
	seen := map[T]bool{}
	for _, x := range xs {
		if seen[x] {
			return true
		}
		seen[x] = true
	}
	return false
}

// sortedBudgets returns the budgets ascending.
func (r *Recipe) sortedBudgets() []float64 {
	b := slices.Clone(r.Budgets)
	slices.Sort(b)
	return b
}
