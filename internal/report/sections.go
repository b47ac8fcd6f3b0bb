package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/herdml/herd/internal/jsonpos"
	"github.com/herdml/herd/train"
)

// curationStats is the name of a curation's accounting file.
const curationStats = "stats.json"

// Curation is the section of a curation directory: the funnel of
// stats.json, one row per stage with documents and bytes in and out, the
// removals by rule, and every further counter a stage records.
func Curation(dir string) (Section, error) {
	path := filepath.Join(dir, curationStats)
	data, err := os.ReadFile(path)
	if err != nil {
		return Section{}, err
	}
	var st struct {
		Funnel struct {
			Order  []string                              `json:"order"`
			Stages map[string]map[string]json.RawMessage `json:"stages"`
		} `json:"funnel"`
		Kept *count `json:"kept"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return Section{}, fmt.Errorf("%s: %w", path, jsonpos.Wrap(data, err))
	}
	if len(st.Funnel.Order) == 0 {
		return Section{}, fmt.Errorf("%s: no funnel stages (is it a herd curation's stats.json?)", path)
	}
	t := &Table{Header: []string{"stage", "docs in", "docs out", "MB in", "MB out", "removed (docs, MB)", "other counters"}}
	for _, name := range st.Funnel.Order {
		fields := st.Funnel.Stages[name]
		var in, out count
		var removed map[string]count
		var other []string
		for k, raw := range fields {
			var err error
			switch k {
			case "in":
				err = json.Unmarshal(raw, &in)
			case "out":
				err = json.Unmarshal(raw, &out)
			case "removed":
				err = json.Unmarshal(raw, &removed)
			default:
				other = append(other, k+" "+compact(raw))
			}
			if err != nil {
				return Section{}, fmt.Errorf("%s: funnel stage %s, %s: %w", path, name, k, err)
			}
		}
		var rm []string
		for reason, c := range removed {
			rm = append(rm, fmt.Sprintf("%s %d, %.2f", reason, c.Docs, float64(c.Bytes)/1e6))
		}
		slices.Sort(rm)
		slices.Sort(other)
		t.Rows = append(t.Rows, []string{name, fmt.Sprint(in.Docs), fmt.Sprint(out.Docs),
			fmt.Sprintf("%.2f", float64(in.Bytes)/1e6), fmt.Sprintf("%.2f", float64(out.Bytes)/1e6),
			strings.Join(rm, "; "), strings.Join(other, "; ")})
	}
	s := Section{Title: "Curation funnel", Table: t,
		Text: "Documents and bytes entering and leaving each stage, from " + path + "."}
	if st.Kept != nil {
		s.Facts = []Fact{{"kept", fmt.Sprintf("%d documents, %.2f MB", st.Kept.Docs, float64(st.Kept.Bytes)/1e6)}}
	}
	return s, nil
}

type count struct {
	Docs  int64 `json:"docs"`
	Bytes int64 `json:"bytes"`
	Lines int64 `json:"lines"`
}

// compact renders a JSON value on one line.
func compact(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return string(raw)
	}
	return string(b)
}

// WriteCuration writes report.html into a curation directory, from its
// stats.json.
func WriteCuration(dir string) error {
	s, err := Curation(dir)
	if err != nil {
		return err
	}
	return Write(dir, Page{Title: "herd curation", Dir: dir, Sections: []Section{s}})
}

// Training is the section of a training run directory (pretraining or
// post-training): steps, tokens, the last losses, throughput and MFU from
// metrics.jsonl, and the loss and metrics plots. A run without
// metrics.jsonl yet gives an empty section.
func Training(dir string) (Section, error) {
	s := Section{Title: "Training"}
	recs, err := train.ReadMetrics(filepath.Join(dir, train.MetricsFile))
	if errors.Is(err, fs.ErrNotExist) {
		s.Text = "No metrics yet."
		return s, nil
	}
	if err != nil {
		return s, err
	}
	var last, lastEval *train.Record
	var stages []string
	var tps, mfu, gflop float64
	var n, skipped int
	for i := range recs {
		r := &recs[i]
		switch r.Kind {
		case "train":
			last = r
			if len(stages) == 0 || stages[len(stages)-1] != r.Stage {
				stages = append(stages, r.Stage)
			}
			if r.Skipped {
				skipped++
				continue
			}
			n++
			tps, mfu, gflop = r.Values["tokens_per_s"], r.Values["mfu"], r.Values["gflop_per_s"]
		case "eval":
			lastEval = r
		}
	}
	if last == nil {
		s.Text = "No training steps yet."
		return s, nil
	}
	s.Facts = append(s.Facts,
		Fact{"steps", fmt.Sprintf("%d (stages: %s)", last.Step, strings.Join(stages, " → "))},
		Fact{"training tokens", fmt.Sprint(last.Tokens)},
		Fact{"last training loss", fmt.Sprintf("%.4f nats/token", last.Values["loss"])})
	if lastEval != nil {
		if v, ok := lastEval.Values["eval_loss"]; ok {
			s.Facts = append(s.Facts, Fact{"last held-out loss", fmt.Sprintf("%.4f nats/token (step %d)", v, lastEval.Step)})
		}
	}
	if tps > 0 {
		s.Facts = append(s.Facts, Fact{"throughput (last step)", fmt.Sprintf("%.0f tokens/s, %.2f GFLOP/s", tps, gflop)})
	}
	if mfu > 0 {
		s.Facts = append(s.Facts, Fact{"MFU (last step)", fmt.Sprintf("%.2f%% of the stated peak", 100*mfu)})
	}
	if skipped > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%d steps were skipped (non-finite loss or gradient norm).", skipped))
	}
	for _, p := range []struct{ file, alt string }{{train.LossPlot, "loss"}, {train.PanelsPlot, "learning rate, gradient norm, throughput, MFU"}} {
		img, ok, err := ImageFile(filepath.Join(dir, p.file), p.alt)
		if err != nil {
			return s, err
		}
		if ok {
			s.Images = append(s.Images, img)
		}
	}
	return s, nil
}
