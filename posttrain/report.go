package posttrain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/report"
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

// reportInputs are where the report finds the earlier parts of the
// pipeline.
type reportInputs struct {
	curation      string // curation output directory (stats.json), or ""
	pretrainModel string // the model round 1 starts from (a pretraining run's final/)
}

// pretrainSection describes the pretraining run a model directory belongs
// to (its parent, when it holds metrics.jsonl), or nil.
func pretrainSection(modelDir string) (*report.Section, error) {
	dir := filepath.Dir(filepath.Clean(modelDir))
	if _, err := os.Stat(filepath.Join(dir, MetricsFile)); err != nil {
		return nil, nil
	}
	s, err := report.Training(dir)
	if err != nil {
		return nil, err
	}
	s.Title = "Pretraining"
	s.Text = "Run " + dir + "."
	if data, err := os.ReadFile(filepath.Join(dir, "samples.jsonl")); err == nil {
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		for _, l := range lines[max(0, len(lines)-2):] {
			var smp struct{ Prompt, Text string }
			if json.Unmarshal([]byte(l), &smp) == nil && smp.Prompt != "" {
				s.Pre = append(s.Pre, smp.Prompt+smp.Text)
			}
		}
	}
	return &s, nil
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
	if err := atomicfile.WriteFile(filepath.Join(dir, roundsEvalLog), jl.Bytes(), 0o644); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "eval.txt"), []byte(res.Table), 0o644); err != nil {
		return err
	}
	png := filepath.Join(dir, "pass1.png")
	if err := plotPass1(res.Evals, png); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	rounds := report.Section{Title: "Post-training rounds",
		Text: "Held-out pass@1 (greedy) on the built-in tasks after every stage; reward-model rows show the accuracy on held-out (correct, wrong) answer pairs. Final model: " + res.Final + ".",
		Pre:  []string{res.Table}}
	img, ok, err := report.ImageFile(png, "pass@1 by stage")
	if err != nil {
		return err
	}
	if ok {
		res.Plot = png
		rounds.Images = []report.Image{img}
	}
	page := report.Page{Title: "herd pipeline report", Dir: dir}
	if in.curation != "" {
		c, err := report.Curation(in.curation)
		if err != nil {
			return fmt.Errorf("report: curation funnel: %w", err)
		}
		page.Sections = append(page.Sections, c)
	}
	pre, err := pretrainSection(in.pretrainModel)
	if err != nil {
		return fmt.Errorf("report: pretraining run: %w", err)
	}
	if pre != nil {
		page.Sections = append(page.Sections, *pre)
	}
	page.Sections = append(page.Sections, rounds)
	if n := len(res.Evals); n > 0 {
		ex := &report.Table{Header: []string{"prompt", "response", "verdict"}}
		for _, t := range res.Evals[n-1].Tasks {
			for _, e := range t.Examples {
				v := "wrong"
				if e.Pass {
					v = "correct"
				}
				ex.Rows = append(ex.Rows, []string{e.Prompt, e.Response, v})
			}
		}
		if len(ex.Rows) > 0 {
			page.Sections = append(page.Sections, report.Section{Title: "Final model's answers", Table: ex})
		}
	}
	stages := &report.Table{Header: []string{"round", "stage", "model"}}
	for _, e := range res.Evals {
		stages.Rows = append(stages.Rows, []string{fmt.Sprint(e.Round), e.Stage, e.Model})
	}
	page.Sections = append(page.Sections, report.Section{Title: "Stages", Table: stages})
	return report.Write(dir, page)
}

// writeRunReport writes report.html of an sft, rm or dpo run: the
// training section (metrics, plots), the last held-out evaluation, the
// data read and final/.
func (run *runner) writeRunReport() error {
	tr, err := report.Training(run.r.Out)
	if err != nil {
		return err
	}
	tr.Facts = append([]report.Fact{{Name: "kind", Value: run.r.Kind}, {Name: "starting model", Value: run.r.Model}}, tr.Facts...)
	if p := run.r.Train.PeakGFLOPs; p > 0 {
		tr.Facts = append(tr.Facts, report.Fact{Name: "MFU peak (train.peak_gflop_per_s)", Value: fmt.Sprintf("%g GFLOP/s", p)})
	}
	if d := run.res.Data.String(); d != "" {
		tr.Facts = append(tr.Facts, report.Fact{Name: "training rows read (this session)", Value: d})
	}
	page := report.Page{Title: "herd post-training run (" + run.r.Kind + ")", Dir: run.r.Out, Sections: []report.Section{tr}}
	if len(run.res.Eval) > 0 {
		ev := report.Section{Title: "Last held-out evaluation", Table: &report.Table{Header: []string{"metric", "value"}}}
		for _, k := range slices.Sorted(maps.Keys(run.res.Eval)) {
			ev.Table.Rows = append(ev.Table.Rows, []string{k, fmt.Sprintf("%.4g", run.res.Eval[k])})
		}
		page.Sections = append(page.Sections, ev)
	}
	if run.res.Final != "" {
		page.Sections = append(page.Sections, report.Section{Title: "Final model", Facts: []report.Fact{{Name: "directory", Value: run.res.Final}}})
	}
	return report.Write(run.r.Out, page)
}

// writeRSReport writes report.html of a rejection-sampling run from its
// counts.
func writeRSReport(r *Recipe, st *RSStats) error {
	pct := func(a, b int) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
	}
	s := report.Section{Title: "Rejection sampling", Facts: []report.Fact{
		{Name: "policy model", Value: r.Model},
		{Name: "chunks", Value: fmt.Sprint(st.Chunks)},
		{Name: "prompts", Value: fmt.Sprint(st.Prompts)},
		{Name: "samples", Value: fmt.Sprintf("%d (%d tokens)", st.Samples, st.SampledTokens)},
		{Name: "samples a verifier passed", Value: fmt.Sprintf("%d (%s)", st.Passed, pct(st.Passed, st.Samples))},
		{Name: "prompts dropped (every sample failed)", Value: fmt.Sprintf("%d (%s)", st.AllFailed, pct(st.AllFailed, st.Prompts))},
		{Name: "SFT rows kept (best response)", Value: fmt.Sprint(st.SFTRows)},
		{Name: "preference pairs kept", Value: fmt.Sprint(st.Pairs)},
		{Name: "pairs dropped (rs.min_gap or equal scores)", Value: fmt.Sprint(st.CloseDropped)},
	}}
	if st.Seconds > 0 {
		s.Facts = append(s.Facts, report.Fact{Name: "sampling speed (this session)", Value: fmt.Sprintf("%.0f tokens/s", float64(st.SampledTokens)/st.Seconds)})
	}
	return report.Write(r.Out, report.Page{Title: "herd post-training run (rs)", Dir: r.Out, Sections: []report.Section{s}})
}
