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

// Edit counts the edits of documents a stage kept: how many documents it
// changed, the lines it removed from them and the bytes (net: a stage
// that lengthens a text makes it negative).
type Edit struct {
	Docs  int64 `json:"docs"`
	Lines int64 `json:"lines"`
	Bytes int64 `json:"bytes"`
}

func (e *Edit) add(o Edit) { e.Docs += o.Docs; e.Lines += o.Lines; e.Bytes += o.Bytes }

// StageStats is the funnel of one stage. Its bytes add up:
// In.Bytes − Out.Bytes = the removed bytes + Edited.Bytes + Truncated.Bytes + NotTextBytes.
type StageStats struct {
	In      Count            `json:"in"`
	Out     Count            `json:"out"`
	Removed map[string]Count `json:"removed,omitempty"` // by rule
	// Examples holds the detail of the first removal of each rule (in
	// input order), e.g. the measured value and the threshold.
	Examples map[string]string `json:"examples,omitempty"`
	// Edited: kept documents the stage changed in place (C4's line
	// filter, line dedup, normalization).
	Edited Edit `json:"edited,omitzero"`
	// Truncated: input documents cut to limits.max_doc_bytes.
	Truncated Edit `json:"truncated,omitzero"`
	// NotTextBytes: input bytes that are not document text (JSON syntax
	// and escapes, the separators of split text files, HTML markup; where
	// invalid UTF-8 was repaired, less the bytes its U+FFFD replacements
	// added).
	NotTextBytes int64 `json:"not_text_bytes,omitempty"`
	Repaired     Count `json:"repaired_invalid_utf8,omitzero"` // input: documents kept with invalid UTF-8 replaced
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
		st = &StageStats{Removed: map[string]Count{}, Examples: map[string]string{}}
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

func (s *Stats) remove(stage, rule, detail string, bytes int64) {
	st := s.stage(stage)
	if _, ok := st.Examples[rule]; !ok && detail != "" {
		st.Examples[rule] = detail
	}
	c := st.Removed[rule]
	c.Docs++
	c.Bytes += bytes
	st.Removed[rule] = c
}

// edited counts a kept document the stage changed.
func (s *Stats) edited(stage string, lines, bytes int64) {
	s.stage(stage).Edited.add(Edit{Docs: 1, Lines: lines, Bytes: bytes})
}

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
		st.Edited.add(src.Edited)
		st.Truncated.add(src.Truncated)
		st.NotTextBytes += src.NotTextBytes
		st.Repaired.Docs += src.Repaired.Docs
		st.Repaired.Bytes += src.Repaired.Bytes
		for k, v := range src.Examples {
			if _, ok := st.Examples[k]; !ok {
				st.Examples[k] = v
			}
		}
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
		if st.Examples == nil {
			st.Examples = map[string]string{}
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

// Edits adds up the edits of kept documents over all stages, truncation
// included.
func (s *Stats) Edits() Edit {
	var e Edit
	for _, name := range s.Order {
		e.add(s.Stages[name].Edited)
		e.add(s.Stages[name].Truncated)
	}
	return e
}

func (s *Stats) writeJSON(path, recipeHash string) error {
	removed, kept := s.Total()
	b, err := json.MarshalIndent(map[string]any{"recipe": recipeHash, "funnel": s, "removed": removed, "kept": kept, "edited": s.Edits()}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}

// PrintFunnel writes the funnel table: documents and bytes in and out per
// stage, what each removed and edited, then removals per rule and the
// edits of kept documents.
func (s *Stats) PrintFunnel(w io.Writer) {
	mb := func(b int64) string { return fmt.Sprintf("%.2f", float64(b)/1e6) }
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stage\tdocs in\tdocs out\tremoved\tedited\tMB in\tMB out\tMB removed\tMB edited\t")
	for _, name := range s.Order {
		st := s.Stages[name]
		var rm Count
		for _, c := range st.Removed {
			rm.Docs += c.Docs
			rm.Bytes += c.Bytes
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", name, st.In.Docs, st.Out.Docs, rm.Docs,
			st.Edited.Docs+st.Truncated.Docs, mb(st.In.Bytes), mb(st.Out.Bytes), mb(rm.Bytes), mb(st.Edited.Bytes+st.Truncated.Bytes+st.NotTextBytes))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "removed or edited by\tdocs\tlines\tMB\t")
	for _, name := range s.Order {
		st := s.Stages[name]
		rules := make([]string, 0, len(st.Removed))
		for k := range st.Removed {
			rules = append(rules, k)
		}
		sort.Strings(rules)
		for _, k := range rules {
			c := st.Removed[k]
			fmt.Fprintf(tw, "%s/%s\t%d\t\t%.3f\t\n", name, k, c.Docs, float64(c.Bytes)/1e6)
		}
		if st.NotTextBytes != 0 {
			fmt.Fprintf(tw, "%s (not text: record syntax, separators, markup)\t\t\t%.3f\t\n", name, float64(st.NotTextBytes)/1e6)
		}
		if e := st.Truncated; e != (Edit{}) {
			fmt.Fprintf(tw, "%s (truncated to limits.max_doc_bytes, kept)\t%d\t%d\t%.3f\t\n", name, e.Docs, e.Lines, float64(e.Bytes)/1e6)
		}
		if e := st.Edited; e != (Edit{}) {
			fmt.Fprintf(tw, "%s (edited, kept)\t%d\t%d\t%.3f\t\n", name, e.Docs, e.Lines, float64(e.Bytes)/1e6)
		}
		if st.Repaired.Docs > 0 {
			fmt.Fprintf(tw, "%s (invalid UTF-8 repaired, kept)\t%d\t\t%.3f\t\n", name, st.Repaired.Docs, float64(st.Repaired.Bytes)/1e6)
		}
	}
	tw.Flush()
}
