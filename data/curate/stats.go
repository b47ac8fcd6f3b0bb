package curate

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/herdml/herd/internal/atomicfile"
)

var timeAfter = time.After

// Count is a number of documents and their bytes.
type Count struct {
	Docs  int64 `json:"docs"`
	Bytes int64 `json:"bytes"`
}

// StageStats is the funnel of one stage.
type StageStats struct {
	In       Count            `json:"in"`
	Out      Count            `json:"out"`
	Removed  map[string]Count `json:"removed,omitempty"` // by rule
	Modified int64            `json:"modified_lines,omitempty"`
	Repaired Count            `json:"repaired_invalid_utf8,omitzero"` // input: documents kept with invalid UTF-8 replaced
}

// Stats is the funnel of a run: per stage, documents and bytes in and out
// and removals per rule. Stage "input" counts records read.
type Stats struct {
	Stages map[string]*StageStats `json:"stages"`
	Order  []string               `json:"order"`
}

func newStats() *Stats { return &Stats{Stages: map[string]*StageStats{}} }

func (s *Stats) stage(name string) *StageStats {
	st := s.Stages[name]
	if st == nil {
		st = &StageStats{Removed: map[string]Count{}}
		s.Stages[name] = st
		s.Order = append(s.Order, name)
	}
	return st
}

func (s *Stats) add(stage, _ string, bytes int64) {
	st := s.stage(stage)
	st.In.Docs++
	st.In.Bytes += bytes
}

func (s *Stats) keep(stage string, bytes int64) {
	st := s.stage(stage)
	st.Out.Docs++
	st.Out.Bytes += bytes
}

func (s *Stats) remove(stage, rule string, bytes int64) {
	st := s.stage(stage)
	c := st.Removed[rule]
	c.Docs++
	c.Bytes += bytes
	st.Removed[rule] = c
}

func (s *Stats) modified(stage string, lines int64) { s.stage(stage).Modified += lines }

func (s *Stats) repaired(stage string, bytes int64) {
	st := s.stage(stage)
	st.Repaired.Docs++
	st.Repaired.Bytes += bytes
}

func (s *Stats) merge(o *Stats) {
	for _, name := range o.Order {
		src := o.Stages[name]
		st := s.stage(name)
		st.In.Docs += src.In.Docs
		st.In.Bytes += src.In.Bytes
		st.Out.Docs += src.Out.Docs
		st.Out.Bytes += src.Out.Bytes
		st.Modified += src.Modified
		st.Repaired.Docs += src.Repaired.Docs
		st.Repaired.Bytes += src.Repaired.Bytes
		for k, v := range src.Removed {
			c := st.Removed[k]
			c.Docs += v.Docs
			c.Bytes += v.Bytes
			st.Removed[k] = c
		}
	}
}

func readStats(path string) (*Stats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := newStats()
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, st := range s.Stages {
		if st.Removed == nil {
			st.Removed = map[string]Count{}
		}
	}
	return s, nil
}

// mergeStats adds the final funnels of all units, in unit order, with the
// stages in recipe order.
func (r *runner) mergeStats() (*Stats, error) {
	total := newStats()
	total.stage("input")
	for _, s := range r.cfg.Stages {
		total.stage(s)
	}
	for _, u := range r.units {
		s, err := readStats(r.finalStats(u.Index))
		if err != nil {
			return nil, err
		}
		total.merge(s)
	}
	return total, nil
}

// Total returns the documents removed by all stages, and kept.
func (s *Stats) Total() (removed, kept Count) {
	for _, name := range s.Order {
		for _, c := range s.Stages[name].Removed {
			removed.Docs += c.Docs
			removed.Bytes += c.Bytes
		}
	}
	if in := s.Stages["input"]; in != nil {
		kept.Docs = in.In.Docs - removed.Docs
	}
	if n := len(s.Order); n > 0 {
		last := s.Stages[s.Order[n-1]]
		kept.Bytes = last.Out.Bytes
	}
	return removed, kept
}

func (s *Stats) writeJSON(path, recipeHash string) error {
	removed, kept := s.Total()
	b, err := json.MarshalIndent(map[string]any{"recipe": recipeHash, "funnel": s, "removed": removed, "kept": kept}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}

// PrintFunnel writes the funnel table: documents and bytes in and out per
// stage, then removals per rule.
func (s *Stats) PrintFunnel(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stage\tdocs in\tdocs out\tremoved\tMB in\tMB out\t")
	for _, name := range s.Order {
		st := s.Stages[name]
		var rm int64
		for _, c := range st.Removed {
			rm += c.Docs
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.2f\t\n", name, st.In.Docs, st.Out.Docs, rm, float64(st.In.Bytes)/1e6, float64(st.Out.Bytes)/1e6)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "removed by\tdocs\tMB\t")
	for _, name := range s.Order {
		st := s.Stages[name]
		rules := make([]string, 0, len(st.Removed))
		for k := range st.Removed {
			rules = append(rules, k)
		}
		sort.Strings(rules)
		for _, k := range rules {
			c := st.Removed[k]
			fmt.Fprintf(tw, "%s/%s\t%d\t%.3f\t\n", name, k, c.Docs, float64(c.Bytes)/1e6)
		}
		if st.Modified > 0 {
			fmt.Fprintf(tw, "%s (lines removed)\t%d\t\t\n", name, st.Modified)
		}
		if st.Repaired.Docs > 0 {
			fmt.Fprintf(tw, "%s (invalid UTF-8 repaired, kept)\t%d\t%.3f\t\n", name, st.Repaired.Docs, float64(st.Repaired.Bytes)/1e6)
		}
	}
	tw.Flush()
}
