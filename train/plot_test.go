package train

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herdml/herd/checkpoint"
)

// TestPlotsRefreshAtEval: with AfterEval redrawing the plots, loss.png and
// metrics.png exist after the first evaluation (not only at the end), the
// records carry gflop_per_s and mfu = gflop_per_s·1e9/PeakFLOPs, and the
// stage boundary is found where the stage changes.
func TestPlotsRefreshAtEval(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	var seen []int
	_, _, err := runToy(t, context.Background(), dir, func(o *Options) {
		o.EvalEvery = 3
		o.Stages[0].FLOPsPerToken, o.Stages[1].FLOPsPerToken = 1e6, 2e6
		o.PeakFLOPs = 1e9
		o.Eval = func(_ context.Context, at Point) (checkpoint.Metrics, error) {
			return checkpoint.Metrics{"eval_loss": 1 / float64(at.Step)}, nil
		}
		o.AfterEval = func(_ context.Context, at Point) error {
			if _, err := WritePlots(dir); err != nil {
				return err
			}
			seen = append(seen, at.Step)
			return nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []int{3, 6, 8}) {
		t.Fatalf("plots redrawn after the evals at %v, want 3, 6, 8", seen)
	}
	recs, err := ReadMetrics(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Kind != "train" {
			continue
		}
		g, mfu := r.Values["gflop_per_s"], r.Values["mfu"]
		if g <= 0 || math.Abs(mfu-g*1e9/1e9) > 1e-12*g {
			t.Fatalf("step %d: gflop_per_s %v, mfu %v (want gflop_per_s·1e9/1e9)", r.Step, g, mfu)
		}
		if _, old := r.Values["gflops"]; old {
			t.Fatalf("step %d still writes gflops", r.Step)
		}
	}
	m := stageMarksOf(recs)
	if !slices.Equal(m.at, []float64{4}) || !slices.Equal(m.names, []string{"anneal"}) {
		t.Fatalf("stage marks %v %v, want anneal after step 4", m.at, m.names)
	}
	for name, size := range map[string]image.Point{LossPlot: {768, 480}, PanelsPlot: {960, 576}} {
		checkPNG(t, filepath.Join(dir, name), size)
	}
}

// checkPNG checks that path is a PNG of the given size that is not blank:
// it has a white background and at least a few percent of drawn pixels.
func checkPNG(t *testing.T, path string, size image.Point) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if got := img.Bounds().Size(); got != size {
		t.Fatalf("%s is %v pixels, want %v", path, got, size)
	}
	var drawn, colored int
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				drawn++
			}
			if max(r, g, bl)-min(r, g, bl) > 0x4000 {
				colored++
			}
		}
	}
	total := b.Dx() * b.Dy()
	if drawn < total/100 || drawn > total/2 || colored == 0 {
		t.Fatalf("%s: %d of %d pixels drawn, %d coloured: blank or garbled", path, drawn, total, colored)
	}
}

// TestLegacyMetrics: lines of older runs (curation's "event", pretraining's
// "gflops") read as today's schema.
func TestLegacyMetrics(t *testing.T) {
	in := `{"event":"unit","pass":1,"docs":3}
{"kind":"train","step":2,"stage":"main","tokens":64,"gflops":1.5,"loss":3}
{"kind":"train","step":3,"stage":"main","tokens":96,"gflops":1.5,"gflop_per_s":2,"loss":3}
`
	recs, err := readMetrics(strings.NewReader(in), "m.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Kind != "unit" || recs[0].Values["docs"] != 3 || recs[0].Values["pass"] != 1 {
		t.Fatalf("event line read as %+v", recs[0])
	}
	if v, ok := recs[1].Values["gflop_per_s"]; !ok || v != 1.5 || len(recs[1].Values) != 2 {
		t.Fatalf("gflops line read as %+v", recs[1])
	}
	if recs[2].Values["gflop_per_s"] != 2 {
		t.Fatalf("a line with both keys keeps the new one: %+v", recs[2])
	}
}

// TestLogInterval: without a progress bar, a step line is logged every
// LogEvery steps and also whenever LogInterval has passed since the last
// one, so a run of slow steps still shows progress.
func TestLogInterval(t *testing.T) {
	for _, c := range []struct {
		interval time.Duration
		want     int
	}{{time.Hour, 1}, {time.Nanosecond, 8}} {
		var buf bytes.Buffer
		_, _, err := runToy(t, context.Background(), filepath.Join(t.TempDir(), "run"), func(o *Options) {
			o.LogEvery, o.LogInterval = 1000, c.interval
			o.Logger = slog.New(slog.NewTextHandler(&buf, nil))
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(buf.String(), "msg=step "); got != c.want {
			t.Errorf("interval %v: %d step lines, want %d\n%s", c.interval, got, c.want, buf.String())
		}
	}
}
