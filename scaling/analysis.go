package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/recipes"
)

// Output files of a fit.
const (
	FitsFile     = "fits.json"
	TableFile    = "fits.txt"
	IsoFLOPPlot  = "isoflop.png"
	FrontierPlot = "frontier.png"
)

// Forecast is the prediction for a target budget.
type Forecast struct {
	FLOPs float64 `json:"flops"`
	// IsoFLOP method: N*(C), D*(C) from the power laws, and the
	// parametric law's loss there.
	IsoN    float64 `json:"isoflop_n"`
	IsoD    float64 `json:"isoflop_d"`
	IsoLoss float64 `json:"isoflop_loss"`
	// Parametric method: its own compute-optimal (N, D) and loss.
	ParN    float64 `json:"parametric_n"`
	ParD    float64 `json:"parametric_d"`
	ParLoss float64 `json:"parametric_loss"`
	// The model herd would train: the size of the sweep's shape rule
	// whose N is nearest (in log) to IsoN, its tokens (the budget over
	// its FLOPs per token) and the parametric law's loss for it.
	Shape *ShapeForecast `json:"shape,omitempty"`
	// Downstream accuracy forecast (two stages), when scored.
	NLL      float64 `json:"downstream_nll,omitempty"`
	Accuracy float64 `json:"downstream_accuracy,omitempty"`
}

// ShapeForecast is the concrete run of a forecast.
type ShapeForecast struct {
	Size      int     `json:"size"`
	Layers    int     `json:"layers"`
	Hidden    int     `json:"hidden"`
	Heads     int     `json:"heads"`
	KVHeads   int     `json:"kv_heads"`
	FFN       int     `json:"intermediate"`
	Params    float64 `json:"params"`
	Tokens    float64 `json:"tokens"`
	Steps     int     `json:"steps"`
	FLOPs     float64 `json:"flops"`
	Loss      float64 `json:"predicted_loss"`
	RecipeRef string  `json:"recipe,omitempty"` // the sweep recipe used
}

// Fits is everything `scaling fit` computes (fits.json).
type Fits struct {
	Points     []Point        `json:"points"`
	IsoFLOP    *IsoFLOP       `json:"isoflop"`
	Parametric *Parametric    `json:"parametric"`
	Forecast   Forecast       `json:"forecast"`
	Downstream *DownstreamFit `json:"downstream,omitempty"`
}

// FitOptions control Fit.
type FitOptions struct {
	Bootstrap   int
	Seed        uint64
	TargetFLOPs float64 // 0: 4× the largest budget
	// Recipe, when set, is the sweep the points came from: the forecast
	// then names the model shape and the downstream stage scores the
	// runs' final/ models on its task set.
	Recipe *Recipe
	// RecipeRef names the recipe in the output (a path).
	RecipeRef string
	// Downstream overrides the recipe's task set when active.
	Downstream DownstreamSpec
	Workers    int
	Logger     *slog.Logger
	Grid       *Grid // default defaultGrid
}

// Fit fits both methods to the points, forecasts the target budget and,
// with a recipe, scores the runs downstream.
func Fit(ctx context.Context, pts []Point, o FitOptions) (*Fits, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	iso, err := fitIsoFLOP(pts, o.Bootstrap, o.Seed)
	if err != nil {
		return nil, err
	}
	for _, e := range iso.Excluded {
		log.Warn("IsoFLOP curve left out", "budget", fmt.Sprintf("%.3g", e.Budget), "why", e.Reason)
	}
	for _, b := range iso.Budgets {
		if !b.Interior {
			log.Warn("the IsoFLOP minimum lies outside the sizes tried: widen the sizes", "budget", fmt.Sprintf("%.3g", b.FLOPs), "n_opt", fmt.Sprintf("%.3g", b.NOpt))
		}
	}
	grid := defaultGrid()
	if o.Grid != nil {
		grid = *o.Grid
	}
	par, err := fitParametric(pts, grid)
	if err != nil {
		return nil, err
	}
	f := &Fits{Points: pts, IsoFLOP: iso, Parametric: par}
	c := o.TargetFLOPs
	if c <= 0 {
		c = 4 * iso.Budgets[len(iso.Budgets)-1].FLOPs
	}
	fc := Forecast{FLOPs: c, IsoN: iso.NOpt.At(c), IsoD: iso.DOpt.At(c)}
	fc.IsoLoss = par.Law.Loss(fc.IsoN, fc.IsoD)
	fc.ParN, fc.ParD = par.Law.Optimal(c, par.G)
	fc.ParLoss = par.Law.Loss(fc.ParN, fc.ParD)
	if o.Recipe != nil {
		sf, err := o.Recipe.ShapeFor(c, fc.IsoN)
		if err != nil {
			return nil, err
		}
		sf.Loss = par.Law.Loss(sf.Params, sf.Tokens)
		sf.RecipeRef = o.RecipeRef
		fc.Shape = sf
		ds := o.Downstream
		if !ds.active() {
			ds = o.Recipe.Downstream
		}
		if ds.active() {
			if f.Downstream, err = fitDownstreamRuns(ctx, pts, ds, o.Workers, log); err != nil {
				return nil, err
			}
			fc.NLL = f.Downstream.NLL.At(c)
			fc.Accuracy = f.Downstream.Sigmoid.At(fc.NLL)
		}
	}
	f.Forecast = fc
	return f, nil
}

// fitDownstreamRuns scores each run's final/ model on the task set and
// fits the two stages: the NLL power law through the best run of each
// budget (the compute-optimal ones), the sigmoid through all runs.
func fitDownstreamRuns(ctx context.Context, pts []Point, ds DownstreamSpec, workers int, log *slog.Logger) (*DownstreamFit, error) {
	items, err := ds.Items()
	if err != nil {
		return nil, fmt.Errorf("downstream: %w", err)
	}
	var all, best []DownstreamRun
	choices := 0
	for _, it := range items {
		choices += len(it.Choices)
	}
	floor := float64(len(items)) / float64(choices)
	for _, g := range groupBudgets(pts) {
		start, bi := len(all), 0
		for i, p := range g {
			if p.Dir == "" {
				return nil, errors.New("downstream: the points must come from run directories (scaling fit -runs SWEEP_DIR)")
			}
			s, err := scoreModel(ctx, filepath.Join(p.Dir, "final"), items, workers)
			if err != nil {
				return nil, fmt.Errorf("downstream %s: %w", p.Dir, err)
			}
			log.Info("downstream", "run", p.Run, "nll", fmt.Sprintf("%.4f", s.NLL), "accuracy", fmt.Sprintf("%.3f", s.Accuracy))
			all = append(all, DownstreamRun{Run: p.Run, FLOPs: p.FLOPs, Downstream: s})
			if p.Loss < g[bi].Loss {
				bi = i
			}
		}
		best = append(best, all[start+bi])
	}
	fit, err := fitDownstream(best, floor)
	if err != nil {
		return nil, err
	}
	sig, err := fitSigmoid(column(all, func(r DownstreamRun) float64 { return r.NLL }), column(all, func(r DownstreamRun) float64 { return r.Accuracy }), floor)
	if err != nil {
		return nil, err
	}
	fit.Sigmoid, fit.Runs = sig, all
	return fit, nil
}

func column[T any](xs []T, f func(T) float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// ShapeFor returns the size (1–1024) whose model's N is nearest to n in
// log, trained on budget FLOPs.
func (r *Recipe) ShapeFor(budget, n float64) (*ShapeForecast, error) {
	vocab, err := r.Vocab()
	if err != nil {
		return nil, err
	}
	var best *Run
	for s := 1; s <= 1024; s++ {
		run, err := r.PlanRun(budget, s, vocab)
		if err != nil {
			continue
		}
		if best == nil || math.Abs(math.Log(float64(run.Params)/n)) < math.Abs(math.Log(float64(best.Params)/n)) {
			best = &run
		}
		if float64(run.Params) > 4*n {
			break
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no size of the shape rule makes a valid model near N = %.3g", n)
	}
	c := best.Config
	return &ShapeForecast{Size: best.Size, Layers: c.NumHiddenLayers, Hidden: c.HiddenSize, Heads: c.NumAttentionHeads,
		KVHeads: c.NumKeyValueHeads, FFN: c.IntermediateSize, Params: float64(best.Params), Tokens: float64(best.Tokens),
		Steps: best.Recipe.Train.Steps, FLOPs: best.FLOPs}, nil
}

// WriteFits writes fits.json, the text table, isoflop.png and
// frontier.png into dir (created when missing).
func WriteFits(dir string, f *Fits) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, FitsFile), append(data, '\n'), 0o644); err != nil {
		return err
	}
	var sb strings.Builder
	WriteTable(&sb, f)
	if err := atomicfile.WriteFile(filepath.Join(dir, TableFile), []byte(sb.String()), 0o644); err != nil {
		return err
	}
	if err := plotIsoFLOP(f, filepath.Join(dir, IsoFLOPPlot)); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := plotFrontier(f, filepath.Join(dir, FrontierPlot)); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// ReadFits reads a fits.json.
func ReadFits(path string) (*Fits, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f Fits
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

// WriteTable prints the fits as text.
func WriteTable(w io.Writer, f *Fits) {
	iso, par := f.IsoFLOP, f.Parametric
	fmt.Fprintf(w, "IsoFLOP curves (parabola in ln N; 95%% residual-bootstrap intervals, %d resamples)\n", iso.Bootstrap)
	fmt.Fprintf(w, "%10s %6s %12s %25s %12s %25s %8s\n", "budget", "runs", "N*", "N* 95% CI", "D*", "D* 95% CI", "L*")
	for _, b := range iso.Budgets {
		note := ""
		if !b.Interior {
			note = "  (outside the sizes tried)"
		}
		fmt.Fprintf(w, "%10.3g %6d %12.4g  [%10.4g, %10.4g] %12.4g  [%10.4g, %10.4g] %8.4f%s\n", b.FLOPs, b.Points, b.NOpt,
			b.NOptCI.Lo, b.NOptCI.Hi, b.DOpt, b.DOptCI.Lo, b.DOptCI.Hi, b.LossMin, note)
	}
	for _, e := range iso.Excluded {
		fmt.Fprintf(w, "%10.3g %6d  left out: %s\n", e.Budget, e.Points, e.Reason)
	}
	fmt.Fprintf(w, "\nexponents               IsoFLOP (95%% CI)                 parametric L(N,D)\n")
	fmt.Fprintf(w, "N*(C) ∝ C^a   a = %.4f [%.4f, %.4f]        %.4f\n", iso.NOpt.Exp, iso.NOpt.ExpCI.Lo, iso.NOpt.ExpCI.Hi, par.Law.NExp())
	fmt.Fprintf(w, "D*(C) ∝ C^b   b = %.4f [%.4f, %.4f]        %.4f\n", iso.DOpt.Exp, iso.DOpt.ExpCI.Lo, iso.DOpt.ExpCI.Hi, par.Law.DExp())
	fmt.Fprintf(w, "N*(C) = %.4g·C^%.4f   D*(C) = %.4g·C^%.4f\n", iso.NOpt.Coef, iso.NOpt.Exp, iso.DOpt.Coef, iso.DOpt.Exp)
	l := par.Law
	fmt.Fprintf(w, "L(N,D) = %.4f + %.4g/N^%.4f + %.4g/D^%.4f   (Huber δ=%g on ln L, L-BFGS, best of %d starts; C ≈ %.3f·N·D)\n",
		l.E, l.A, l.Alpha, l.B, l.Beta, huberDelta, par.Starts, par.G)
	fc := f.Forecast
	fmt.Fprintf(w, "\nforecast for C = %.4g FLOPs\n", fc.FLOPs)
	fmt.Fprintf(w, "  IsoFLOP:    N* = %.4g  D* = %.4g  loss %.4f (parametric law at that point)\n", fc.IsoN, fc.IsoD, fc.IsoLoss)
	fmt.Fprintf(w, "  parametric: N* = %.4g  D* = %.4g  loss %.4f\n", fc.ParN, fc.ParD, fc.ParLoss)
	if s := fc.Shape; s != nil {
		fmt.Fprintf(w, "  herd would train size %d: %d layers, hidden %d, %d/%d heads, MLP %d; N = %.4g, D = %.4g (%d steps), predicted held-out loss %.4f\n",
			s.Size, s.Layers, s.Hidden, s.Heads, s.KVHeads, s.FFN, s.Params, s.Tokens, s.Steps, s.Loss)
	}
	if d := f.Downstream; d != nil {
		fmt.Fprintf(w, "\ndownstream: NLL(C) = %.4g·C^%.4f (best run per budget); accuracy = f + (1−f)/(1+exp(k·(nll − x0))) with f = %.3f (chance), k = %.3f, x0 = %.3f (all runs)\n",
			d.NLL.Coef, d.NLL.Exp, d.Sigmoid.Floor, d.Sigmoid.K, d.Sigmoid.X0)
		for _, r := range d.Runs {
			fmt.Fprintf(w, "  %-16s C %.3g  nll %.4f  accuracy %.3f\n", r.Run, r.FLOPs, r.NLL, r.Accuracy)
		}
		fmt.Fprintf(w, "  forecast at %.4g: nll %.4f, accuracy %.3f\n", fc.FLOPs, fc.NLL, fc.Accuracy)
	}
}

// LoadSweepRecipe reads the resolved recipe a sweep wrote into its
// directory (scaling.yaml); ok is false when there is none.
func LoadSweepRecipe(dir string) (r Recipe, path string, ok bool, err error) {
	path = filepath.Join(dir, RecipeFile)
	if _, err := os.Stat(path); err != nil {
		return r, path, false, nil
	}
	r, err = recipes.Load(path, Default(), nil)
	return r, path, err == nil, err
}
