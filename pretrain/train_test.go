package pretrain

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/model"
)

func synthSources(t *testing.T) []Source {
	dir := t.TempDir()
	a := synthSource(t, dir, "web", 200, 100, 16, 32, 1, 10, 120)
	b := synthSource(t, dir, "code", 100, 100, 16, 32, 2, 30, 200)
	return []Source{{Name: "web", Paths: []string{a}, Weight: weight(2)}, {Name: "code", Paths: []string{b}, Weight: weight(1)}}
}

func mustRun(t *testing.T, r Recipe, opt RunOptions) *Result {
	t.Helper()
	res, err := Run(context.Background(), r, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestResumeBitExact: 2N steps straight and N steps, an interruption, and
// N more after -resume give byte-identical weights and optimizer state, and
// the same metrics.
func TestResumeBitExact(t *testing.T) {
	srcs := synthSources(t)
	dir := t.TempDir()
	straight := tinyRecipe(filepath.Join(dir, "straight"), srcs...)
	straight.Checkpoint.Every = 4
	a := mustRun(t, straight, RunOptions{})

	split := straight
	split.Out = filepath.Join(dir, "split")
	first := mustRun(t, split, RunOptions{stopAt: 6})
	if !first.Interrupted || first.Steps != 6 {
		t.Fatalf("interrupted run: %+v", first)
	}
	if _, err := os.Stat(filepath.Join(split.Out, CheckpointsDir, checkpoint.StepDirName(6))); err != nil {
		t.Fatalf("no checkpoint at the interruption: %v", err)
	}
	b := mustRun(t, split, RunOptions{Resume: true})
	if b.Steps != a.Steps || a.Steps != 12 {
		t.Fatalf("steps %d and %d", a.Steps, b.Steps)
	}
	for _, f := range []string{"model.safetensors", checkpoint.OptimizerFile} {
		x := readFile(t, filepath.Join(a.Checkpoint, f))
		y := readFile(t, filepath.Join(b.Checkpoint, f))
		if !bytes.Equal(x, y) {
			t.Fatalf("%s differs between the straight and the resumed run", f)
		}
	}
	if !bytes.Equal(readFile(t, filepath.Join(a.Final, "model.safetensors")), readFile(t, filepath.Join(b.Final, "model.safetensors"))) {
		t.Fatal("final models differ")
	}
	ma, err := ReadMetrics(filepath.Join(straight.Out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	mb, err := ReadMetrics(filepath.Join(split.Out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(ma) != len(mb) {
		t.Fatalf("%d metric records straight, %d resumed", len(ma), len(mb))
	}
	for i := range ma {
		x, y := ma[i], mb[i]
		if x.Step != y.Step || x.Kind != y.Kind || x.Loss != y.Loss || x.EvalLoss != y.EvalLoss || x.GradNorm != y.GradNorm || x.Tokens != y.Tokens {
			t.Fatalf("metrics record %d: %+v vs %+v", i, x, y)
		}
	}
	// A new run refuses to overwrite a run directory with checkpoints.
	if _, err := Run(context.Background(), split, RunOptions{}); err == nil || !strings.Contains(err.Error(), "-resume") {
		t.Fatalf("rerun without -resume: %v", err)
	}
}

// TestNonFinite: a step with a NaN gradient is skipped and logged and the
// run goes on; a streak of them stops the run with a clear message and the
// last good checkpoint intact.
func TestNonFinite(t *testing.T) {
	srcs := synthSources(t)
	r := tinyRecipe(filepath.Join(t.TempDir(), "nan"), srcs...)
	r.Eval.Every = 0
	poison := func(from, to int) func(int, *model.Params) {
		return func(step int, g *model.Params) {
			if step >= from && step <= to {
				g.Data[7] = float32(math.NaN())
			}
		}
	}
	res := mustRun(t, r, RunOptions{corrupt: poison(4, 4)})
	recs, err := ReadMetrics(filepath.Join(r.Out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	skipped := 0
	for _, rec := range recs {
		if rec.Skipped {
			skipped++
			if rec.Step != 4 || !math.IsNaN(rec.GradNorm) {
				t.Fatalf("skipped record %+v", rec)
			}
		}
	}
	if skipped != 1 || res.Steps != r.Train.Steps {
		t.Fatalf("%d skipped steps, %d steps run", skipped, res.Steps)
	}
	_, p, _, err := checkpoint.Load(res.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range p.Data {
		if !finite(float64(v)) {
			t.Fatal("non-finite weight after a skipped step")
		}
	}

	r.Out = filepath.Join(t.TempDir(), "nan2")
	_, err = Run(context.Background(), r, RunOptions{corrupt: poison(5, 1000)})
	if err == nil || !strings.Contains(err.Error(), "3 consecutive steps") || !strings.Contains(err.Error(), "step-000003") {
		t.Fatalf("streak of NaN steps: %v", err)
	}
	last, err := checkpoint.Latest(filepath.Join(r.Out, CheckpointsDir))
	if err != nil || last.Step != 3 {
		t.Fatalf("newest checkpoint %+v %v, want step 3", last, err)
	}
}

// TestStages runs main → long-context (longer sequences, new RoPE θ and
// llama3 scaling) → annealing (linear decay to zero on a filtered mix),
// averages the last checkpoints into final/, and resumes bit-exactly across
// stage boundaries.
func TestStages(t *testing.T) {
	srcs := synthSources(t)
	dir := t.TempDir()
	r := tinyRecipe(filepath.Join(dir, "straight"), srcs...)
	r.Train.Steps = 8
	r.Eval.Every = 4
	r.Checkpoint = CheckpointSpec{Every: 2, Keep: 3}
	r.Average.Last = 3
	r.Average.Keep = KeepAverage
	r.Stages = []Stage{
		{Name: "long", Kind: "long_context", Steps: 4, SeqLen: 64, RopeTheta: 40000,
			RopeScaling: &RopeScaling{RopeType: "llama3", Factor: 2, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 32}},
		{Name: "anneal", Kind: "anneal", Steps: 4, LR: 1e-3,
			Sources: []Source{{Name: "web", Paths: srcs[0].Paths, MinQuality: 0.5}}},
	}
	a := mustRun(t, r, RunOptions{})
	if a.Steps != 16 || a.Tokens != 16*256 {
		t.Fatalf("steps %d tokens %d", a.Steps, a.Tokens)
	}
	recs, err := ReadMetrics(filepath.Join(r.Out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if rec.Kind != "train" {
			continue
		}
		want := map[bool]string{true: "main", false: "long"}[rec.Step <= 8]
		if rec.Step > 12 {
			want = "anneal"
		}
		if rec.Stage != want {
			t.Fatalf("step %d in stage %q, want %q", rec.Step, rec.Stage, want)
		}
		if rec.Step == 13 && math.Abs(rec.LR-1e-3) > 1e-12 || rec.Step == 16 && math.Abs(rec.LR-2.5e-4) > 1e-12 {
			t.Fatalf("anneal step %d lr %v", rec.Step, rec.LR)
		}
	}
	cfg, final, err := checkpoint.LoadModel(a.Final)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RopeTheta != 40000 || cfg.RopeScaling == nil || cfg.RopeScaling.Factor != 2 || cfg.MaxPositionEmbeddings != 64 {
		t.Fatalf("final config %+v", cfg)
	}
	// final/ is the mean of the last three checkpoints of the annealing
	// stage (steps 13–16, one per step: its 4 steps / average.last 3),
	// none of the long-context stage's.
	if !slices.Equal(a.Averaged, []int{14, 15, 16}) || a.Kept != KeepAverage || a.FinalEval != a.AverageEval {
		t.Fatalf("averaged %v, kept %q (final %v, average %v)", a.Averaged, a.Kept, a.FinalEval, a.AverageEval)
	}
	sum := make([]float64, len(final.Data))
	for _, step := range []int{14, 15, 16} {
		_, p, err := checkpoint.LoadModel(filepath.Join(r.Out, CheckpointsDir, checkpoint.StepDirName(step)))
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range p.Data {
			sum[i] += float64(v)
		}
	}
	for i, v := range final.Data {
		if math.Abs(float64(v)-sum[i]/3) > 1e-6 {
			t.Fatalf("final weight %d = %v, mean of the last checkpoints %v", i, v, sum[i]/3)
		}
	}
	// The position is the annealing stream's: 16 sequences into its window.
	_, _, st, err := checkpoint.Load(a.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	var pos dataPosition
	if err := json.Unmarshal(st.DataPosition, &pos); err != nil {
		t.Fatal(err)
	}
	if pos.Stage != 2 || pos.Stream.Index != 16 || pos.Stream.Pack.Sources["web"].Epoch != 0 {
		t.Fatalf("data position after annealing: %+v", pos)
	}

	// Interrupt exactly at the stage boundary and inside the next stage.
	b := r
	b.Out = filepath.Join(dir, "resumed")
	mustRun(t, b, RunOptions{stopAt: 8})
	mustRun(t, b, RunOptions{Resume: true, stopAt: 13})
	res := mustRun(t, b, RunOptions{Resume: true})
	for _, f := range []string{"model.safetensors", checkpoint.OptimizerFile} {
		if !bytes.Equal(readFile(t, filepath.Join(a.Checkpoint, f)), readFile(t, filepath.Join(res.Checkpoint, f))) {
			t.Fatalf("%s differs after resuming across stages", f)
		}
	}
}
