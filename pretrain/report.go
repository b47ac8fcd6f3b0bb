package pretrain

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/herdml/herd/internal/report"
)

// writeReport writes report.html: the training section (metrics and
// plots), the final model's evaluation and the latest samples.
func (run *runner) writeReport() error {
	tr, err := report.Training(run.r.Out)
	if err != nil {
		return err
	}
	if note := run.evalShortfall(); note != "" {
		tr.Notes = append(tr.Notes, note)
	}
	if run.r.Train.PeakGFLOPs > 0 {
		tr.Facts = append(tr.Facts, report.Fact{Name: "MFU peak (train.peak_gflop_per_s)", Value: fmt.Sprintf("%g GFLOP/s", run.r.Train.PeakGFLOPs)})
	} else {
		tr.Facts = append(tr.Facts, report.Fact{Name: "MFU", Value: "not measured: set train.peak_gflop_per_s to the hardware's peak"})
	}
	if run.eval != nil {
		tr.Facts = append(tr.Facts, report.Fact{Name: "held-out set", Value: fmt.Sprintf("%d tokens (eval.tokens %d); unigram baseline %.4f nats/token", run.eval.Targets, run.r.Eval.Tokens, run.eval.Unigram)})
	}
	page := report.Page{Title: "herd pretraining run", Dir: run.r.Out, Sections: []report.Section{tr}}
	res := &run.res
	if res.Final != "" {
		fin := report.Section{Title: "Final model", Facts: []report.Fact{{Name: "directory", Value: res.Final}}}
		switch {
		case len(res.Averaged) > 0:
			fin.Facts = append(fin.Facts, report.Fact{Name: "averaged checkpoints", Value: fmt.Sprintf("steps %v of stage %s", res.Averaged, run.plans[averageStage(run.plans)].Name)})
		default:
			fin.Facts = append(fin.Facts, report.Fact{Name: "averaged checkpoints", Value: "none (average.last < 2 or fewer than two checkpoints in the stage)"})
		}
		if run.eval != nil {
			fin.Table = &report.Table{Header: []string{"model", "held-out loss (nats/token)", "perplexity", "kept as final/"}}
			row := func(name string, loss float64, kept bool) {
				k := ""
				if kept {
					k = "yes"
				}
				fin.Table.Rows = append(fin.Table.Rows, []string{name, fmt.Sprintf("%.4f", loss), fmt.Sprintf("%.2f", math.Exp(loss)), k})
			}
			if len(res.Averaged) > 0 {
				row("average of the checkpoints", res.AverageEval, res.Kept == KeepAverage)
			}
			row(fmt.Sprintf("last checkpoint (step %d)", res.Steps), res.LastEval, res.Kept == KeepLast)
			fin.Text = fmt.Sprintf("average.keep = %s: final/ is the %s.", run.r.Average.Keep, keptName(res.Kept))
		}
		page.Sections = append(page.Sections, fin)
	}
	if len(res.Samples) > 0 {
		title := fmt.Sprintf("Samples at step %d", res.Samples[0].Step)
		if res.Samples[0].Model == "final" {
			title = "Samples of final/"
		}
		smp := report.Section{Title: title}
		for _, s := range res.Samples {
			smp.Pre = append(smp.Pre, s.Prompt+s.Text)
		}
		page.Sections = append(page.Sections, smp)
	}
	if err := report.Write(run.r.Out, page); err != nil {
		return err
	}
	res.Report = filepath.Join(run.r.Out, report.File)
	return nil
}

// keptName names the model average.keep kept, for people.
func keptName(kept string) string {
	if kept == KeepLast {
		return "last checkpoint"
	}
	return "average of the checkpoints"
}
