package posttrain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/chatdata"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/model/modeltest"
)

// scoreOut is one output line of Score.
type scoreOut struct {
	Line                             int
	Reward, Chosen, Rejected, Edited *float64
	Error                            string
}

// readScores decodes Score's output, one JSON object a line.
func readScores(t testing.TB, out []byte) []scoreOut {
	t.Helper()
	var res []scoreOut
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		var s scoreOut
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		res = append(res, s)
	}
	return res
}

// rewardOf is the float64 reward of ids: the final hidden state of the
// last token (the sequence alone, unpadded) times score.weight.
func rewardOf(c model.Config, w map[string][]float64, ids []int32) float64 {
	_, hidden := modeltest.Forward(c, w, &model.Batch{B: 1, T: len(ids), Tokens: ids})
	var r float64
	for j, h := range hidden[len(ids)-1] {
		r += h * w[model.ScoreWeight][j]
	}
	return r
}

// TestRewardModelDir trains a reward model for a few steps (with edited
// responses ranked first) and checks its final/ directory is a Hugging
// Face LlamaForSequenceClassification with one label — config.json, the
// tensors by name and shape read from the safetensors header, the
// tokenizer — and that Score's rewards for preference and SFT rows are
// the float64 recomputation: each sequence alone, the hidden state at its
// last token times score.weight.
func TestRewardModelDir(t *testing.T) {
	start := time.Now()
	tok := testTokenizer(t)
	c := tinyLM()
	dir := traintest.SaveModel(t, c, initParams(c, 23), tok)
	rows := taskRows(t, true, 24, 13)
	for i := 0; i < len(rows); i += 2 { // every other row has an edited response
		var row map[string]string
		if err := json.Unmarshal([]byte(rows[i]), &row); err != nil {
			t.Fatal(err)
		}
		row["edited"] = "The answer is " + row["chosen"]
		b, _ := json.Marshal(row)
		rows[i] = string(b)
	}
	r := testRecipe(t, KindRM, dir, 3, 4, writeLines(t, rows))
	r.Data.UseEdited = true
	r.Optim.LR = 1e-3
	res, err := Run(context.Background(), r, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	final := filepath.Join(r.Out, FinalDir)
	if res.Final != final || res.Steps != 3 {
		t.Fatalf("result: final %q, %d steps", res.Final, res.Steps)
	}
	recs := trainRecords(t, r.Out)
	if len(recs) != 3 {
		t.Fatalf("%d training records, want 3", len(recs))
	}
	for _, rec := range recs {
		if l := value(t, rec, "loss"); !(l > 0) || math.IsInf(l, 0) {
			t.Errorf("step %d: loss %g", rec.Step, l)
		}
		value(t, rec, "accuracy")
	}

	// The model card says how the reward model was made and what it scored.
	readme, err := os.ReadFile(filepath.Join(final, checkpoint.ReadmeFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"reward model (LlamaForSequenceClassification", "Bradley–Terry reward model", "3 steps",
		"base model: `" + dir + "`"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("final/README.md lacks %q:\n%s", want, readme)
		}
	}

	// config.json, read as plain JSON.
	var cj map[string]any
	data, err := os.ReadFile(filepath.Join(final, checkpoint.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cj); err != nil {
		t.Fatal(err)
	}
	pad := traintest.SpecialID(t, tok, tokenizer.FinetunePad)
	if a, ok := cj["architectures"].([]any); !ok || len(a) != 1 || a[0] != model.SequenceClassifier {
		t.Errorf("architectures %v, want [%s]", cj["architectures"], model.SequenceClassifier)
	}
	if cj["num_labels"] != 1.0 || cj["pad_token_id"] != float64(pad) || cj["vocab_size"] != float64(c.VocabSize) || cj["hidden_size"] != float64(c.HiddenSize) {
		t.Errorf("num_labels %v, pad_token_id %v (want 1 and %d), vocab_size %v, hidden_size %v", cj["num_labels"], cj["pad_token_id"], pad, cj["vocab_size"], cj["hidden_size"])
	}

	// The tensors: the language model's trunk, score.weight [1, hidden]
	// and no lm_head.
	got := readSafetensorsHeader(t, filepath.Join(final, checkpoint.WeightsFile))
	want := readSafetensorsHeader(t, filepath.Join(dir, checkpoint.WeightsFile))
	delete(want, "lm_head.weight")
	want[model.ScoreWeight] = tensorHeader{DType: "F32", Shape: []int{1, c.HiddenSize}}
	for name, h := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("final/ lacks %s", name)
		} else if g.DType != h.DType || !slices.Equal(g.Shape, h.Shape) {
			t.Errorf("%s: %s %v, want %s %v", name, g.DType, g.Shape, h.DType, h.Shape)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("final/ has an unexpected tensor %s", name)
		}
	}
	for _, name := range []string{tokenizer.TokenizerFile, tokenizer.ConfigFile} {
		if _, err := os.Stat(filepath.Join(final, name)); err != nil {
			t.Errorf("tokenizer file: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(final, checkpoint.GenerationConfigFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a reward model has a %s (%v)", checkpoint.GenerationConfigFile, err)
	}

	// Score, against the float64 recomputation.
	input := strings.Join([]string{
		rows[0], // with edited
		rows[1],
		"",
		`{"prompt": "What is 2 + 2?", "completion": "4"}`,
		`{"messages": [{"role": "user", "content": "Sort: 3 1 2"}, {"role": "assistant", "content": "1 2 3"}]}`,
		`not json`,
		`{"prompt": "What is 2 + 2?", "chosen": "4"}`,
	}, "\n") + "\n"
	var out bytes.Buffer
	sum, err := Score(context.Background(), final, strings.NewReader(input), "input.jsonl", &out, ScoreOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if sum != (ScoreSummary{Rows: 6, Scored: 4, Bad: 2}) {
		t.Errorf("summary %+v, want 6 rows, 4 scored, 2 bad", sum)
	}
	scores := readScores(t, out.Bytes())
	if len(scores) != 6 {
		t.Fatalf("%d output lines, want 6:\n%s", len(scores), out.String())
	}
	ftok, err := tokenizer.Load(final)
	if err != nil {
		t.Fatal(err)
	}
	cfg, params, err := checkpoint.LoadModel(final)
	if err != nil {
		t.Fatal(err)
	}
	w := modeltest.Weights(params)
	enc, err := chatdata.NewEncoder(ftok, chatdata.EncodeOptions{SeqLen: cfg.MaxPositionEmbeddings})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(input, "\n")
	worst := 0.0
	cmp := func(line int, what string, got *float64, ids []int32) {
		t.Helper()
		if got == nil {
			t.Errorf("line %d: no %s reward", line, what)
			return
		}
		want := rewardOf(cfg, w, ids)
		worst = math.Max(worst, relErr(*got, want, 1e-3))
		if !modeltest.Close(*got, want, 1e-4, 1e-6) {
			t.Errorf("line %d: %s reward %.7g, float64 %.7g", line, what, *got, want)
		}
	}
	for _, s := range scores {
		line := []byte(lines[s.Line-1])
		switch s.Line {
		case 1, 2:
			row, err := chatdata.ParsePref(line)
			if err != nil {
				t.Fatal(err)
			}
			ex, err := enc.Pref(row)
			if err != nil {
				t.Fatal(err)
			}
			cmp(s.Line, "chosen", s.Chosen, ex.Chosen.IDs)
			cmp(s.Line, "rejected", s.Rejected, ex.Rejected.IDs)
			if (ex.Edited != nil) != (s.Edited != nil) {
				t.Errorf("line %d: edited reward %v, edited response %v", s.Line, s.Edited, ex.Edited != nil)
			} else if ex.Edited != nil {
				cmp(s.Line, "edited", s.Edited, ex.Edited.IDs)
			}
			if s.Reward != nil || s.Error != "" {
				t.Errorf("line %d: %+v", s.Line, s)
			}
		case 4, 5:
			row, err := chatdata.ParseSFT(line)
			if err != nil {
				t.Fatal(err)
			}
			ex, err := enc.SFT(row)
			if err != nil {
				t.Fatal(err)
			}
			cmp(s.Line, "conversation", s.Reward, ex.IDs)
			if s.Chosen != nil || s.Error != "" {
				t.Errorf("line %d: %+v", s.Line, s)
			}
		case 6, 7:
			if s.Error == "" || s.Reward != nil || s.Chosen != nil {
				t.Errorf("line %d (bad): %+v", s.Line, s)
			}
		default:
			t.Errorf("output for line %d", s.Line)
		}
	}
	if scores[0].Edited == nil {
		t.Error("the row with an edited response has no edited reward")
	}
	t.Logf("Score vs float64: worst relative error %.3g; %v", worst, time.Since(start))

	// A language model is not a reward model.
	if _, err := Score(context.Background(), dir, strings.NewReader(rows[0]), "x", &out, ScoreOptions{Workers: 1}); err == nil || !strings.Contains(err.Error(), "not a reward model") {
		t.Errorf("scoring with a language model: %v", err)
	}
}

// TestRewards checks Rewards' input handling: nothing to score, an empty
// sequence, and sequences of different lengths, each read at its own last
// token whatever the padding.
func TestRewards(t *testing.T) {
	lm := modeltest.TinyConfig(false, false)
	c, p := withRewardHead(lm, initParams(lm, 3), 0, 1)
	m, err := model.NewWithParams(c, p, kernels.NewSerial())
	if err != nil {
		t.Fatal(err)
	}
	w := modeltest.Weights(p)
	cases := []struct {
		name    string
		seqs    [][]int32
		wantErr bool
	}{
		{"none", nil, false},
		{"empty sequence", [][]int32{{1, 2}, {}}, true},
		{"one token", [][]int32{{5}}, false},
		{"different lengths", [][]int32{{1, 2, 3}, {4, 5, 6, 7, 8, 9}, {10, 0}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Rewards(m, tc.seqs, 0)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want an error: %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if len(got) != len(tc.seqs) {
				t.Fatalf("%d rewards for %d sequences", len(got), len(tc.seqs))
			}
			for i, s := range tc.seqs {
				if want := rewardOf(c, w, s); !modeltest.Close(got[i], want, 1e-4, 1e-6) {
					t.Errorf("sequence %d: reward %.7g, float64 %.7g", i, got[i], want)
				}
			}
		})
	}
}

// FuzzScore feeds Score arbitrary bytes as its JSONL input: it must not
// panic, fail or hang, must answer every non-blank line once, in order,
// and every scored line must carry finite rewards of the right kind.
func FuzzScore(f *testing.F) {
	tok := testTokenizer(f)
	lm := tinyLM()
	c, p := withRewardHead(lm, initParams(lm, 5), padToken(tok), 7)
	dir := traintest.SaveModel(f, c, p, tok)
	for _, seed := range []string{
		`{"prompt": "What is 1 + 2?", "chosen": "3", "rejected": "4"}`,
		`{"prompt": "Sort: 2 1", "chosen": "1 2", "rejected": "2 1", "edited": "1 2."}` + "\n" + `{"prompt": "Hi", "completion": "yes"}`,
		`{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "no"}]}` + "\r\n\r\n",
		`{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "yes"}], "rejected": [{"role": "assistant", "content": "no"}]}`,
		"\x00\xff garbage {\n null\n[]\n{\"chosen\": 1}\n{\"messages\": []}\n\"x\"",
		`{"prompt": "` + strings.Repeat("long ", 2000) + `", "completion": "x"}`,
		`{"prompt": "` + strings.Repeat("a b ", 100) + `", "completion": "too many tokens"}`,
		"",
	} {
		f.Add([]byte(seed))
	}
	const maxLine = 4096
	f.Fuzz(func(t *testing.T, in []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var out bytes.Buffer
		sum, err := Score(ctx, dir, bytes.NewReader(in), "fuzz", &out, ScoreOptions{SeqLen: 64, Workers: 1, MaxLineBytes: maxLine})
		if err != nil {
			t.Fatalf("Score: %v", err)
		}
		if sum.Scored+sum.Bad != sum.Rows {
			t.Fatalf("summary %+v", sum)
		}
		scores := readScores(t, out.Bytes())
		if len(scores) != sum.Rows {
			t.Fatalf("%d output lines for %d rows", len(scores), sum.Rows)
		}
		lines := strings.Split(string(in), "\n")
		prev, bad := 0, 0
		for _, s := range scores {
			if s.Line <= prev || s.Line > len(lines) {
				t.Fatalf("output for line %d after line %d (%d input lines)", s.Line, prev, len(lines))
			}
			prev = s.Line
			if l := lines[s.Line-1]; len(l) <= maxLine && strings.TrimSpace(l) == "" {
				t.Fatalf("line %d is blank but has an output %+v", s.Line, s)
			}
			vals := 0
			for _, v := range []*float64{s.Reward, s.Chosen, s.Rejected, s.Edited} {
				if v != nil {
					vals++
					if math.IsNaN(*v) || math.IsInf(*v, 0) {
						t.Fatalf("line %d: reward %v", s.Line, *v)
					}
				}
			}
			switch {
			case s.Error != "":
				bad++
				if vals != 0 {
					t.Fatalf("line %d: an error with rewards: %+v", s.Line, s)
				}
			case s.Reward != nil:
				if vals != 1 {
					t.Fatalf("line %d: a conversation's reward with response rewards: %+v", s.Line, s)
				}
			case s.Chosen == nil || s.Rejected == nil:
				t.Fatalf("line %d: neither an error nor rewards: %+v", s.Line, s)
			}
		}
		if bad != sum.Bad {
			t.Fatalf("%d error lines, summary %+v", bad, sum)
		}
	})
}
