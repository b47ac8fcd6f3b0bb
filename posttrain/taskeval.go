package posttrain

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/checkpoint/fp8"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/tasks"
)

// TaskEvalOptions configure evalTasks.
type TaskEvalOptions struct {
	// Tasks are the built-in task families (empty: all).
	Tasks []string
	// N is the number of held-out prompts per task (default 64).
	N int
	// K, when above 1, also samples K responses per prompt at
	// Temperature/TopP and reports pass@K (any of the K correct).
	K           int
	Temperature float64 // default 0.8 when K > 1
	TopP        float64 // default 0.95 when K > 1
	// MaxTokens bounds a response (default 16: every built-in answer is
	// a handful of tokens).
	MaxTokens int
	// Seed draws the prompts and the samples.
	Seed uint64
	// Batch is the number of prompts decoded together (default 64).
	Batch int
}

func (o *TaskEvalOptions) defaults() {
	if o.N <= 0 {
		o.N = 64
	}
	if o.K > 1 && o.Temperature == 0 {
		o.Temperature = 0.8
	}
	if o.K > 1 && o.TopP == 0 {
		o.TopP = 0.95
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = 16
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
}

// TaskScore is one task family's result.
type TaskScore struct {
	Task  string  `json:"task"`
	N     int     `json:"n"`
	Pass1 float64 `json:"pass@1"`           // greedy response correct
	K     int     `json:"k,omitempty"`      // samples for PassK
	PassK float64 `json:"pass@k,omitempty"` // any of K samples correct
	// RMAccuracy is the fraction of held-out (correct, wrong) answer pairs
	// the reward model orders correctly (evalRM only).
	RMAccuracy float64 `json:"rm_accuracy,omitempty"`
	// Examples are the first greedy responses (evalTasks only).
	Examples []TaskExample `json:"examples,omitempty"`
}

// TaskExample is one greedy response to a held-out prompt.
type TaskExample struct {
	Prompt   string `json:"prompt"`
	Response string `json:"response"`
	Pass     bool   `json:"pass"`
}

// examplesPerTask is how many greedy responses a TaskScore keeps.
const examplesPerTask = 3

// chatPrompt renders a user prompt as the Llama 3.1 chat template does,
// ending with the assistant header.
func chatPrompt(tok *tokenizer.Tokenizer, prompt string) ([]int32, error) {
	c, err := tok.RenderChat([]tokenizer.Message{{Role: "user", Content: prompt}}, tokenizer.ChatOptions{AddGenerationPrompt: true})
	if err != nil {
		return nil, err
	}
	return c.IDs, nil
}

// stopTokens end an assistant turn: <|eot_id|>, <|eom_id|>, <|end_of_text|>.
func stopTokens(tok *tokenizer.Tokenizer) []int32 {
	var stop []int32
	for _, name := range []string{tokenizer.EOT, tokenizer.EOM, tokenizer.EndOfText} {
		if id, ok := tok.SpecialID(name); ok {
			stop = append(stop, id)
		}
	}
	return stop
}

// responseText is the text of generated tokens, special tokens dropped
// and invalid UTF-8 (a sample may stop inside a character) replaced by
// U+FFFD.
func responseText(tok *tokenizer.Tokenizer, ids []int32) string {
	var b strings.Builder
	for _, t := range ids {
		if !tok.IsSpecial(t) {
			b.Write(tok.Token(t))
		}
	}
	return strings.ToValidUTF8(b.String(), "\uFFFD")
}

// evalTasks scores a language model on held-out prompts of the built-in
// tasks: pass@1 with greedy decoding and, with K > 1, pass@K over K
// sampled responses, per task family.
func evalTasks(ctx context.Context, m *model.Model, tok *tokenizer.Tokenizer, o TaskEvalOptions) ([]TaskScore, error) {
	o.defaults()
	probs, err := tasks.Problems(o.Tasks, o.N, o.Seed, true)
	if err != nil {
		return nil, err
	}
	ids := make([][]int32, len(probs))
	for i, p := range probs {
		if ids[i], err = chatPrompt(tok, p.Prompt); err != nil {
			return nil, err
		}
		// A short context shortens the responses (every built-in answer is
		// a few tokens); it must leave room for one.
		room := m.Config.MaxPositionEmbeddings - len(ids[i])
		if room < 2 {
			return nil, fmt.Errorf("task prompt %q (%d tokens) leaves no room for an answer in the model's context of %d", p.Prompt, len(ids[i]), m.Config.MaxPositionEmbeddings)
		}
		o.MaxTokens = min(o.MaxTokens, room)
	}
	stop := stopTokens(tok)
	pass1 := make([]bool, len(probs))
	passK := make([]bool, len(probs))
	responses := make([]string, len(probs))
	for lo := 0; lo < len(probs); lo += o.Batch {
		hi := min(lo+o.Batch, len(probs))
		greedy, err := m.Generate(ctx, ids[lo:hi], model.SampleOptions{MaxTokens: o.MaxTokens, StopTokens: stop})
		if err != nil {
			return nil, err
		}
		for i, g := range greedy {
			resp := responseText(tok, g.Tokens)
			ok, _ := verifyProblem(probs[lo+i], resp)
			pass1[lo+i] = ok
			responses[lo+i] = resp
		}
		if o.K > 1 {
			res, err := m.GenerateShared(ctx, ids[lo:hi], o.K, model.SampleOptions{Temperature: o.Temperature, TopP: o.TopP,
				MaxTokens: o.MaxTokens, StopTokens: stop, Seed: o.Seed}, func(i, j int) uint64 { return uint64((lo+i)*o.K + j) })
			if err != nil {
				return nil, err
			}
			for i, samples := range res.Samples {
				for _, g := range samples {
					if ok, _ := verifyProblem(probs[lo+i], responseText(tok, g.Tokens)); ok {
						passK[lo+i] = true
					}
				}
			}
		}
	}
	scores := scoreByTask(probs, pass1, passK, o.K)
	for i := range scores {
		for j, p := range probs {
			if p.Task == scores[i].Task && len(scores[i].Examples) < examplesPerTask {
				scores[i].Examples = append(scores[i].Examples, TaskExample{Prompt: p.Prompt, Response: responses[j], Pass: pass1[j]})
			}
		}
	}
	return scores, nil
}

// verifyProblem checks a response with the problem's task.
func verifyProblem(p tasks.Problem, response string) (bool, error) {
	t, err := tasks.Get(p.Task)
	if err != nil {
		return false, err
	}
	return t.Verify(p.Prompt, response)
}

// scoreByTask averages the per-problem results by task, in task order.
func scoreByTask(probs []tasks.Problem, pass1, passK []bool, k int) []TaskScore {
	var out []TaskScore
	at := map[string]int{}
	for i, p := range probs {
		j, ok := at[p.Task]
		if !ok {
			j = len(out)
			at[p.Task] = j
			out = append(out, TaskScore{Task: p.Task})
			if k > 1 {
				out[j].K = k
			}
		}
		s := &out[j]
		s.N++
		if pass1[i] {
			s.Pass1++
		}
		if k > 1 && passK[i] {
			s.PassK++
		}
	}
	for i := range out {
		out[i].Pass1 /= float64(out[i].N)
		out[i].PassK /= float64(out[i].N)
	}
	slices.SortFunc(out, func(a, b TaskScore) int { return strings.Compare(a.Task, b.Task) })
	return out
}

// MeanPass1 is the average pass@1 over task families.
func MeanPass1(scores []TaskScore) float64 {
	if len(scores) == 0 {
		return 0
	}
	var s float64
	for _, t := range scores {
		s += t.Pass1
	}
	return s / float64(len(scores))
}

// evalRM measures a reward model on held-out task prompts: the fraction
// of (correct answer, wrong answer) pairs it rewards in the right order,
// per task family.
func evalRM(ctx context.Context, rm *model.Model, tok *tokenizer.Tokenizer, o TaskEvalOptions) ([]TaskScore, error) {
	o.defaults()
	probs, err := tasks.Problems(o.Tasks, o.N, o.Seed, true)
	if err != nil {
		return nil, err
	}
	pad := int32(padToken(tok))
	rng := rand.New(rand.NewPCG(o.Seed, 0x726d))
	good := make([]bool, len(probs))
	for i, p := range probs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t, err := tasks.Get(p.Task)
		if err != nil {
			return nil, err
		}
		var seqs [][]int32
		for _, answer := range []string{p.Answer, t.Wrong(rng, p.Prompt, p.Answer)} {
			c, err := tok.RenderChat([]tokenizer.Message{{Role: "user", Content: p.Prompt}, {Role: "assistant", Content: answer}}, tokenizer.ChatOptions{})
			if err != nil {
				return nil, err
			}
			seqs = append(seqs, c.IDs)
		}
		r, err := Rewards(rm, seqs, pad)
		if err != nil {
			return nil, err
		}
		good[i] = r[0] > r[1]
	}
	scores := scoreByTask(probs, good, nil, 0)
	for i := range scores {
		scores[i].RMAccuracy, scores[i].Pass1 = scores[i].Pass1, 0
	}
	return scores, nil
}

// EvalModelDir loads a model directory (a language model, or with rm a
// reward model) with its tokenizer and runs evalTasks (or evalRM) on it.
func EvalModelDir(ctx context.Context, dir string, workers int, o TaskEvalOptions, rm bool) ([]TaskScore, error) {
	be := kernels.NewCPU(workers)
	defer be.Close()
	return evalDir(ctx, dir, be, o, rm)
}

// evalDir is EvalModelDir on a given backend.
func evalDir(ctx context.Context, dir string, be kernels.Backend, o TaskEvalOptions, rm bool) ([]TaskScore, error) {
	cfg, params, err := checkpoint.LoadModel(dir)
	if err != nil {
		return nil, err
	}
	if cfg.HasScoreHead() != rm {
		if rm {
			return nil, fmt.Errorf("%s is not a reward model (%s)", dir, model.SequenceClassifier)
		}
		return nil, fmt.Errorf("%s is a reward model; pass it with -rm", dir)
	}
	m, err := model.NewWithParams(cfg, params, be)
	if err != nil {
		return nil, err
	}
	if _, err := fp8.Emulate(m); err != nil { // an FP8 directory runs as its engine would
		return nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if rm {
		return evalRM(ctx, m, tok, o)
	}
	return evalTasks(ctx, m, tok, o)
}
