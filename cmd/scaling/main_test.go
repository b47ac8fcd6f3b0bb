package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/data/tokens/tokenstest"
	"github.com/herdml/herd/internal/dirlock"
	"github.com/herdml/herd/internal/outdir"
	"github.com/herdml/herd/scaling"
)

// microRecipe writes a sweep recipe of 3 budgets × 3 sizes of models with
// a few thousand parameters over a synthetic token source.
func microRecipe(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	tokenstest.WriteShard(t, filepath.Join(src, "tokens-00000.parquet"), tokenstest.SynthRows("a", 200, 32, 1, 20, 120), 20)
	text := fmt.Sprintf(`out: %s
budgets: [1.0e7, 2.0e7, 4.0e7]
sizes: [1, 2, 3]
shape: {width_per_size: 8, head_dim: 8, kv_group: 2, ffn_mult: 2, layers_per_size: 1}
pretrain:
  workers: 2
  model: {vocab_size: 32}
  data:
    sources: [{name: a, paths: [%s]}]
    heldout_fraction: 0.1
  train: {seq_len: 32, batch_tokens: 128, micro_batch: 4}
  optim: {warmup_steps: 2}
  eval: {every: 0, tokens: 512, batch: 4}
  checkpoint: {every: 0, keep: 1}
fit: {bootstrap: 50, seed: 3}
`, filepath.Join(dir, "sweep"), src)
	path := filepath.Join(dir, "micro.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSweepCLI runs a micro sweep split over two ranks, checks that a
// rerun skips every finished run, fits a JSONL of points from a known law
// with the sweep's shape rule, and runs the forecast check on the shape
// it names.
func TestSweepCLI(t *testing.T) {
	dir := t.TempDir()
	recipe := microRecipe(t, dir)
	sweep := filepath.Join(dir, "sweep")
	var out, errs bytes.Buffer
	// Another process holds the first run: the sweep skips it.
	if err := outdir.Claim(sweep, scaling.SweepKind); err != nil {
		t.Fatal(err)
	}
	lock, err := dirlock.Acquire(filepath.Join(sweep, "b1e+07-s1"), "run")
	if err != nil {
		t.Fatal(err)
	}
	for rank := range 2 {
		t.Setenv("OMPI_COMM_WORLD_RANK", fmt.Sprint(rank))
		t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
		out.Reset()
		if err := run(context.Background(), []string{"-recipe", recipe}, &out, &errs); err != nil {
			t.Fatalf("rank %d: %v\n%s", rank, err, errs.String())
		}
		// Rank 0 trains runs 2, 4, 6, 8 of 9 (0 is locked); rank 1 the
		// odd ones.
		if want := fmt.Sprintf("%d finished runs", []int{4, 8}[rank]); !strings.Contains(out.String(), want) {
			t.Fatalf("rank %d: output lacks %q:\n%s", rank, want, out.String())
		}
	}
	os.Unsetenv("OMPI_COMM_WORLD_RANK")
	os.Unsetenv("OMPI_COMM_WORLD_SIZE")
	if !strings.Contains(errs.String(), "in use by another process, skipped") {
		t.Fatalf("the locked run was not skipped:\n%s", errs.String())
	}
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	errs.Reset()
	out.Reset()
	if err := run(context.Background(), []string{"-recipe", recipe}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(errs.String(), "finished, skipped"); n != 8 || !strings.Contains(out.String(), "9 finished runs") {
		t.Fatalf("rerun skipped %d runs, want 8, and should finish the 9th:\n%s\n%s", n, errs.String(), out.String())
	}
	pts, err := scaling.ReadRuns(sweep)
	if err != nil || len(pts) != 9 {
		t.Fatalf("ReadRuns: %d points, %v", len(pts), err)
	}
	for _, p := range pts {
		if !(p.Loss > 0 && p.Loss < 10) || math.Abs(math.Log(p.FLOPs/p.Budget)) > math.Log(2) {
			t.Errorf("run %s: loss %v, flops %v for budget %v", p.Run, p.Loss, p.FLOPs, p.Budget)
		}
		if _, err := os.Stat(filepath.Join(sweep, p.Run, "final", "model.safetensors")); err != nil {
			t.Error(err)
		}
	}
	// A changed shape rule is refused rather than mixing runs.
	if err := run(context.Background(), []string{"-recipe", recipe, "shape.ffn_mult=3"}, &out, &errs); err == nil || !strings.Contains(err.Error(), "another out directory") {
		t.Fatalf("changed shape: %v", err)
	}

	// Points of a known law, on budgets where the sweep's shapes are
	// forecast: the fit recovers it and names a shape for the target.
	law := scaling.Law{E: 1.5, A: 40, B: 60, Alpha: 0.4, Beta: 0.35}
	var jl strings.Builder
	for _, c := range []float64{1e7, 3e7, 1e8, 3e8} {
		n0, _ := law.Optimal(c, 6)
		for i := -3; i <= 3; i++ {
			n := n0 * math.Exp(float64(i)*0.5)
			d := c / 6 / n
			fmt.Fprintf(&jl, `{"flops": %g, "params": %g, "tokens": %g, "loss": %g}`+"\n", c, n, d, law.Loss(n, d))
		}
	}
	ptsFile := filepath.Join(dir, "points.jsonl")
	if err := os.WriteFile(ptsFile, []byte(jl.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fitDir := filepath.Join(dir, "fit")
	out.Reset()
	if err := run(context.Background(), []string{"fit", "-runs", ptsFile, "-out", fitDir, "-recipe", filepath.Join(sweep, scaling.RecipeFile), "-target-flops", "1e8"}, &out, &errs); err != nil {
		t.Fatalf("%v\n%s", err, errs.String())
	}
	for _, f := range []string{scaling.FitsFile, scaling.TableFile, scaling.IsoFLOPPlot, scaling.FrontierPlot} {
		if st, err := os.Stat(filepath.Join(fitDir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	f, err := scaling.ReadFits(filepath.Join(fitDir, scaling.FitsFile))
	if err != nil {
		t.Fatal(err)
	}
	if a := f.Parametric.Law.NExp(); math.Abs(a/law.NExp()-1) > 0.02 {
		t.Errorf("parametric N* exponent %.4f, want %.4f", a, law.NExp())
	}
	if a := f.IsoFLOP.NOpt.Exp; math.Abs(a/law.NExp()-1) > 0.02 {
		t.Errorf("IsoFLOP N* exponent %.4f, want %.4f", a, law.NExp())
	}
	if f.Forecast.Shape == nil || !strings.Contains(out.String(), "herd would train size") {
		t.Fatalf("no shape in the forecast:\n%s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"forecast-check", "-fit", fitDir}, &out, &errs); err != nil {
		t.Fatalf("%v\n%s", err, errs.String())
	}
	var check struct {
		Predicted float64 `json:"predicted_loss"`
		Actual    float64 `json:"actual_loss"`
		Size      int     `json:"size"`
	}
	data, err := os.ReadFile(filepath.Join(fitDir, CheckFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &check); err != nil || check.Size != f.Forecast.Shape.Size || !(check.Actual > 0) || check.Predicted != math.Round(f.Forecast.Shape.Loss*1e6)/1e6 {
		t.Fatalf("forecast check %s: %v (forecast %+v)", data, err, f.Forecast.Shape)
	}
	if !strings.Contains(out.String(), "predicted held-out loss") {
		t.Fatalf("forecast-check output:\n%s", out.String())
	}
}

// TestUsage checks the errors of missing flags.
func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"fit", "-runs", "x"}, {"forecast-check"}} {
		var out, errs bytes.Buffer
		err := run(context.Background(), args, &out, &errs)
		if _, ok := err.(usageError); !ok {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}
