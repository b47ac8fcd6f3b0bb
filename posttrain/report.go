package posttrain

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/herdml/herd/internal/atomicfile"
)

// evalTable renders the stage evaluations as a text table: one row per
// stage, pass@1 per task and the mean (a reward model's row shows its
// pair accuracy).
func evalTable(evals []StageEval) string {
	var names []string
	seen := map[string]bool{}
	for _, e := range evals {
		for _, t := range e.Tasks {
			if !seen[t.Task] {
				seen[t.Task] = true
				names = append(names, t.Task)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s", "stage")
	for _, n := range names {
		fmt.Fprintf(&b, " %8s", n)
	}
	fmt.Fprintf(&b, " %8s\n", "mean")
	for _, e := range evals {
		label := e.Stage
		if e.Round > 0 {
			label = fmt.Sprintf("round%d/%s", e.Round, e.Stage)
		}
		fmt.Fprintf(&b, "%-14s", label)
		by := map[string]TaskScore{}
		for _, t := range e.Tasks {
			by[t.Task] = t
		}
		isRM := e.Stage == KindRM
		for _, n := range names {
			t, ok := by[n]
			switch {
			case !ok:
				fmt.Fprintf(&b, " %8s", "-")
			case isRM:
				fmt.Fprintf(&b, " %7.1f%%", 100*t.RMAccuracy)
			default:
				fmt.Fprintf(&b, " %7.1f%%", 100*t.Pass1)
			}
		}
		mean := e.Mean
		if isRM {
			mean = e.RMMean
		}
		fmt.Fprintf(&b, " %7.1f%%", 100*mean)
		if isRM {
			b.WriteString("  (reward model: pair accuracy)")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// plotPass1 draws the mean and per-task pass@1 of every policy stage in
// order.
func plotPass1(evals []StageEval, path string) error {
	var labels []string
	series := map[string]plotter.XYs{}
	var order []string
	for _, e := range evals {
		if e.Stage == KindRM {
			continue
		}
		x := float64(len(labels))
		label := e.Stage
		if e.Round > 0 {
			label = fmt.Sprintf("r%d %s", e.Round, e.Stage)
		}
		labels = append(labels, label)
		add := func(name string, y float64) {
			if _, ok := series[name]; !ok {
				order = append(order, name)
			}
			series[name] = append(series[name], plotter.XY{X: x, Y: 100 * y})
		}
		add("mean", e.Mean)
		for _, t := range e.Tasks {
			add(t.Task, t.Pass1)
		}
	}
	if len(labels) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = "held-out pass@1 by stage"
	p.Y.Label.Text = "pass@1 (%)"
	p.Y.Min, p.Y.Max = 0, 100
	p.NominalX(labels...)
	for i, name := range order {
		l, pts, err := plotter.NewLinePoints(series[name])
		if err != nil {
			return err
		}
		l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
		if name == "mean" {
			l.Width = vg.Points(2.5)
		}
		p.Add(l, pts)
		p.Legend.Add(name, l, pts)
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	return p.Save(9*vg.Inch, 5*vg.Inch, path)
}

var reportHTML = template.Must(template.New("report").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>herd post-training report</title>
<style>body{font-family:sans-serif;margin:2em;max-width:60em}pre{background:#f4f4f4;padding:1em}img{max-width:100%}</style>
</head><body>
<h1>Post-training rounds</h1>
<p>Held-out pass@1 (greedy) on the built-in tasks after every stage; reward-model rows show the accuracy on held-out (correct, wrong) answer pairs. Final model: <code>{{.Final}}</code>.</p>
<pre>{{.Table}}</pre>
{{if .Plot}}<img alt="pass@1 by stage" src="data:image/png;base64,{{.Plot}}">{{end}}
<h2>Stages</h2>
<ul>{{range .Evals}}<li>round {{.Round}} {{.Stage}}: <code>{{.Model}}</code></li>{{end}}</ul>
</body></html>
`))

// writeRoundsReport writes eval.jsonl, eval.txt, pass1.png and
// report.html into the rounds directory.
func writeRoundsReport(dir string, res *RoundsResult) error {
	var jl bytes.Buffer
	for _, e := range res.Evals {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		jl.Write(append(line, '\n'))
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, RoundsEvalFile), jl.Bytes(), 0o644); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "eval.txt"), []byte(res.Table), 0o644); err != nil {
		return err
	}
	png := filepath.Join(dir, "pass1.png")
	if err := plotPass1(res.Evals, png); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	var img string
	if data, err := os.ReadFile(png); err == nil {
		res.Plot = png
		img = base64.StdEncoding.EncodeToString(data)
	}
	var page bytes.Buffer
	if err := reportHTML.Execute(&page, map[string]any{"Final": res.Final, "Table": res.Table, "Plot": img, "Evals": res.Evals}); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "report.html"), page.Bytes(), 0o644)
}
