package train

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/optim"
)

// toy is a trainer of a tiny Llama on synthetic batches: batch n is drawn
// from a generator seeded with n, so the data position is the number of
// batches consumed.
type toy struct {
	m       *model.Model
	next    int
	batch   model.Batch
	started [][2]int // StartStage calls: stage, step
}

const toyB, toyT = 2, 8

func newToy(t *testing.T) *toy {
	t.Helper()
	cfg := model.Config{VocabSize: 16, HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 1, NumAttentionHeads: 2,
		NumKeyValueHeads: 1, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 16, TieWordEmbeddings: true, InitializerRange: 0.1}
	cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	be := kernels.NewCPU(1)
	t.Cleanup(be.Close)
	m, err := model.New(cfg, be)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(cfg, 1)
	m.EnsureGrads()
	n := toyB * toyT
	return &toy{m: m, batch: model.Batch{B: toyB, T: toyT, Tokens: make([]int32, n), Targets: make([]int32, n)}}
}

func (ty *toy) Step(step int) (StepResult, error) {
	rng := rand.New(rand.NewPCG(uint64(ty.next), 3))
	for i := range ty.batch.Tokens {
		ty.batch.Tokens[i] = int32(rng.IntN(16))
		ty.batch.Targets[i] = (ty.batch.Tokens[i] + 1) % 16 // learnable: next id
	}
	loss, err := ty.m.ForwardBackward(&ty.batch)
	if err != nil {
		return StepResult{}, fmt.Errorf("step %d: %w", step+1, err)
	}
	ty.next++
	return StepResult{Loss: loss, Tokens: toyB * toyT, Metrics: checkpoint.Metrics{"toy/next": float64(ty.next)}}, nil
}

type toyPos struct {
	Next int `json:"next"`
}

func (ty *toy) Position() (json.RawMessage, error) { return json.Marshal(toyPos{ty.next}) }

func (ty *toy) Restore(pos json.RawMessage) error {
	var p toyPos
	if err := json.Unmarshal(pos, &p); err != nil {
		return err
	}
	ty.next = p.Next
	return nil
}

func (ty *toy) StartStage(_ context.Context, i, step int) (func(), error) {
	ty.started = append(ty.started, [2]int{i, step})
	return nil, nil
}

// toyOptions: two stages of 4 steps with different schedules, a
// checkpoint every 2 steps, 3 kept.
func toyOptions(dir string, ty *toy) Options {
	return Options{
		Dir: dir, Params: ty.m.Params, Grads: ty.m.Grads, Config: func() model.Config { return ty.m.Config },
		AdamW:        optim.DefaultAdamWConfig(),
		ClipGradNorm: 1,
		Stages: []Stage{
			{Name: "main", End: 4, Schedule: optim.Constant{Peak: 1e-2, Warmup: 2}},
			{Name: "anneal", End: 8, Schedule: optim.WarmupLinear{Peak: 5e-3, Total: 4}},
		},
		MaxBadSteps: 2, LogEvery: 1, CheckpointEvery: 2, Keep: 3,
		Recipe: json.RawMessage(`{"toy":1}`), RecipeText: []byte("toy: 1\n"),
	}
}

// runToy runs a toy trainer in dir; change adjusts the options.
func runToy(t *testing.T, ctx context.Context, dir string, change func(*Options)) (*toy, *Result, error) {
	t.Helper()
	ty := newToy(t)
	opt := toyOptions(dir, ty)
	if change != nil {
		change(&opt)
	}
	e, err := New(opt, ty)
	if err != nil {
		return ty, nil, err
	}
	defer e.Close()
	if err := e.Claim(); err != nil {
		return ty, nil, err
	}
	res, err := e.Run(ctx)
	return ty, res, err
}

func mustRunToy(t *testing.T, dir string, change func(*Options)) (*toy, *Result) {
	t.Helper()
	ty, res, err := runToy(t, context.Background(), dir, change)
	if err != nil {
		t.Fatal(err)
	}
	return ty, res
}

func trainRecords(t *testing.T, dir string) []Record {
	t.Helper()
	recs, err := ReadMetrics(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(recs, func(r Record) bool { return r.Kind != "train" })
}

func sameFiles(t *testing.T, a, b string, names ...string) {
	t.Helper()
	for _, n := range names {
		x, err := os.ReadFile(filepath.Join(a, n))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Fatalf("%s differs between %s and %s", n, a, b)
		}
	}
}

// TestResumeBitExact: a run interrupted (inside a stage, at a stage
// boundary, twice) and resumed ends with the same weights, optimizer state,
// data position and metrics as a run straight through.
func TestResumeBitExact(t *testing.T) {
	base := t.TempDir()
	_, straight := mustRunToy(t, filepath.Join(base, "straight"), nil)
	if straight.Steps != 8 || straight.Tokens != 8*toyB*toyT || straight.Interrupted {
		t.Fatalf("straight run: %+v", straight)
	}
	want := trainRecords(t, filepath.Join(base, "straight"))
	for _, tc := range []struct {
		name  string
		stops []int
	}{
		{"inside a stage", []int{3}},
		{"at the stage boundary", []int{4}},
		{"twice", []int{2, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			for i, stop := range tc.stops {
				_, res := mustRunToy(t, dir, func(o *Options) { o.StopAt, o.Resume = stop, i > 0 })
				if !res.Interrupted || res.Steps != stop {
					t.Fatalf("stop at %d: %+v", stop, res)
				}
				if _, err := os.Stat(filepath.Join(dir, CheckpointsDir, checkpoint.StepDirName(stop))); err != nil {
					t.Fatalf("no checkpoint at the interruption: %v", err)
				}
			}
			last := tc.stops[len(tc.stops)-1]
			ty, res := mustRunToy(t, dir, func(o *Options) { o.Resume = true })
			if res.Steps != 8 || res.Tokens != straight.Tokens || ty.next != 8 {
				t.Fatalf("resumed run: %+v, %d batches", res, ty.next)
			}
			if got := ty.started[0]; got != [2]int{last / 4, last} {
				t.Fatalf("resumed in stage %d at step %d, want stage %d at %d", got[0], got[1], last/4, last)
			}
			sameFiles(t, straight.Checkpoint, res.Checkpoint, "model.safetensors", checkpoint.OptimizerFile)
			got := trainRecords(t, dir)
			if len(got) != len(want) {
				t.Fatalf("%d train records, want %d", len(got), len(want))
			}
			for i, w := range want {
				g := got[i]
				for _, k := range []string{"loss", "lr", "grad_norm", "toy/next"} {
					if g.Values[k] != w.Values[k] || g.Step != w.Step || g.Stage != w.Stage || g.Tokens != w.Tokens {
						t.Fatalf("record %d %s: %+v, want %+v", i, k, g, w)
					}
				}
			}
		})
	}
}

// TestNonFinite: a step with a NaN gradient is skipped and recorded; a
// streak of MaxBadSteps stops the run, naming the last good checkpoint,
// which is kept.
func TestNonFinite(t *testing.T) {
	poison := func(from, to int) func(*Options) {
		return func(o *Options) {
			o.ReduceGrads = func(step int, g *model.Params) error {
				if step >= from && step <= to {
					g.Data[3] = float32(math.NaN())
				}
				return nil
			}
		}
	}
	for _, tc := range []struct {
		name     string
		from, to int
		err      string // "" when the run completes
		skipped  []int
		newest   int
	}{
		{"one bad step", 3, 3, "", []int{3}, 8},
		{"a streak", 5, 100, "2 consecutive steps (up to step 6)", []int{5, 6}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			ty, res, err := runToy(t, context.Background(), dir, poison(tc.from, tc.to))
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) ||
				!strings.Contains(err.Error(), checkpoint.StepDirName(tc.newest))) {
				t.Fatalf("error %v, want %q naming %s", err, tc.err, checkpoint.StepDirName(tc.newest))
			}
			var skipped []int
			for _, r := range trainRecords(t, dir) {
				if r.Skipped {
					skipped = append(skipped, r.Step)
					if !math.IsNaN(r.Values["grad_norm"]) {
						t.Fatalf("skipped record %+v", r)
					}
				}
			}
			if !slices.Equal(skipped, tc.skipped) {
				t.Fatalf("skipped steps %v, want %v", skipped, tc.skipped)
			}
			last, err := checkpoint.Latest(filepath.Join(dir, CheckpointsDir))
			if err != nil || last.Step != tc.newest {
				t.Fatalf("newest checkpoint %+v %v, want step %d", last, err, tc.newest)
			}
			for _, v := range ty.m.Params.Data {
				if !finite(float64(v)) {
					t.Fatal("non-finite weight after a skipped step")
				}
			}
			if tc.err == "" && res.Steps != 8 {
				t.Fatalf("%d steps", res.Steps)
			}
		})
	}
}

// TestInterrupt: a cancelled context stops the run after the step in
// progress, saves a checkpoint with that step's data position, and reports
// Interrupted; nothing is evaluated at the end.
func TestInterrupt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evals := 0
	_, res, err := runToy(t, ctx, dir, func(o *Options) {
		o.OnStep = func(step int) {
			if step == 5 {
				cancel()
			}
		}
		o.Eval = func(context.Context, Point) (checkpoint.Metrics, error) { evals++; return nil, nil }
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Steps != 5 || res.Checkpoint != filepath.Join(dir, CheckpointsDir, checkpoint.StepDirName(5)) {
		t.Fatalf("interrupted run: %+v", res)
	}
	if evals != 0 {
		t.Fatalf("%d evaluations after an interruption", evals)
	}
	_, _, st, err := checkpoint.Load(res.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if string(st.DataPosition) != `{"next":5}` || st.Step != 5 || string(st.Recipe) != `{"toy":1}` {
		t.Fatalf("saved state: step %d position %s recipe %s", st.Step, st.DataPosition, st.Recipe)
	}
}

// TestKeep: only the newest Keep checkpoints remain.
func TestKeep(t *testing.T) {
	for _, tc := range []struct {
		keep, every int
		want        []int
	}{
		{1, 1, []int{8}},
		{3, 1, []int{6, 7, 8}},
		{3, 3, []int{4, 6, 8}}, // saved at 3, 4 (a stage's end), 6, 8
		{10, 2, []int{2, 4, 6, 8}},
	} {
		t.Run(fmt.Sprintf("keep%d_every%d", tc.keep, tc.every), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			mustRunToy(t, dir, func(o *Options) { o.Keep, o.CheckpointEvery = tc.keep, tc.every })
			all, err := checkpoint.List(filepath.Join(dir, CheckpointsDir))
			if err != nil {
				t.Fatal(err)
			}
			var steps []int
			for _, c := range all {
				steps = append(steps, c.Step)
			}
			if !slices.Equal(steps, tc.want) {
				t.Fatalf("checkpoints at %v, want %v", steps, tc.want)
			}
		})
	}
}

// TestRunDirectory: a run directory with checkpoints is refused without
// Resume, a locked one is refused, a checkpoint of another model is
// refused, and a recipe change goes through CheckRecipe.
func TestRunDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	mustRunToy(t, dir, func(o *Options) { o.StopAt = 2 })
	if _, _, err := runToy(t, context.Background(), dir, nil); err == nil || !strings.Contains(err.Error(), "-resume") {
		t.Fatalf("rerun without resume: %v", err)
	}

	ty := newToy(t)
	opt := toyOptions(dir, ty)
	opt.Resume = true
	held, err := New(opt, ty)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := runToy(t, context.Background(), dir, func(o *Options) { o.Resume = true }); err == nil {
		t.Fatal("a second engine opened a locked run directory")
	}
	held.Close()

	var seen []int
	_, _, err = runToy(t, context.Background(), dir, func(o *Options) {
		o.Resume, o.Recipe = true, json.RawMessage(`{"toy":2}`)
		o.CheckRecipe = func(old json.RawMessage, step int) error {
			seen = append(seen, step)
			return fmt.Errorf("recipe %s changed", old)
		}
	})
	if err == nil || !strings.Contains(err.Error(), `recipe {"toy":1} changed`) || !slices.Equal(seen, []int{2}) {
		t.Fatalf("changed recipe: %v (checked at %v)", err, seen)
	}

	other := newToy(t)
	cfg := other.m.Config
	cfg.TieWordEmbeddings = false // adds lm_head
	m, err := model.New(cfg, other.m.Backend())
	if err != nil {
		t.Fatal(err)
	}
	m.EnsureGrads()
	opt = toyOptions(dir, other)
	opt.Resume, opt.Params, opt.Grads, opt.Config = true, m.Params, m.Grads, func() model.Config { return cfg }
	if _, err := New(opt, other); err == nil || !strings.Contains(err.Error(), "different model") {
		t.Fatalf("resume with another layout: %v", err)
	}
}

// TestHooks: Eval and Samples run every EvalEvery steps and at the end;
// their numbers are recorded (and plotted); SaveFinal averages the newest
// checkpoints.
func TestHooks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	var evals, samples []Point
	ty := newToy(t)
	opt := toyOptions(dir, ty)
	opt.EvalEvery = 3
	opt.Eval = func(_ context.Context, at Point) (checkpoint.Metrics, error) {
		evals = append(evals, at)
		return checkpoint.Metrics{"eval_loss": float64(at.Step)}, nil
	}
	opt.Samples = func(_ context.Context, at Point) error { samples = append(samples, at); return nil }
	e, err := New(opt, ty)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Claim(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []Point{{3, 3 * toyB * toyT, "main"}, {6, 6 * toyB * toyT, "anneal"}, {8, 8 * toyB * toyT, "anneal"}}
	if !slices.Equal(evals, want) || !slices.Equal(samples, want) {
		t.Fatalf("evals at %v, samples at %v, want %v", evals, samples, want)
	}
	n, err := e.SaveFinal(filepath.Join(dir, "final"), 2, nil)
	if err != nil || n != 2 {
		t.Fatalf("SaveFinal: %d %v", n, err)
	}
	if err := e.SyncMetrics(); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadMetrics(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var evalSteps []int
	for _, r := range recs {
		if r.Kind == "eval" {
			evalSteps = append(evalSteps, r.Step)
			if r.Values["eval_loss"] != float64(r.Step) {
				t.Fatalf("eval record %+v", r)
			}
		}
	}
	if !slices.Equal(evalSteps, []int{3, 6, 8}) {
		t.Fatalf("eval records at %v", evalSteps)
	}
	if err := plotLoss(recs, filepath.Join(dir, "loss.svg")); err != nil {
		t.Fatalf("plot: %v", err)
	}
	_, avg, err := checkpoint.LoadModel(filepath.Join(dir, "final"))
	if err != nil {
		t.Fatal(err)
	}
	_, a, _ := checkpoint.LoadModel(filepath.Join(dir, CheckpointsDir, checkpoint.StepDirName(6)))
	_, b, _ := checkpoint.LoadModel(filepath.Join(dir, CheckpointsDir, checkpoint.StepDirName(8)))
	for i, v := range avg.Data {
		if m := (a.Data[i] + b.Data[i]) / 2; math.Abs(float64(v-m)) > 1e-6 {
			t.Fatalf("final weight %d = %v, mean %v", i, v, m)
		}
	}
}

// TestRecordJSON: records round-trip, non-finite values included.
func TestRecordJSON(t *testing.T) {
	for _, r := range []Record{
		{Kind: "train", Step: 3, Stage: "main", Tokens: 96, Skipped: true, Values: checkpoint.Metrics{"loss": math.NaN(), "lr": 1e-3, "grad_norm": math.Inf(1)}},
		{Kind: "eval", Step: 4, Stage: "a \"b\"", Tokens: 1},
		{Kind: "eval", Step: 5, Stage: "é", Values: checkpoint.Metrics{"rewards/<b>&": -0.5, "naïve\n": 1e-300}},
	} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var got Record
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if nums, _ := json.Marshal(map[string]float64(r.Values)); !r.Skipped && len(r.Values) > 0 && !bytes.HasSuffix(b, nums[1:]) {
			t.Fatalf("%s: values not written as encoding/json writes %s", b, nums)
		}
		again, _ := json.Marshal(got)
		if !bytes.Equal(b, again) || got.Kind != r.Kind || got.Stage != r.Stage || got.Skipped != r.Skipped {
			t.Fatalf("%s → %+v → %s", b, got, again)
		}
	}
}
