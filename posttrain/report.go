package posttrain

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/train"
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
<html><head><meta charset="utf-8"><title>herd pipeline report</title>
<style>body{font-family:sans-serif;margin:2em;max-width:64em}pre{background:#f4f4f4;padding:1em;overflow-x:auto}
img{max-width:100%}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
td.l,th.l{text-align:left}.pass{color:#070}.fail{color:#a00}</style>
</head><body>
<h1>herd pipeline report</h1>
{{with .Curation}}<h2>Curation</h2>
<p>Documents and bytes entering and leaving each stage (<code>{{.Dir}}/stats.json</code>).</p>
<table><tr><th class="l">stage</th><th>docs in</th><th>docs out</th><th>MB in</th><th>MB out</th><th class="l">removed</th></tr>
{{range .Stages}}<tr><td class="l">{{.Name}}</td><td>{{.InDocs}}</td><td>{{.OutDocs}}</td><td>{{printf "%.1f" .InMB}}</td><td>{{printf "%.1f" .OutMB}}</td><td class="l">{{.Removed}}</td></tr>
{{end}}</table>{{end}}
{{with .Pretrain}}<h2>Pretraining</h2>
<p>Run <code>{{.Dir}}</code>{{if .Eval}}; last held-out loss {{printf "%.4f" .Eval}} nats/token{{end}}.</p>
{{if .Plot}}<img alt="pretraining loss" src="data:image/png;base64,{{.Plot}}">{{end}}
{{if .Samples}}<p>Samples at the last evaluation:</p>{{range .Samples}}<pre>{{.}}</pre>{{end}}{{end}}{{end}}
<h2>Post-training rounds</h2>
<p>Held-out pass@1 (greedy) on the built-in tasks after every stage; reward-model rows show the accuracy on held-out (correct, wrong) answer pairs. Final model: <code>{{.Final}}</code>.</p>
<pre>{{.Table}}</pre>
{{if .Plot}}<img alt="pass@1 by stage" src="data:image/png;base64,{{.Plot}}">{{end}}
{{with .Examples}}<h2>Final model's answers</h2>
<table><tr><th class="l">prompt</th><th class="l">response</th><th class="l">verdict</th></tr>
{{range .}}<tr><td class="l">{{.Prompt}}</td><td class="l">{{.Response}}</td><td class="l">{{if .Pass}}<span class="pass">correct</span>{{else}}<span class="fail">wrong</span>{{end}}</td></tr>
{{end}}</table>{{end}}
<h2>Stages</h2>
<ul>{{range .Evals}}<li>round {{.Round}} {{.Stage}}: <code>{{.Model}}</code></li>{{end}}</ul>
</body></html>
`))

// reportInputs are where the report finds the earlier parts of the
// pipeline.
type reportInputs struct {
	curation      string // curation output directory (stats.json), or ""
	pretrainModel string // the model round 1 starts from (a pretraining run's final/)
}

type funnelRow struct {
	Name            string
	InDocs, OutDocs int64
	InMB, OutMB     float64
	Removed         string
}

// curationFunnel reads a curation directory's stats.json funnel.
func curationFunnel(dir string) (any, error) {
	var st struct {
		Funnel struct {
			Order  []string `json:"order"`
			Stages map[string]struct {
				In      struct{ Docs, Bytes int64 }     `json:"in"`
				Out     struct{ Docs, Bytes int64 }     `json:"out"`
				Removed map[string]struct{ Docs int64 } `json:"removed"`
			} `json:"stages"`
		} `json:"funnel"`
	}
	if err := readJSON(filepath.Join(dir, "stats.json"), &st); err != nil {
		return nil, err
	}
	var rows []funnelRow
	for _, name := range st.Funnel.Order {
		sg := st.Funnel.Stages[name]
		var removed []string
		for reason, r := range sg.Removed {
			removed = append(removed, fmt.Sprintf("%s %d", reason, r.Docs))
		}
		slices.Sort(removed)
		rows = append(rows, funnelRow{Name: name, InDocs: sg.In.Docs, OutDocs: sg.Out.Docs,
			InMB: float64(sg.In.Bytes) / 1e6, OutMB: float64(sg.Out.Bytes) / 1e6, Removed: strings.Join(removed, ", ")})
	}
	return map[string]any{"Dir": dir, "Stages": rows}, nil
}

// pretrainSection describes the pretraining run a model directory belongs
// to (its parent, when it holds metrics.jsonl), or nil.
func pretrainSection(modelDir string) any {
	dir := filepath.Dir(filepath.Clean(modelDir))
	recs, err := train.ReadMetrics(filepath.Join(dir, MetricsFile))
	if err != nil {
		return nil
	}
	out := map[string]any{"Dir": dir}
	for _, r := range recs {
		if v, ok := r.Values["eval_loss"]; ok && (r.Kind == "eval" || r.Kind == "final_eval") {
			out["Eval"] = v
		}
	}
	if data, err := os.ReadFile(filepath.Join(dir, "loss.png")); err == nil {
		out["Plot"] = base64.StdEncoding.EncodeToString(data)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "samples.jsonl")); err == nil {
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		var samples []string
		for _, l := range lines[max(0, len(lines)-2):] {
			var smp struct{ Prompt, Text string }
			if json.Unmarshal([]byte(l), &smp) == nil && smp.Prompt != "" {
				samples = append(samples, smp.Prompt+smp.Text)
			}
		}
		out["Samples"] = samples
	}
	return out
}

// writeRoundsReport writes eval.jsonl, eval.txt, pass1.png and
// report.html into the rounds directory.
func writeRoundsReport(dir string, res *RoundsResult, in reportInputs) error {
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
	data := map[string]any{"Final": res.Final, "Table": res.Table, "Plot": img, "Evals": res.Evals,
		"Pretrain": pretrainSection(in.pretrainModel)}
	if in.curation != "" {
		f, err := curationFunnel(in.curation)
		if err != nil {
			return fmt.Errorf("report: curation funnel: %w", err)
		}
		data["Curation"] = f
	}
	if n := len(res.Evals); n > 0 {
		var ex []TaskExample
		for _, t := range res.Evals[n-1].Tasks {
			ex = append(ex, t.Examples...)
		}
		data["Examples"] = ex
	}
	if err := reportHTML.Execute(&page, data); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "report.html"), page.Bytes(), 0o644)
}
