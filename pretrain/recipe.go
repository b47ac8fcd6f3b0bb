// Package pretrain trains a Llama model on Parquet token shards: the
// tokenize step (docs-*.parquet → tokens-*.parquet with a manifest), a
// deterministic packed data stream over a mixture of sources with document
// boundaries, and the training loop with schedules, gradient accumulation,
// clipping, stages (main, long-context extension, annealing), held-out
// evaluation, atomic resumable checkpoints, Polyak averaging, metrics,
// plots and sample generations.
//
// Everything a run does is described by a Recipe, loaded strictly from YAML
// by package recipes.
package pretrain

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/optim"
)

// Recipe is a pretraining run. Every field has a default (Default); a recipe
// file lists only what it changes, and `key=value` overrides change single
// fields (`optim.lr=3e-4 train.steps=200`).
type Recipe struct {
	// Out is the run directory: checkpoints/, final/, metrics.jsonl,
	// samples.jsonl, loss.png/svg and the resolved recipe.yaml
	// (default "runs/pretrain").
	Out string `yaml:"out"`
	// Seed drives parameter initialisation and the data order (default 1).
	Seed uint64 `yaml:"seed"`
	// Workers is the number of compute goroutines (0 = all cores).
	Workers int `yaml:"workers"`
	// Tokenizer is a directory with tokenizer.json, used to decode samples
	// and copied into checkpoints. Empty: the tokenizer named by the first
	// source's manifest.json, if any.
	Tokenizer string `yaml:"tokenizer"`

	Model      ModelSpec      `yaml:"model"`
	Data       Data           `yaml:"data"`
	Train      Train          `yaml:"train"`
	Optim      Optim          `yaml:"optim"`
	Eval       Eval           `yaml:"eval"`
	Checkpoint CheckpointSpec `yaml:"checkpoint"`
	// Stages run after the main stage (Train/Optim/Data) in order, each
	// continuing from the previous one: e.g. a long-context extension and
	// an annealing stage.
	Stages []Stage `yaml:"stages"`
	// Average is the Polyak averaging of the annealing stage's checkpoints
	// into final/, and which model final/ keeps.
	Average Average `yaml:"average"`
}

// ModelSpec is the model architecture, with Hugging Face field names.
type ModelSpec struct {
	// VocabSize; 0 takes the tokenizer's vocabulary size from the token
	// shards' manifest.
	VocabSize             int          `yaml:"vocab_size"`
	HiddenSize            int          `yaml:"hidden_size"`             // width of the residual stream (default 128)
	IntermediateSize      int          `yaml:"intermediate_size"`       // width of the SwiGLU feed-forward layer (default 384)
	NumHiddenLayers       int          `yaml:"num_hidden_layers"`       // transformer blocks (default 4)
	NumAttentionHeads     int          `yaml:"num_attention_heads"`     // query heads (default 4)
	NumKeyValueHeads      int          `yaml:"num_key_value_heads"`     // key/value heads, grouped-query attention (default 2)
	HeadDim               int          `yaml:"head_dim"`                // width of a head (0 = hidden_size / num_attention_heads)
	RMSNormEps            float64      `yaml:"rms_norm_eps"`            // RMSNorm epsilon (default 1e-5)
	RopeTheta             float64      `yaml:"rope_theta"`              // RoPE base frequency θ (default 10000)
	RopeScaling           *RopeScaling `yaml:"rope_scaling"`            // Llama 3.1 RoPE scaling for long contexts (default none)
	MaxPositionEmbeddings int          `yaml:"max_position_embeddings"` // longest position the model encodes (0 = the stage's seq_len)
	TieWordEmbeddings     bool         `yaml:"tie_word_embeddings"`     // the output head shares the embedding matrix (default true)
	InitializerRange      float64      `yaml:"initializer_range"`       // standard deviation of the initial weights (default 0.02)
}

// RopeScaling is the Hugging Face rope_scaling object ("llama3" type).
type RopeScaling struct {
	RopeType                      string  `yaml:"rope_type"`                        // "llama3"
	Factor                        float64 `yaml:"factor"`                           // how much longer the context gets (Llama 3.1: 8)
	LowFreqFactor                 float64 `yaml:"low_freq_factor"`                  // wavelengths above original/low_freq_factor are scaled by factor (Llama 3.1: 1)
	HighFreqFactor                float64 `yaml:"high_freq_factor"`                 // wavelengths below original/high_freq_factor are kept (Llama 3.1: 4)
	OriginalMaxPositionEmbeddings int     `yaml:"original_max_position_embeddings"` // the context length the model was trained at before scaling
}

// Source is one data source of a mixture: a set of token shards.
type Source struct {
	// Name identifies the source; its read position carries across stages
	// that use the same name.
	Name string `yaml:"name"`
	// Paths are token shard files, directories of tokens-*.parquet, or
	// glob patterns.
	Paths []string `yaml:"paths"`
	// Weight is the source's share of training tokens (weights are
	// normalised; absent or null = 1; 0 leaves the source out of training).
	Weight *float64 `yaml:"weight"`
	// MinQuality, when positive, skips documents whose quality score is
	// lower, unscored ones (quality -1) included (default 0: keep all).
	MinQuality float64 `yaml:"min_quality"`
}

// W returns the source's weight (1 when unset).
func (s *Source) W() float64 {
	if s.Weight == nil {
		return 1
	}
	return *s.Weight
}

// Data is the training mixture of the main stage.
type Data struct {
	Sources []Source `yaml:"sources"`
	// HeldOut is the fraction of documents (chosen by a hash of the
	// document id, independent of the seed) kept out of training and used
	// for evaluation when eval.sources is empty (default 0.01).
	HeldOut float64 `yaml:"heldout_fraction"`
	// Window is the number of packed sequences shuffled together, so that
	// a batch mixes many documents (default 256; 1 = packing order).
	Window int `yaml:"shuffle_window"`
	// GroupChunks is the number of chunks (token-shard row groups) whose
	// documents are shuffled together and held in memory at once, per
	// source (default 8).
	GroupChunks int `yaml:"shuffle_chunks"`
	// MaxDocTokens cuts longer documents into pieces that are shuffled as
	// separate documents, so one huge document does not fill many batches
	// in a row (default 8192; 0 = keep documents whole). Changing it
	// between stages restarts the sources' read positions.
	MaxDocTokens int `yaml:"max_doc_tokens"`
}

// Train is the main stage's length and batch shape.
type Train struct {
	Steps int `yaml:"steps"` // optimizer steps of the main stage (default 1000)
	// SeqLen is the packed sequence length (default 128).
	SeqLen int `yaml:"seq_len"`
	// BatchTokens is the global batch in tokens; it must be a multiple of
	// seq_len (default 2048).
	BatchTokens int `yaml:"batch_tokens"`
	// MicroBatch is the number of sequences per forward/backward pass;
	// the global batch is accumulated over batch_tokens/seq_len/micro_batch
	// passes (0 = the whole batch at once).
	MicroBatch int `yaml:"micro_batch"`
	// MaxBadSteps stops the run after this many consecutive steps with a
	// non-finite loss or gradient (each is skipped; default 5).
	MaxBadSteps int `yaml:"max_bad_steps"`
	// LogEvery prints a progress line every so many steps when the output
	// is not a terminal (default 50).
	LogEvery int `yaml:"log_every"`
	// PeakGFLOPs is the hardware's peak rate in GFLOP/s (dense, the
	// precision training runs in, all the cores the run uses) that MFU,
	// the model FLOPs utilisation, is measured against: mfu =
	// gflop_per_s / peak_gflop_per_s, in metrics.jsonl, metrics.png and
	// report.html (0 = unknown: no MFU, only gflop_per_s).
	PeakGFLOPs float64 `yaml:"peak_gflop_per_s"`
}

// Optim is the optimizer and learning-rate schedule of the main stage.
type Optim struct {
	LR     float64 `yaml:"lr"`           // peak learning rate (default 3e-3)
	MinLR  float64 `yaml:"min_lr"`       // floor of cosine/wsd (default 3e-4)
	Warmup int     `yaml:"warmup_steps"` // linear warmup (default 50)
	// Schedule is "cosine" (warmup + cosine to min_lr, default), "linear"
	// (warmup + linear to zero), "constant" or "wsd" (warmup, stable,
	// decay_steps of linear decay to min_lr).
	Schedule    string  `yaml:"schedule"`
	DecaySteps  int     `yaml:"decay_steps"`  // wsd only
	Beta1       float64 `yaml:"beta1"`        // AdamW decay of the gradient mean (default 0.9)
	Beta2       float64 `yaml:"beta2"`        // AdamW decay of the squared-gradient mean (default 0.95)
	Eps         float64 `yaml:"eps"`          // AdamW denominator epsilon (default 1e-8)
	WeightDecay float64 `yaml:"weight_decay"` // AdamW's decoupled weight decay (default 0.1)
	// ClipGradNorm clips the global gradient norm (0 = no clipping;
	// default 1).
	ClipGradNorm float64 `yaml:"clip_grad_norm"`
}

// Eval is the held-out evaluation.
type Eval struct {
	Every  int `yaml:"every"`   // evaluate every N steps (0 = only at the end; default 100)
	Tokens int `yaml:"tokens"`  // held-out tokens scored (default 32768)
	SeqLen int `yaml:"seq_len"` // held-out sequence length (0 = the main stage's train.seq_len)
	Batch  int `yaml:"batch"`   // sequences per forward pass (default 8)
	// Sources, when set, are the held-out data instead of the
	// heldout_fraction of the training sources.
	Sources []Source `yaml:"sources"`
	// Prompts are continued at each evaluation (decoded with the
	// tokenizer) and written to samples.jsonl.
	Prompts      []string `yaml:"prompts"`
	SampleTokens int      `yaml:"sample_tokens"` // tokens generated per prompt (default 64)
	Temperature  float64  `yaml:"temperature"`   // sampling temperature (default 0.8; 0 = greedy)
	TopK         int      `yaml:"top_k"`         // sample among the k likeliest tokens (default 40; 0 = all)
}

// CheckpointSpec says when checkpoints are written.
type CheckpointSpec struct {
	Every int `yaml:"every"` // steps between checkpoints (default 200; 0 = only at stage ends and the end)
	Keep  int `yaml:"keep"`  // newest checkpoints kept (default 3)
}

// Stage is one training stage after the main one. Zero or empty fields
// inherit the previous stage's value, except warmup_steps (default 0) and
// the schedule of kind "anneal" (default "linear" to zero).
type Stage struct {
	Name string `yaml:"name"` // shown in logs, metrics.jsonl and plots (default stageN)
	// Kind is "long_context", "anneal" or "" (plain continuation); it only
	// selects defaults and checks.
	Kind        string `yaml:"kind"`
	Steps       int    `yaml:"steps"`        // optimizer steps of the stage (required)
	SeqLen      int    `yaml:"seq_len"`      // packed sequence length (0 = inherit)
	BatchTokens int    `yaml:"batch_tokens"` // global batch in tokens (0 = inherit)
	MicroBatch  int    `yaml:"micro_batch"`  // sequences per forward/backward pass (0 = as many tokens per pass as before)
	// RopeTheta, RopeScaling and MaxPositionEmbeddings change the model's
	// position encoding from this stage on (the weights carry over).
	RopeTheta             float64      `yaml:"rope_theta"`
	RopeScaling           *RopeScaling `yaml:"rope_scaling"`            // Llama 3.1 RoPE scaling from this stage on (null = inherit)
	MaxPositionEmbeddings int          `yaml:"max_position_embeddings"` // longest position encoded from this stage on (0 = inherit, at least seq_len)
	// Sources replace the data mixture (empty: the previous stage's).
	Sources []Source `yaml:"sources"`
	// MaxDocTokens replaces data.max_doc_tokens (e.g. longer for a
	// long-context stage; 0 = inherit).
	MaxDocTokens int     `yaml:"max_doc_tokens"`
	LR           float64 `yaml:"lr"`           // peak learning rate of the stage (0 = where the previous stage ended, its min_lr)
	MinLR        float64 `yaml:"min_lr"`       // floor of cosine/wsd (0 = inherit)
	Warmup       int     `yaml:"warmup_steps"` // linear warmup of the stage (default 0)
	Schedule     string  `yaml:"schedule"`     // cosine, linear, constant or wsd ("" = inherit; anneal: linear to zero)
}

// Average is the Polyak averaging of checkpoints at the end of the run
// and the choice of final/.
type Average struct {
	// Last is how many checkpoints of the annealing stage (the last stage
	// of kind anneal; without one, of the last stage) are averaged, as
	// Llama 3 does. With an annealing stage, its checkpoints are spaced
	// evenly over it (every steps/last steps), so the average never mixes
	// in weights of another stage. 0 or 1: no average (must not exceed
	// checkpoint.keep).
	Last int `yaml:"last"`
	// Keep says which model becomes final/: "better" (default) evaluates
	// the average and the last checkpoint on the held-out set and keeps
	// the one with the lower loss, "average" always keeps the average,
	// "last" the last checkpoint. Both losses are logged, written to
	// metrics.jsonl (final_eval) and shown in report.html.
	Keep string `yaml:"keep"`
}

// Values of average.keep.
const (
	KeepBetter  = "better"
	KeepAverage = "average"
	KeepLast    = "last"
)

// Default returns the recipe every file is decoded onto: a ~1M-parameter
// model, sequences of 128, 2048-token batches, AdamW with warmup + cosine.
func Default() Recipe {
	adam := optim.DefaultAdamWConfig()
	return Recipe{
		Out:  "runs/pretrain",
		Seed: 1,
		Model: ModelSpec{HiddenSize: 128, IntermediateSize: 384, NumHiddenLayers: 4, NumAttentionHeads: 4,
			NumKeyValueHeads: 2, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 0,
			TieWordEmbeddings: true, InitializerRange: 0.02},
		Data:  Data{HeldOut: 0.01, Window: defaultWindow, GroupChunks: defaultGroupChunks, MaxDocTokens: 8192},
		Train: Train{Steps: 1000, SeqLen: 128, BatchTokens: 2048, MaxBadSteps: 5, LogEvery: 50},
		Optim: Optim{LR: 3e-3, MinLR: 3e-4, Warmup: 50, Schedule: "cosine",
			Beta1: adam.Beta1, Beta2: adam.Beta2, Eps: adam.Eps, WeightDecay: adam.WeightDecay, ClipGradNorm: 1},
		Eval:       Eval{Every: 100, Tokens: 32768, Batch: 8, SampleTokens: 64, Temperature: 0.8, TopK: 40},
		Checkpoint: CheckpointSpec{Every: 200, Keep: 3},
		Average:    Average{Keep: KeepBetter},
	}
}

// StagePlan is one resolved stage: every field filled in.
type StagePlan struct {
	Index       int
	Name        string
	Kind        string
	Start, End  int // global steps [Start, End)
	SeqLen      int
	BatchTokens int
	MicroBatch  int // sequences per forward pass
	Sources     []Source
	MaxDocTok   int
	Schedule    string
	LR, MinLR   float64
	Warmup      int
	DecaySteps  int
	RopeTheta   float64
	RopeScaling *RopeScaling
	MaxPos      int
}

// Seqs is the number of sequences in a global batch.
func (s *StagePlan) Seqs() int { return s.BatchTokens / s.SeqLen }

// Accum is the number of micro-batches per step (for one worker).
func (s *StagePlan) Accum() int { return s.Seqs() / s.MicroBatch }

// Plan resolves the main stage and the extra stages into StagePlans.
func (r *Recipe) Plan() []StagePlan {
	main := StagePlan{Name: "main", Kind: "main", Start: 0, End: r.Train.Steps, SeqLen: r.Train.SeqLen,
		BatchTokens: r.Train.BatchTokens, MicroBatch: r.Train.MicroBatch, Sources: r.Data.Sources, MaxDocTok: r.Data.MaxDocTokens,
		Schedule: r.Optim.Schedule, LR: r.Optim.LR, MinLR: r.Optim.MinLR, Warmup: r.Optim.Warmup,
		DecaySteps: r.Optim.DecaySteps, RopeTheta: r.Model.RopeTheta, RopeScaling: r.Model.RopeScaling,
		MaxPos: r.Model.MaxPositionEmbeddings}
	if main.MicroBatch == 0 && main.SeqLen > 0 {
		main.MicroBatch = main.Seqs()
	}
	if main.MaxPos == 0 {
		main.MaxPos = main.SeqLen
	}
	main.Warmup = r.MainWarmup()
	plans := []StagePlan{main}
	for i, st := range r.Stages {
		prev := plans[len(plans)-1]
		p := prev
		p.Index, p.Name, p.Kind = i+1, st.Name, st.Kind
		if p.Name == "" {
			p.Name = fmt.Sprintf("stage%d", i+1)
		}
		p.Start, p.End = prev.End, prev.End+st.Steps
		pick := func(v, def int) int {
			if v != 0 {
				return v
			}
			return def
		}
		pickF := func(v, def float64) float64 {
			if v != 0 {
				return v
			}
			return def
		}
		p.SeqLen = pick(st.SeqLen, prev.SeqLen)
		p.BatchTokens = pick(st.BatchTokens, prev.BatchTokens)
		p.MicroBatch = st.MicroBatch
		if p.MicroBatch == 0 {
			// Keep the tokens per forward pass when only seq_len changes.
			p.MicroBatch = max(1, prev.MicroBatch*prev.SeqLen/max(p.SeqLen, 1))
			if p.SeqLen > 0 && p.Seqs() > 0 && p.Seqs()%p.MicroBatch != 0 {
				p.MicroBatch = p.Seqs()
			}
		}
		if len(st.Sources) > 0 {
			p.Sources = st.Sources
		}
		p.MaxDocTok = pick(st.MaxDocTokens, prev.MaxDocTok)
		p.RopeTheta = pickF(st.RopeTheta, prev.RopeTheta)
		if st.RopeScaling != nil {
			p.RopeScaling = st.RopeScaling
		}
		p.MaxPos = pick(st.MaxPositionEmbeddings, max(prev.MaxPos, p.SeqLen))
		p.Schedule = st.Schedule
		if p.Schedule == "" {
			p.Schedule = prev.Schedule
			if st.Kind == "anneal" {
				p.Schedule = "linear"
			}
		}
		// A continuing stage starts from where the previous one ended.
		p.LR = pickF(st.LR, prev.MinLR)
		if prev.Schedule == "constant" {
			p.LR = pickF(st.LR, prev.LR)
		}
		p.MinLR = pickF(st.MinLR, min(prev.MinLR, p.LR))
		p.Warmup = st.Warmup
		p.DecaySteps = 0
		plans = append(plans, p)
	}
	return plans
}

// MainWarmup is the main stage's warmup: optim.warmup_steps clamped to
// train.steps (and, for wsd, to the steps before the decay), so that a short
// run (train.steps=3 of a recipe warming up over 30) warms up over the whole
// run instead of failing. WarmupClamped says when that happens.
func (r *Recipe) MainWarmup() int {
	w := r.Optim.Warmup
	if w <= 0 || r.Train.Steps < 0 {
		return w // negative values are reported by Validate
	}
	limit := r.Train.Steps
	if r.Optim.Schedule == "wsd" && r.Optim.DecaySteps >= 0 && r.Optim.DecaySteps <= limit {
		limit -= r.Optim.DecaySteps
	}
	return min(w, limit)
}

// WarmupClamped describes the clamping of optim.warmup_steps to the run by
// MainWarmup, for the log; "" when the recipe's warmup is used as written.
func (r *Recipe) WarmupClamped() string {
	if w := r.MainWarmup(); w != r.Optim.Warmup {
		run := fmt.Sprintf("train.steps %d", r.Train.Steps)
		if w < r.Train.Steps { // wsd: the decay follows the warmup
			run = fmt.Sprintf("train.steps %d − optim.decay_steps %d", r.Train.Steps, r.Optim.DecaySteps)
		}
		return fmt.Sprintf("optim.warmup_steps %d exceeds the run (%s): warming up over %d steps", r.Optim.Warmup, run, w)
	}
	return ""
}

// averageStage is the index of the plan whose checkpoints are averaged
// into final/: the last stage of kind anneal, else the last stage.
func averageStage(plans []StagePlan) int {
	for i := len(plans) - 1; i >= 0; i-- {
		if plans[i].Kind == "anneal" {
			return i
		}
	}
	return len(plans) - 1
}

var knownSchedules = []string{"cosine", "linear", "constant", "wsd"}

// Validate reports every problem of the recipe, naming the field to fix.
func (r *Recipe) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if r.Out == "" {
		bad("out: the run directory must be set")
	}
	if r.Workers < 0 {
		bad("workers must be >= 0, got %d", r.Workers)
	}
	checkSources := func(where string, srcs []Source, required bool) {
		if required && len(srcs) == 0 {
			bad("%s: at least one source is needed, e.g. sources: [{name: web, paths: [tokens/]}]", where)
		}
		names := map[string]bool{}
		var total float64
		for i, s := range srcs {
			at := fmt.Sprintf("%s[%d]", where, i)
			if s.Name == "" {
				bad("%s.name must be set", at)
			}
			if names[s.Name] {
				bad("%s.name %q is used twice", at, s.Name)
			}
			names[s.Name] = true
			if len(s.Paths) == 0 {
				bad("%s.paths must list token shards or directories", at)
			}
			if w := s.W(); !(w >= 0) || math.IsInf(w, 0) {
				bad("%s.weight must be a non-negative number, got %v", at, w)
			}
			total += s.W()
		}
		if len(srcs) > 0 && !(total > 0) {
			bad("%s: the weights sum to 0; give at least one source a positive weight", where)
		}
	}
	checkSources("data.sources", r.Data.Sources, true)
	checkSources("eval.sources", r.Eval.Sources, false)
	if r.Data.MaxDocTokens < 0 {
		bad("data.max_doc_tokens must be >= 0, got %d", r.Data.MaxDocTokens)
	}
	if r.Data.Window < 1 || r.Data.GroupChunks < 1 {
		bad("data.shuffle_window and data.shuffle_chunks must be >= 1, got %d and %d", r.Data.Window, r.Data.GroupChunks)
	}
	if !(r.Data.HeldOut >= 0 && r.Data.HeldOut < 1) {
		bad("data.heldout_fraction must be in [0, 1), got %v", r.Data.HeldOut)
	}
	if r.Train.Steps < 0 {
		bad("train.steps must be >= 0, got %d", r.Train.Steps)
	}
	if r.Train.MaxBadSteps < 1 {
		bad("train.max_bad_steps must be >= 1, got %d", r.Train.MaxBadSteps)
	}
	if r.Optim.ClipGradNorm < 0 {
		bad("optim.clip_grad_norm must be >= 0, got %v", r.Optim.ClipGradNorm)
	}
	if r.Eval.Every < 0 || r.Eval.Tokens < 0 || r.Eval.Batch < 1 || r.Eval.SampleTokens < 0 || r.Eval.TopK < 0 || r.Eval.Temperature < 0 {
		bad("eval: every, tokens, sample_tokens, top_k and temperature must be >= 0 and batch >= 1")
	}
	if r.Checkpoint.Every < 0 || r.Checkpoint.Keep < 1 {
		bad("checkpoint: every must be >= 0 and keep >= 1 (got %d, %d)", r.Checkpoint.Every, r.Checkpoint.Keep)
	}
	if r.Average.Last < 0 || r.Average.Last > r.Checkpoint.Keep {
		bad("average.last (%d) must be in [0, checkpoint.keep = %d]: only kept checkpoints can be averaged; raise checkpoint.keep", r.Average.Last, r.Checkpoint.Keep)
	}
	switch r.Average.Keep {
	case KeepBetter, KeepAverage, KeepLast:
	default:
		bad("average.keep %q is not one of %s, %s, %s", r.Average.Keep, KeepBetter, KeepAverage, KeepLast)
	}
	if r.Train.PeakGFLOPs < 0 || math.IsInf(r.Train.PeakGFLOPs, 0) || math.IsNaN(r.Train.PeakGFLOPs) {
		bad("train.peak_gflop_per_s must be a finite number >= 0 (0 = unknown), got %v", r.Train.PeakGFLOPs)
	}
	for i, st := range r.Stages {
		where := fmt.Sprintf("stages[%d]", i)
		switch st.Kind {
		case "", "long_context", "anneal":
		default:
			bad("%s.kind %q is not one of long_context, anneal or empty", where, st.Kind)
		}
		if st.Steps <= 0 {
			bad("%s.steps must be positive, got %d", where, st.Steps)
		}
		checkSources(where+".sources", st.Sources, false)
		if st.Kind == "long_context" && st.SeqLen == 0 {
			bad("%s: a long_context stage needs seq_len (longer than the previous stage's)", where)
		}
	}
	for _, p := range r.Plan() {
		where := "train/optim"
		if p.Index > 0 {
			where = fmt.Sprintf("stages[%d]", p.Index-1)
		}
		if p.SeqLen <= 0 {
			bad("%s: seq_len must be positive, got %d", where, p.SeqLen)
			continue
		}
		if p.BatchTokens <= 0 || p.BatchTokens%p.SeqLen != 0 {
			bad("%s: batch_tokens (%d) must be a positive multiple of seq_len (%d)", where, p.BatchTokens, p.SeqLen)
			continue
		}
		if p.MicroBatch <= 0 || p.Seqs()%p.MicroBatch != 0 {
			bad("%s: micro_batch (%d) must divide the %d sequences of a batch", where, p.MicroBatch, p.Seqs())
		}
		if p.SeqLen > p.MaxPos {
			bad("%s: seq_len %d exceeds max_position_embeddings %d", where, p.SeqLen, p.MaxPos)
		}
		if !slices.Contains(knownSchedules, p.Schedule) {
			bad("%s: schedule %q is not one of %s", where, p.Schedule, strings.Join(knownSchedules, ", "))
		} else if _, err := p.schedule(); err != nil {
			bad("%s: %v", where, err)
		}
	}
	plans := r.Plan()
	for i := 1; i < len(plans); i++ {
		if plans[i].Kind == "long_context" && plans[i].SeqLen <= plans[i-1].SeqLen {
			bad("stages[%d]: a long_context stage must lengthen sequences (seq_len %d, previous %d)", i-1, plans[i].SeqLen, plans[i-1].SeqLen)
		}
	}
	if len(errs) == 0 {
		if _, err := r.ModelConfig(plans[0], max(r.Model.VocabSize, 1)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// schedule builds the stage's learning-rate schedule over its own steps.
func (p *StagePlan) schedule() (optim.Schedule, error) {
	total := p.End - p.Start
	var s interface {
		optim.Schedule
		Validate() error
	}
	switch p.Schedule {
	case "cosine":
		s = optim.WarmupCosine{Peak: p.LR, Min: p.MinLR, Warmup: p.Warmup, Total: total}
	case "linear":
		s = optim.WarmupLinear{Peak: p.LR, Warmup: p.Warmup, Total: total}
	case "constant":
		s = optim.Constant{Peak: p.LR, Warmup: p.Warmup}
	case "wsd":
		s = optim.WSD{Peak: p.LR, Min: p.MinLR, Warmup: p.Warmup, Decay: p.DecaySteps, Total: total}
	default:
		return nil, fmt.Errorf("schedule %q is not one of %s", p.Schedule, strings.Join(knownSchedules, ", "))
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// ModelConfig is the model configuration of a stage with the given
// vocabulary size.
func (r *Recipe) ModelConfig(p StagePlan, vocab int) (model.Config, error) {
	m := r.Model
	c := model.Config{VocabSize: vocab, HiddenSize: m.HiddenSize, IntermediateSize: m.IntermediateSize,
		NumHiddenLayers: m.NumHiddenLayers, NumAttentionHeads: m.NumAttentionHeads, NumKeyValueHeads: m.NumKeyValueHeads,
		HeadDim: m.HeadDim, RMSNormEps: m.RMSNormEps, RopeTheta: p.RopeTheta, MaxPositionEmbeddings: p.MaxPos,
		TieWordEmbeddings: m.TieWordEmbeddings, InitializerRange: m.InitializerRange}
	if rs := p.RopeScaling; rs != nil {
		c.RopeScaling = &model.RopeScaling{RopeType: rs.RopeType, Factor: rs.Factor, LowFreqFactor: rs.LowFreqFactor,
			HighFreqFactor: rs.HighFreqFactor, OriginalMaxPositionEmbeddings: rs.OriginalMaxPositionEmbeddings}
	}
	c.Normalize()
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("model (stage %s): %w", p.Name, err)
	}
	return c, nil
}
