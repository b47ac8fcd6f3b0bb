package posttrain

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/internal/traintest"
)

// TestRoundsRerun runs one round (sft → rm → rs → dpo) on a tiny model, with
// a verifier that passes about half the samples so DPO gets pairs; a rerun
// skips every stage, and a round whose DPO stage lost its end marker and
// final/ (as after a kill) finishes it again with the same final bytes.
func TestRoundsRerun(t *testing.T) {
	tok := testTokenizer(t)
	cfg := tinyLM()
	base := traintest.SaveModel(t, cfg, initParams(cfg, 5), tok)
	r := Default()
	r.Kind, r.Model, r.Out, r.Workers = KindRounds, base, filepath.Join(t.TempDir(), "rounds"), 2
	r.Rounds = Rounds{Rounds: 1, Tasks: []string{"max"}, EvalN: 2,
		SFTData:  []string{writeLines(t, taskRows(t, false, 40, 1))},
		PrefData: []string{writeLines(t, taskRows(t, true, 40, 2))},
		SFT:      []string{"train.steps=3", "train.seq_len=96", "train.batch=2", "data.heldout_fraction=0", "eval.every=0", "checkpoint.every=0"},
		RM:       []string{"train.steps=2", "train.seq_len=96", "train.batch=2", "data.heldout_fraction=0", "eval.every=0"},
		RS: []string{"rs.prompts=4", "rs.k=4", "rs.max_new_tokens=3", "rs.verifier=command",
			`rs.command=while IFS= read -r l; do if [ $(( ${#l} % 2 )) = 0 ]; then echo '{"score":1}'; else echo '{"score":0}'; fi; done`},
		DPO: []string{"train.steps=2", "train.seq_len=96", "train.batch=2", "data.heldout_fraction=0", "eval.every=0"},
	}
	ctx := context.Background()
	res, err := RunRounds(ctx, r, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	final := filepath.Join(r.Out, "round1", KindDPO, FinalDir)
	if res.Final != final {
		t.Fatalf("final %s, want %s (DPO must have run: the verifier passes about half)", res.Final, final)
	}
	if len(res.Evals) != 4 || !strings.Contains(res.Table, "round1/dpo") {
		t.Fatalf("evals %d, table:\n%s", len(res.Evals), res.Table)
	}
	for _, f := range []string{"report.html", "eval.txt", "eval.jsonl", "pass1.png", "round1/sft/recipe.yaml", "round1/rs/recipe.yaml", "round1/dpo/recipe.yaml"} {
		if _, err := os.Stat(filepath.Join(r.Out, f)); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(filepath.Join(final, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	// A rerun skips every stage.
	st, _ := os.Stat(filepath.Join(final, "model.safetensors"))
	if _, err := RunRounds(ctx, r, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if st2, _ := os.Stat(filepath.Join(final, "model.safetensors")); !st2.ModTime().Equal(st.ModTime()) {
		t.Fatal("a rerun of finished rounds rewrote the DPO model")
	}
	// The DPO stage as a kill after its last checkpoint leaves it.
	dpoDir := filepath.Join(r.Out, "round1", KindDPO)
	for _, p := range []string{stageDoneFile, FinalDir, roundsEvalFile} {
		if err := os.RemoveAll(filepath.Join(dpoDir, p)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := RunRounds(ctx, r, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(final, "model.safetensors"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the resumed DPO stage's final model differs (err %v)", err)
	}
}

// TestRoundsAverage ends a round with an average stage: the round's final
// model is the mean of its SFT and DPO models, and it is evaluated.
func TestRoundsAverage(t *testing.T) {
	tok := testTokenizer(t)
	cfg := tinyLM()
	base := traintest.SaveModel(t, cfg, initParams(cfg, 6), tok)
	r := Default()
	r.Kind, r.Model, r.Out, r.Workers = KindRounds, base, filepath.Join(t.TempDir(), "rounds"), 2
	r.Rounds = Rounds{Rounds: 1, Tasks: []string{"max"}, EvalN: 2, Average: []string{KindSFT, KindDPO},
		SFTData:  []string{writeLines(t, taskRows(t, false, 40, 1))},
		PrefData: []string{writeLines(t, taskRows(t, true, 40, 2))},
		SFT:      []string{"train.steps=2", "train.seq_len=96", "train.batch=2", "data.heldout_fraction=0", "eval.every=0"},
		RM:       []string{"train.steps=1", "train.seq_len=96", "train.batch=2", "data.heldout_fraction=0", "eval.every=0"},
		RS: []string{"rs.prompts=4", "rs.k=4", "rs.max_new_tokens=3", "rs.verifier=command",
			`rs.command=while IFS= read -r l; do if [ $(( ${#l} % 2 )) = 0 ]; then echo '{"score":1}'; else echo '{"score":0}'; fi; done`},
		DPO: []string{"train.steps=2", "train.seq_len=96", "train.batch=2", "data.heldout_fraction=0", "eval.every=0", "optim.lr=1e-2"},
	}
	res, err := RunRounds(context.Background(), r, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(r.Out, "round1", "average", FinalDir); res.Final != want {
		t.Fatalf("final %s, want %s", res.Final, want)
	}
	if last := res.Evals[len(res.Evals)-1]; last.Stage != "average" {
		t.Fatalf("last evaluation is of %q, want the average", last.Stage)
	}
	_, sft, err := checkpoint.LoadModel(filepath.Join(r.Out, "round1", KindSFT, FinalDir))
	if err != nil {
		t.Fatal(err)
	}
	_, dpo, err := checkpoint.LoadModel(filepath.Join(r.Out, "round1", KindDPO, FinalDir))
	if err != nil {
		t.Fatal(err)
	}
	_, avg, err := checkpoint.LoadModel(res.Final)
	if err != nil {
		t.Fatal(err)
	}
	differ := false
	for i := range avg.Data {
		want := (float64(sft.Data[i]) + float64(dpo.Data[i])) / 2
		if math.Abs(float64(avg.Data[i])-want) > 1e-6*(1+math.Abs(want)) {
			t.Fatalf("weight %d: average %g, want %g", i, avg.Data[i], want)
		}
		differ = differ || sft.Data[i] != dpo.Data[i]
	}
	if !differ {
		t.Fatal("DPO did not change the SFT model; the average tests nothing")
	}
}
