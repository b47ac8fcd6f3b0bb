package scaling

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// plotIsoFLOP draws loss against model size per budget, with the fitted
// parabolas and their minima.
func plotIsoFLOP(f *Fits, path string) error {
	p := plot.New()
	p.Title.Text = "IsoFLOP curves"
	p.X.Label.Text = "parameters N"
	p.Y.Label.Text = "held-out loss (nats/token)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	groups := map[float64][]Point{}
	for _, g := range groupBudgets(f.Points) {
		groups[g[0].Budget] = g
	}
	for gi, b := range f.IsoFLOP.Budgets {
		g := groups[b.Budget]
		if len(g) == 0 {
			continue
		}
		col := plotutil.Color(gi)
		var xy plotter.XYs
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, pt := range g {
			xy = append(xy, plotter.XY{X: pt.Params, Y: pt.Loss})
			lo, hi = min(lo, pt.Params), max(hi, pt.Params)
		}
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return err
		}
		sc.Color = col
		p.Add(sc)
		var curve plotter.XYs
		a, z := math.Log(lo)-0.2, math.Log(hi)+0.2
		for i := 0; i <= 60; i++ {
			x := a + (z-a)*float64(i)/60
			curve = append(curve, plotter.XY{X: math.Exp(x), Y: b.ParabN.At(x)})
		}
		ln, err := plotter.NewLine(curve)
		if err != nil {
			return err
		}
		ln.Color = col
		p.Add(ln)
		p.Legend.Add(fmt.Sprintf("C = %.2g", b.FLOPs), ln, sc)
		m, err := plotter.NewScatter(plotter.XYs{{X: b.NOpt, Y: b.LossMin}})
		if err != nil {
			return err
		}
		m.Shape = draw.CrossGlyph{}
		m.Radius = vg.Points(5)
		m.Color = col
		p.Add(m)
	}
	return p.Save(6*vg.Inch, 4.5*vg.Inch, path)
}

// plotFrontier draws the IsoFLOP minima N*(C) with their intervals, the
// power law through them, the parametric law's optimum and the forecast.
func plotFrontier(f *Fits, path string) error {
	p := plot.New()
	p.Title.Text = "compute-optimal model size"
	p.X.Label.Text = "compute C (FLOPs)"
	p.Y.Label.Text = "N*"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	iso := f.IsoFLOP
	var minima plotter.XYs
	var errs plotter.YErrors
	for _, b := range iso.Budgets {
		minima = append(minima, plotter.XY{X: b.FLOPs, Y: b.NOpt})
		lo, hi := b.NOptCI.Lo, b.NOptCI.Hi
		if math.IsNaN(lo) {
			lo, hi = b.NOpt, b.NOpt
		}
		errs = append(errs, struct{ Low, High float64 }{b.NOpt - lo, hi - b.NOpt})
	}
	sc, err := plotter.NewScatter(minima)
	if err != nil {
		return err
	}
	sc.Color = plotutil.Color(0)
	p.Add(sc)
	eb, err := plotter.NewYErrorBars(struct {
		plotter.XYer
		plotter.YErrorer
	}{minima, errs})
	if err == nil {
		eb.Color = plotutil.Color(0)
		p.Add(eb)
	}
	p.Legend.Add("IsoFLOP minima (95% CI)", sc)
	c0, c1 := iso.Budgets[0].FLOPs/1.5, f.Forecast.FLOPs*1.5
	law := func(fn func(c float64) float64) plotter.XYs {
		var xy plotter.XYs
		for i := 0; i <= 40; i++ {
			c := math.Exp(math.Log(c0) + (math.Log(c1)-math.Log(c0))*float64(i)/40)
			xy = append(xy, plotter.XY{X: c, Y: fn(c)})
		}
		return xy
	}
	l1, err := plotter.NewLine(law(iso.NOpt.At))
	if err != nil {
		return err
	}
	l1.Color = plotutil.Color(0)
	p.Add(l1)
	p.Legend.Add(fmt.Sprintf("N* = %.3g·C^%.3f", iso.NOpt.Coef, iso.NOpt.Exp), l1)
	par := f.Parametric
	l2, err := plotter.NewLine(law(func(c float64) float64 { n, _ := par.Law.Optimal(c, par.G); return n }))
	if err != nil {
		return err
	}
	l2.Color = plotutil.Color(1)
	l2.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(l2)
	p.Legend.Add(fmt.Sprintf("parametric L(N,D): C^%.3f", par.Law.NExp()), l2)
	fc := plotter.XYs{{X: f.Forecast.FLOPs, Y: f.Forecast.IsoN}}
	if s := f.Forecast.Shape; s != nil {
		fc = append(fc, plotter.XY{X: f.Forecast.FLOPs, Y: s.Params})
	}
	fs, err := plotter.NewScatter(fc)
	if err != nil {
		return err
	}
	fs.Shape = draw.PyramidGlyph{}
	fs.Radius = vg.Points(4)
	fs.Color = color.RGBA{R: 200, A: 255}
	p.Add(fs)
	p.Legend.Add(fmt.Sprintf("forecast at %.2g", f.Forecast.FLOPs), fs)
	return p.Save(6*vg.Inch, 4.5*vg.Inch, path)
}
