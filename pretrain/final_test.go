package pretrain

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/internal/testenv"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
)

// TestFinalKeepsBetter: with average.keep = better, final/ is whichever of
// the annealing average and the last checkpoint scores the lower held-out
// loss — checked by evaluating final/ and the last checkpoint afresh from
// disk — both losses are in the final_eval record and report.html, and
// with keep = last final/ is the last checkpoint's weights.
func TestFinalKeepsBetter(t *testing.T) {
	srcs := synthSources(t)
	dir := t.TempDir()
	r := tinyRecipe(filepath.Join(dir, "better"), srcs...)
	r.Train.Steps = 6
	r.Average.Last = 3
	r.Stages = []Stage{{Name: "anneal", Kind: "anneal", Steps: 6, LR: 2e-3}}
	res := mustRun(t, r, RunOptions{})
	if len(res.Averaged) != 3 || res.Averaged[0] <= 6 {
		t.Fatalf("averaged %v: want three checkpoints of the annealing stage (steps 7–12)", res.Averaged)
	}
	if res.AverageEval <= 0 || res.LastEval <= 0 {
		t.Fatalf("losses: average %v, last %v", res.AverageEval, res.LastEval)
	}
	want := KeepLast
	if res.AverageEval <= res.LastEval {
		want = KeepAverage
	}
	if res.Kept != want || res.FinalEval != min(res.AverageEval, res.LastEval) {
		t.Fatalf("kept %q with %v (average %v, last %v), want %q", res.Kept, res.FinalEval, res.AverageEval, res.LastEval, want)
	}
	set, err := BuildEvalSet(context.Background(), r.Data.Sources, nil, r.Data.HeldOut, 32, r.Train.SeqLen, r.Eval.Batch, r.Eval.Tokens)
	if err != nil {
		t.Fatal(err)
	}
	evalDir := func(d string) float64 {
		cfg, p, err := checkpoint.LoadModel(d)
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.NewWithParams(cfg, p, kernels.NewCPU(1))
		if err != nil {
			t.Fatal(err)
		}
		loss, err := set.Loss(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		return loss
	}
	if got := evalDir(res.Final); abs(got-res.FinalEval) > 1e-9 {
		t.Fatalf("final/ scores %v from disk, the run reported %v", got, res.FinalEval)
	}
	if got := evalDir(res.Checkpoint); abs(got-res.LastEval) > 1e-9 {
		t.Fatalf("the last checkpoint scores %v from disk, the run reported %v", got, res.LastEval)
	}
	// final/'s model card says how it was made and what it scored.
	readme, err := os.ReadFile(filepath.Join(res.Final, checkpoint.ReadmeFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pretrained from scratch by herd", "12 steps", "anneal (6 steps", "recipe.yaml",
		fmt.Sprintf("| eval_loss | %.6g |", res.FinalEval), fmt.Sprintf("final/ is the %s", res.Kept)} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("final/README.md lacks %q:\n%s", want, readme)
		}
	}
	recs, err := ReadMetrics(filepath.Join(r.Out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	fe, _ := recordsOf(recs, "final_eval")
	if fe == nil || fe.EvalLoss != res.FinalEval {
		t.Fatalf("final_eval record %+v", fe)
	}
	html, err := os.ReadFile(filepath.Join(r.Out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"average of the checkpoints", "last checkpoint (step 12)", "final/ is the " + keptName(want), `src="data:image/png;base64,`} {
		if !strings.Contains(string(html), s) {
			t.Errorf("report.html lacks %q", s)
		}
	}

	// The report renders in a browser with its plots.
	testenv.RendersPlots(t, filepath.Join(r.Out, "report.html"))

	last := r
	last.Out = filepath.Join(dir, "last")
	last.Average.Keep = KeepLast
	lres := mustRun(t, last, RunOptions{})
	if lres.Kept != KeepLast {
		t.Fatalf("keep = last kept %q", lres.Kept)
	}
	if !bytes.Equal(readFile(t, filepath.Join(lres.Final, "model.safetensors")), readFile(t, filepath.Join(lres.Checkpoint, "model.safetensors"))) {
		t.Fatal("keep = last: final/ differs from the last checkpoint")
	}
}

// TestEvalShortfall: an evaluation that finds fewer held-out tokens than
// eval.tokens says so in the log, in every eval record (eval_tokens) and
// in report.html.
func TestEvalShortfall(t *testing.T) {
	r := tinyRecipe(filepath.Join(t.TempDir(), "run"), synthSources(t)...)
	r.Train.Steps = 2
	r.Eval.Tokens = 1 << 30
	var log bytes.Buffer
	res := mustRun(t, r, RunOptions{Logger: newTextLogger(&log)})
	if res.EvalTokens <= 0 || res.EvalTokens >= r.Eval.Tokens {
		t.Fatalf("eval tokens %d", res.EvalTokens)
	}
	if !strings.Contains(log.String(), "fewer than eval.tokens = 1073741824") {
		t.Fatalf("log does not say the held-out set is short:\n%s", log.String())
	}
	recs, err := ReadMetrics(filepath.Join(r.Out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(r.Out, MetricsFile))
	if _, n := recordsOf(recs, "eval"); n == 0 || !strings.Contains(string(raw), `"eval_tokens":`) {
		t.Fatalf("eval records lack eval_tokens:\n%s", raw)
	}
	html, _ := os.ReadFile(filepath.Join(r.Out, "report.html"))
	if !strings.Contains(string(html), "fewer than eval.tokens") {
		t.Fatal("report.html does not say the held-out set is short")
	}
}

// recordsOf returns the last record of kind and how many there are.
func recordsOf(recs []Record, kind string) (*Record, int) {
	var last *Record
	n := 0
	for i := range recs {
		if recs[i].Kind == kind {
			last = &recs[i]
			n++
		}
	}
	return last, n
}

func abs(x float64) float64 { return max(x, -x) }

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
