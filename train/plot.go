package train

import (
	"errors"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// PlotLoss draws the training loss (raw and smoothed), the held-out loss
// (eval_loss) and, when recorded, the unigram baseline against the step,
// and saves it to each path (the format follows the extension: .png, .svg,
// .pdf).
func PlotLoss(recs []Record, paths ...string) error {
	var train, evals plotter.XYs
	unigram := 0.0
	for _, r := range recs {
		switch r.Kind {
		case "train":
			if loss, ok := r.Values["loss"]; ok && finite(loss) && !r.Skipped {
				train = append(train, plotter.XY{X: float64(r.Step), Y: loss})
			}
		case "eval":
			if loss, ok := r.Values["eval_loss"]; ok && finite(loss) {
				evals = append(evals, plotter.XY{X: float64(r.Step), Y: loss})
			}
			if u := r.Values["unigram"]; u > 0 {
				unigram = u
			}
		}
	}
	if len(train) == 0 {
		return errors.New("no training steps to plot")
	}
	p := plot.New()
	p.Title.Text = "loss"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "nats / token"
	raw, err := plotter.NewLine(train)
	if err != nil {
		return err
	}
	raw.Color = color.Gray{Y: 170}
	raw.Width = vg.Points(0.5)
	raw.Dashes = nil
	p.Add(raw)
	p.Legend.Add("train", raw)
	smooth, err := plotter.NewLine(ema(train, 0.95))
	if err != nil {
		return err
	}
	smooth.Width = vg.Points(1.5)
	smooth.Color = plotutil.Color(0)
	p.Add(smooth)
	p.Legend.Add("train (EMA)", smooth)
	if len(evals) > 0 {
		l, pts, err := plotter.NewLinePoints(evals)
		if err != nil {
			return err
		}
		l.Color, pts.Color = plotutil.Color(1), plotutil.Color(1)
		p.Add(l, pts)
		p.Legend.Add("held-out", l, pts)
	}
	if unigram > 0 {
		base, err := plotter.NewLine(plotter.XYs{{X: train[0].X, Y: unigram}, {X: train[len(train)-1].X, Y: unigram}})
		if err != nil {
			return err
		}
		base.Color = plotutil.Color(2)
		base.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(base)
		p.Legend.Add("unigram", base)
	}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	for _, path := range paths {
		if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
			return fmt.Errorf("save %s: %w", path, err)
		}
	}
	return nil
}

// ema is the exponential moving average of the Y values (bias-corrected).
func ema(xy plotter.XYs, beta float64) plotter.XYs {
	out := make(plotter.XYs, len(xy))
	var m float64
	for i, p := range xy {
		m = beta*m + (1-beta)*p.Y
		out[i] = plotter.XY{X: p.X, Y: m / (1 - math.Pow(beta, float64(i+1)))}
	}
	return out
}
