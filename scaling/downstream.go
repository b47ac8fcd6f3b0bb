package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/tasks"
)

// Item is one multiple-choice problem: the question, its choices and the
// index of the correct one.
type Item struct {
	Question string   `json:"question"`
	Choices  []string `json:"choices"`
	Answer   int      `json:"answer"`
}

// maxItemLine bounds one JSONL line of items.
const maxItemLine = 1 << 20

// readItems parses a JSONL of {"question", "choices", "answer"} rows
// (answer: the 0-based index of the correct choice; blank lines and lines
// starting with # are skipped). Errors name the line.
func readItems(r io.Reader, name string) ([]Item, error) {
	var items []Item
	err := scanJSONL(r, name, maxItemLine, func(line int, dec *json.Decoder) error {
		var raw struct {
			Question *string
			Choices  []string
			Answer   *int
		}
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%s:%d: %v (want {\"question\": \"…\", \"choices\": [\"…\", …], \"answer\": index})", name, line, err)
		}
		switch {
		case raw.Question == nil || strings.TrimSpace(*raw.Question) == "":
			return fmt.Errorf("%s:%d: question is missing or empty", name, line)
		case len(raw.Choices) < 2:
			return fmt.Errorf("%s:%d: choices needs at least 2 entries, got %d", name, line, len(raw.Choices))
		case raw.Answer == nil:
			return fmt.Errorf("%s:%d: answer (the index of the correct choice) is missing", name, line)
		case *raw.Answer < 0 || *raw.Answer >= len(raw.Choices):
			return fmt.Errorf("%s:%d: answer %d is not an index of the %d choices (0-based)", name, line, *raw.Answer, len(raw.Choices))
		}
		for i, c := range raw.Choices {
			if c == "" {
				return fmt.Errorf("%s:%d: choices[%d] is empty", name, line, i)
			}
		}
		items = append(items, Item{Question: *raw.Question, Choices: raw.Choices, Answer: *raw.Answer})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no items", name)
	}
	return items, nil
}

func (d DownstreamSpec) active() bool { return d.File != "" || len(d.Tasks) > 0 }

// Items returns the task set: the file's items, or n held-out problems of
// each built-in task with its answer and choices−1 distinct wrong answers
// (from the task's Wrong) in a seeded order.
func (d DownstreamSpec) Items() ([]Item, error) {
	if d.File != "" {
		f, err := os.Open(d.File)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readItems(f, d.File)
	}
	probs, err := tasks.Problems(d.Tasks, d.N, d.Seed, true)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(d.Seed, 0xd0))
	var items []Item
	for _, p := range probs {
		t, err := tasks.Get(p.Task)
		if err != nil {
			return nil, err
		}
		choices := []string{p.Answer}
		for try := 0; len(choices) < d.Choices && try < 20*d.Choices; try++ {
			if w := t.Wrong(rng, p.Prompt, p.Answer); !slices.Contains(choices, w) {
				choices = append(choices, w)
			}
		}
		if len(choices) < 2 {
			continue
		}
		rng.Shuffle(len(choices), func(i, j int) { choices[i], choices[j] = choices[j], choices[i] })
		items = append(items, Item{Question: p.Prompt, Choices: choices, Answer: slices.Index(choices, p.Answer)})
	}
	return items, nil
}

// Downstream is a model's score on a task set.
type Downstream struct {
	// NLL is the mean over items of the correct choice's negative
	// log-likelihood per token given the question.
	NLL float64 `json:"nll"`
	// Accuracy is the fraction of items whose correct choice has the
	// lowest per-token NLL.
	Accuracy float64 `json:"accuracy"`
	Items    int     `json:"items"`
}

// scoreModel scores the model directory (with its tokenizer files) on
// the items: each choice follows the question and a newline, after BOS
// when the tokenizer has one.
func scoreModel(ctx context.Context, dir string, items []Item, workers int) (Downstream, error) {
	cfg, params, err := checkpoint.LoadModel(dir)
	if err != nil {
		return Downstream{}, err
	}
	be := kernels.NewCPU(workers)
	defer be.Close()
	m, err := model.NewWithParams(cfg, params, be)
	if err != nil {
		return Downstream{}, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return Downstream{}, fmt.Errorf("%s: tokenizer: %w", dir, err)
	}
	var bos []int32
	if id, ok := tok.SpecialID(tok.Config().BOS); ok && tok.Config().BOS != "" {
		bos = []int32{id}
	}
	maxT := cfg.MaxPositionEmbeddings
	var res Downstream
	var ids, targets []int32
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		q := tok.AppendEncode(slices.Clone(bos), []byte(it.Question+"\n"), false)
		best, bestNLL, correct := -1, math.Inf(1), 0.0
		for ci, c := range it.Choices {
			ids = append(ids[:0], q...)
			ids = tok.AppendEncode(ids, []byte(c), false)
			n := len(ids) - len(q)
			if n == 0 {
				continue
			}
			if maxT > 0 && len(ids) > maxT {
				return res, fmt.Errorf("item %q: %d tokens exceed the model's %d positions", clipText(it.Question), len(ids), maxT)
			}
			targets = targets[:0]
			for i := range ids {
				t := int32(-1)
				if i+1 >= len(q) && i+1 < len(ids) {
					t = ids[i+1]
				}
				targets = append(targets, t)
			}
			nll, err := m.Forward(&model.Batch{B: 1, T: len(ids), Tokens: ids, Targets: targets})
			if err != nil {
				return res, err
			}
			var s float64
			for i, v := range nll {
				if targets[i] >= 0 {
					s += float64(v)
				}
			}
			s /= float64(n)
			if s < bestNLL {
				best, bestNLL = ci, s
			}
			if ci == it.Answer {
				correct = s
			}
		}
		res.NLL += correct
		if best == it.Answer {
			res.Accuracy++
		}
		res.Items++
	}
	if res.Items == 0 {
		return res, errors.New("no items to score")
	}
	res.NLL /= float64(res.Items)
	res.Accuracy /= float64(res.Items)
	return res, nil
}

func clipText(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Sigmoid maps a normalised NLL to accuracy: Floor + (1 − Floor) /
// (1 + exp(K·(nll − X0))), Floor being chance (1/choices).
type Sigmoid struct {
	Floor float64 `json:"floor"`
	K     float64 `json:"k"`
	X0    float64 `json:"x0"`
}

// At is the accuracy the sigmoid gives at nll.
func (s Sigmoid) At(nll float64) float64 {
	return s.Floor + (1-s.Floor)/(1+math.Exp(s.K*(nll-s.X0)))
}

// fitSigmoid fits K and X0 by least squares on (nll, accuracy) pairs.
func fitSigmoid(nll, acc []float64, floor float64) (Sigmoid, error) {
	if len(nll) < 2 {
		return Sigmoid{}, errors.New("sigmoid fit: need at least 2 runs")
	}
	// Least squares with its gradient in (K, X0).
	fg := func(x, g []float64) float64 {
		s := Sigmoid{Floor: floor, K: x[0], X0: x[1]}
		g[0], g[1] = 0, 0
		var sum float64
		for i := range nll {
			z := s.K * (nll[i] - s.X0)
			e := math.Exp(z)
			p := 1 / (1 + e)
			d := s.Floor + (1-s.Floor)*p - acc[i]
			sum += d * d
			dp := -(1 - s.Floor) * p * p * e // ∂acc/∂z
			if math.IsInf(e, 1) {
				dp = 0
			}
			g[0] += 2 * d * dp * (nll[i] - s.X0)
			g[1] += 2 * d * dp * -s.K
		}
		return sum
	}
	best := Sigmoid{Floor: floor}
	bestF := math.Inf(1)
	mid := percentiles(nll, 0).Lo
	for _, k := range []float64{0.5, 2, 8} {
		for _, x0 := range []float64{mid - 1, mid, mid + 1} {
			res := minimise(fg, []float64{k, x0}, 10, 500, 1e-12)
			if res.F < bestF && finiteAll(res.X) {
				bestF = res.F
				best.K, best.X0 = res.X[0], res.X[1]
			}
		}
	}
	if math.IsInf(bestF, 1) {
		return best, errors.New("sigmoid fit did not converge")
	}
	return best, nil
}

// DownstreamFit is the two-stage forecast: NLL(C) = Coef·C^Exp, then the
// sigmoid from NLL to accuracy.
type DownstreamFit struct {
	Runs    []DownstreamRun `json:"runs"`
	NLL     PowerLaw        `json:"nll_vs_flops"`
	Sigmoid Sigmoid         `json:"sigmoid"`
}

// DownstreamRun is one run's downstream score.
type DownstreamRun struct {
	Run   string  `json:"run"`
	FLOPs float64 `json:"flops"`
	Downstream
}

// fitDownstream fits the two stages on scored runs; floor is chance.
func fitDownstream(runs []DownstreamRun, floor float64) (*DownstreamFit, error) {
	var lc, ln, nll, acc []float64
	for _, r := range runs {
		lc = append(lc, math.Log(r.FLOPs))
		ln = append(ln, math.Log(r.NLL))
		nll = append(nll, r.NLL)
		acc = append(acc, r.Accuracy)
	}
	line, err := fitLine(lc, ln)
	if err != nil {
		return nil, fmt.Errorf("downstream NLL vs FLOPs: %w", err)
	}
	sig, err := fitSigmoid(nll, acc, floor)
	if err != nil {
		return nil, err
	}
	return &DownstreamFit{Runs: runs, NLL: PowerLaw{Coef: math.Exp(line.Intercept), Exp: line.Slope}, Sigmoid: sig}, nil
}
