package quantize

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/x448/float16"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/checkpoint/fp8"
	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/posttrain"
	"github.com/herdml/herd/pretrain"
	"github.com/herdml/herd/tasks"
)

// CompareOptions configure the measurement of the quantized model.
type CompareOptions struct {
	// HeldOut are token shard files or directories: the held-out loss is
	// measured on their held-out documents (HeldOutFraction of them, the
	// split pretraining uses, so pass the pretraining recipe's fraction).
	HeldOut         []string
	HeldOutFraction float64 // 0: 0.02
	EvalTokens      int     // held-out tokens scored (0: 16384)
	SeqLen          int     // sequence length (0: the model's context)
	Batch           int     // sequences per forward pass (0: 8)

	// RewardModel is a reward model directory (posttrain's rm/final);
	// with Prompts, responses are sampled from the BF16 and the FP8 model
	// for the same prompts and seeds and scored by it.
	RewardModel string
	// Prompts is a JSONL file whose rows have a "prompt" string (SFT and
	// preference data) or "messages" (the first user message is used),
	// or TaskPrompts: the held-out prompts of the built-in tasks
	// (package tasks), never seen in post-training.
	Prompts string
	// NumPrompts limits the prompts used (0: 64); Samples responses are
	// drawn per prompt (0: 4).
	NumPrompts, Samples int
	// Sampling of responses (0: temperature 1, top-p 1, 64 new tokens).
	Temperature, TopP float64
	MaxNewTokens      int
	Seed              uint64
	// Workers is the number of compute goroutines (0: all cores).
	Workers int
}

func (c CompareOptions) enabled() bool {
	return len(c.HeldOut) > 0 || c.RewardModel != "" || c.Prompts != ""
}

// LossReport is the held-out loss of each precision.
type LossReport struct {
	Tokens int `json:"tokens"`
	// Loss per precision: "f32" (the input as loaded), "bf16", and the
	// output scheme ("fp8": weights and activations as an FP8 engine
	// computes them; "fp8_weights_only" without the activation rounding).
	Loss map[string]float64 `json:"loss"`
	// RelDiff is (loss(scheme) − loss(f32)) / loss(f32).
	RelDiff float64 `json:"rel_diff"`
}

// Dist summarises a sample of scores.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
	Min  float64 `json:"min"`
	P10  float64 `json:"p10"`
	P25  float64 `json:"p25"`
	P50  float64 `json:"p50"`
	P75  float64 `json:"p75"`
	P90  float64 `json:"p90"`
	Max  float64 `json:"max"`
}

// RewardReport is the reward-model score distribution of responses
// sampled from each precision.
type RewardReport struct {
	Prompts int             `json:"prompts"`
	Samples int             `json:"samples_per_prompt"`
	Scores  map[string]Dist `json:"scores"`
	// SameResponses is the fraction of (prompt, sample) pairs where both
	// precisions produced the same tokens.
	SameResponses float64 `json:"same_responses"`
}

// CompareReport is everything compare measured.
type CompareReport struct {
	HeldOut *LossReport   `json:"heldout,omitempty"`
	Reward  *RewardReport `json:"reward,omitempty"`
}

// cardEval flattens the report for the model card.
func (c *CompareReport) cardEval() map[string]float64 {
	out := map[string]float64{}
	if c.HeldOut != nil {
		for k, v := range c.HeldOut.Loss {
			out["heldout_loss_"+k] = v
		}
	}
	if c.Reward != nil {
		for k, d := range c.Reward.Scores {
			out["rm_score_mean_"+k] = d.Mean
			out["rm_score_std_"+k] = d.Std
		}
	}
	return out
}

// variant is one precision compared: the saved form of the input under
// opt, with FP8 activation emulation or not; a lossOnly variant is not
// sampled from.
type variant struct {
	name     string
	opt      checkpoint.SaveOptions
	emulate  bool
	lossOnly bool
}

// note says, for the model card, what the comparison measured.
func (c *CompareReport) note(co CompareOptions) string {
	var parts []string
	if h := c.HeldOut; h != nil {
		parts = append(parts, fmt.Sprintf("Held-out loss (nats per token) over %d tokens of the held-out documents of %s, per precision; f32 is the input model.", h.Tokens, strings.Join(co.HeldOut, ", ")))
	}
	if r := c.Reward; r != nil {
		parts = append(parts, fmt.Sprintf("Reward-model scores (by %s) of %d responses sampled per prompt for %d prompts of %s, from the BF16 model and from this one with the same seeds.", co.RewardModel, r.Samples, r.Prompts, co.Prompts))
	}
	return strings.Join(parts, " ")
}

// compare measures the saved form of params under opt against the input.
func compare(ctx context.Context, cfg model.Config, params *model.Params, opt checkpoint.SaveOptions, o Options, log *slog.Logger) (*CompareReport, error) {
	if cfg.HasScoreHead() {
		return nil, errors.New("quantize: comparison needs a language model; the input is a reward model")
	}
	be := kernels.NewCPU(o.Compare.Workers)
	defer be.Close()
	name := schemeName(opt)
	variants := []variant{
		{"f32", checkpoint.SaveOptions{DType: safetensors.F32}, false, true},
		{"bf16", checkpoint.SaveOptions{DType: safetensors.BF16}, false, false},
	}
	if name != "f32" && name != "bf16" {
		variants = append(variants, variant{name, opt, true, false})
	}
	if opt.FP8 != nil {
		variants = append(variants, variant{"fp8_weights_only", opt, false, true})
	}
	models := map[string]*model.Model{}
	for _, v := range variants {
		c, p, err := asSaved(cfg, params, v.opt)
		if err != nil {
			return nil, err
		}
		m, err := model.NewWithParams(c, p, be)
		if err != nil {
			return nil, err
		}
		if v.emulate {
			if _, err := fp8.Emulate(m); err != nil {
				return nil, err
			}
		}
		models[v.name] = m
	}
	rep := &CompareReport{}
	co := o.Compare
	if len(co.HeldOut) > 0 {
		set, err := heldOutSet(ctx, cfg, co)
		if err != nil {
			return nil, err
		}
		lr := &LossReport{Tokens: set.Targets, Loss: map[string]float64{}}
		for _, v := range variants {
			l, err := set.Loss(ctx, models[v.name])
			if err != nil {
				return nil, err
			}
			lr.Loss[v.name] = l
			log.Info("held-out loss", "precision", v.name, "loss", l, "tokens", set.Targets)
		}
		lr.RelDiff = (lr.Loss[name] - lr.Loss["f32"]) / lr.Loss["f32"]
		rep.HeldOut = lr
	}
	if co.RewardModel != "" || co.Prompts != "" {
		if co.RewardModel == "" || co.Prompts == "" {
			return nil, errors.New("quantize: reward comparison needs both a reward model and a prompts file")
		}
		var sampled []string
		for _, v := range variants {
			if !v.lossOnly {
				sampled = append(sampled, v.name)
			}
		}
		rr, err := rewardCompare(ctx, models, sampled, o, be, log)
		if err != nil {
			return nil, err
		}
		rep.Reward = rr
	}
	return rep, nil
}

// heldOutSet builds pretraining's held-out evaluation set from the shards.
func heldOutSet(ctx context.Context, cfg model.Config, co CompareOptions) (*pretrain.EvalSet, error) {
	frac := co.HeldOutFraction
	if frac == 0 {
		frac = 0.02
	}
	if !(frac > 0 && frac < 1) {
		return nil, fmt.Errorf("quantize: held-out fraction %v must be in (0, 1)", frac)
	}
	seqLen := co.SeqLen
	if seqLen <= 0 || seqLen > cfg.MaxPositionEmbeddings {
		seqLen = cfg.MaxPositionEmbeddings
	}
	tokens := co.EvalTokens
	if tokens <= 0 {
		tokens = 16384
	}
	batch := co.Batch
	if batch <= 0 {
		batch = 8
	}
	src := []pretrain.Source{{Name: "heldout", Paths: co.HeldOut}}
	set, err := pretrain.BuildEvalSet(ctx, src, nil, frac, cfg.VocabSize, seqLen, batch, tokens)
	if err != nil {
		return nil, fmt.Errorf("quantize: held-out set: %w", err)
	}
	return set, nil
}

// TaskPrompts as CompareOptions.Prompts draws the prompts from the
// held-out split of the built-in tasks.
const TaskPrompts = "tasks"

// readPrompts reads up to n prompts from a JSONL file (or TaskPrompts).
func readPrompts(path string, n int) ([]string, error) {
	if path == TaskPrompts {
		names := tasks.Names()
		ps, err := tasks.Problems(names, (n+len(names)-1)/len(names), 1, true)
		if err != nil {
			return nil, err
		}
		// Round robin over the tasks, so every task has its share.
		byTask := map[string][]string{}
		for _, p := range ps {
			byTask[p.Task] = append(byTask[p.Task], p.Prompt)
		}
		var out []string
		for i := 0; len(out) < n; i++ {
			added := false
			for _, name := range names {
				if i < len(byTask[name]) && len(out) < n {
					out = append(out, byTask[name][i])
					added = true
				}
			}
			if !added {
				break
			}
		}
		return out, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("quantize: prompts: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var out []string
	for line := 1; sc.Scan() && len(out) < n; line++ {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var row struct {
			Prompt   json.RawMessage     `json:"prompt"`
			Messages []tokenizer.Message `json:"messages"`
		}
		if err := json.Unmarshal(b, &row); err != nil {
			return nil, fmt.Errorf("quantize: %s:%d: %w", path, line, err)
		}
		var p string
		if len(row.Prompt) > 0 && json.Unmarshal(row.Prompt, &p) == nil && p != "" {
			out = append(out, p)
			continue
		}
		i := slices.IndexFunc(row.Messages, func(m tokenizer.Message) bool { return m.Role == "user" })
		if i < 0 {
			return nil, fmt.Errorf("quantize: %s:%d: no \"prompt\" string and no user message", path, line)
		}
		out = append(out, row.Messages[i].Content)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("quantize: %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("quantize: %s holds no prompts", path)
	}
	return out, nil
}

// rewardCompare samples responses from each named model for the same
// prompts and seeds, and scores them with the reward model.
func rewardCompare(ctx context.Context, models map[string]*model.Model, names []string, o Options, be kernels.Backend, log *slog.Logger) (*RewardReport, error) {
	co := o.Compare
	np, k := cmpOr(co.NumPrompts, 64), cmpOr(co.Samples, 4)
	prompts, err := readPrompts(co.Prompts, np)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(o.Model)
	if err != nil {
		return nil, fmt.Errorf("quantize: the policy's tokenizer: %w", err)
	}
	rcfg, rparams, err := checkpoint.LoadModel(co.RewardModel)
	if err != nil {
		return nil, err
	}
	if !rcfg.HasScoreHead() || rcfg.NumLabels != 1 {
		return nil, fmt.Errorf("quantize: %s is not a reward model (one-label sequence classifier)", co.RewardModel)
	}
	rm, err := model.NewWithParams(rcfg, rparams, be)
	if err != nil {
		return nil, err
	}
	pad := int32(0)
	if rcfg.PadTokenID != nil {
		pad = int32(*rcfg.PadTokenID)
	}
	var ids [][]int32
	for _, p := range prompts {
		c, err := tok.RenderChat([]tokenizer.Message{{Role: "user", Content: p}}, tokenizer.ChatOptions{AddGenerationPrompt: true})
		if err != nil {
			return nil, err
		}
		for range k {
			ids = append(ids, c.IDs)
		}
	}
	var stop []int32
	for _, s := range []string{tokenizer.EOT, tokenizer.EOM, tokenizer.EndOfText} {
		if id, ok := tok.SpecialID(s); ok {
			stop = append(stop, id)
		}
	}
	sopt := model.SampleOptions{Temperature: co.Temperature, TopP: co.TopP, MaxTokens: cmpOr(co.MaxNewTokens, 64), StopTokens: stop, Seed: co.Seed}
	if sopt.Temperature == 0 {
		sopt.Temperature = 1
	}
	rep := &RewardReport{Prompts: len(prompts), Samples: k, Scores: map[string]Dist{}}
	var first [][]int32
	for _, name := range names {
		m := models[name]
		limit := m.Config.MaxPositionEmbeddings
		for _, p := range ids {
			if len(p)+sopt.MaxTokens > limit {
				return nil, fmt.Errorf("quantize: a prompt of %d tokens plus %d new tokens exceeds the model's context %d", len(p), sopt.MaxTokens, limit)
			}
		}
		gens, err := m.Generate(ctx, ids, sopt)
		if err != nil {
			return nil, err
		}
		scores := make([]float64, 0, len(gens))
		var resp, seqs [][]int32
		for i, g := range gens {
			resp = append(resp, g.Tokens)
			text := responseText(tok, g.Tokens)
			c, err := tok.RenderChat([]tokenizer.Message{{Role: "user", Content: prompts[i/k]}, {Role: "assistant", Content: text}}, tokenizer.ChatOptions{})
			if err != nil {
				return nil, err
			}
			seq := c.IDs
			if len(seq) > rcfg.MaxPositionEmbeddings {
				seq = seq[:rcfg.MaxPositionEmbeddings]
			}
			seqs = append(seqs, seq)
		}
		for lo := 0; lo < len(seqs); lo += scoreBatch {
			r, err := posttrain.Rewards(rm, seqs[lo:min(lo+scoreBatch, len(seqs))], pad)
			if err != nil {
				return nil, err
			}
			scores = append(scores, r...)
		}
		rep.Scores[name] = summarize(scores)
		log.Info("reward scores", "precision", name, "mean", rep.Scores[name].Mean, "std", rep.Scores[name].Std)
		if first == nil {
			first = resp
		} else {
			same := 0
			for i := range resp {
				if slices.Equal(resp[i], first[i]) {
					same++
				}
			}
			rep.SameResponses = float64(same) / float64(len(resp))
		}
	}
	return rep, nil
}

// scoreBatch is the number of sequences the reward model scores at once.
const scoreBatch = 16

// responseText is the text of generated tokens without special tokens,
// invalid UTF-8 (a sample may stop inside a character) replaced by U+FFFD
// as rejection sampling does before scoring.
func responseText(tok *tokenizer.Tokenizer, ids []int32) string {
	var b []byte
	for _, t := range ids {
		if !tok.IsSpecial(t) {
			b = append(b, tok.Token(t)...)
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// summarize computes mean, standard deviation and quantiles (linear
// interpolation between order statistics).
func summarize(x []float64) Dist {
	d := Dist{N: len(x)}
	if len(x) == 0 {
		return d
	}
	s := slices.Clone(x)
	slices.Sort(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	d.Mean = sum / float64(len(s))
	var ss float64
	for _, v := range s {
		ss += (v - d.Mean) * (v - d.Mean)
	}
	if len(s) > 1 {
		d.Std = math.Sqrt(ss / float64(len(s)-1))
	}
	q := func(p float64) float64 {
		pos := p * float64(len(s)-1)
		lo := int(math.Floor(pos))
		hi := min(lo+1, len(s)-1)
		return s[lo] + (pos-float64(lo))*(s[hi]-s[lo])
	}
	d.Min, d.P10, d.P25, d.P50, d.P75, d.P90, d.Max = s[0], q(0.1), q(0.25), q(0.5), q(0.75), q(0.9), s[len(s)-1]
	return d
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// roundF16 rounds values to float16 in place, as an F16 save stores them.
func roundF16(x []float32) {
	for i, v := range x {
		x[i] = float16.Fromfloat32(v).Float32()
	}
}
