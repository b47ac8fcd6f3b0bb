package chatdata

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// defaultSamples is the number of bad rows kept as examples per reason.
const defaultSamples = 5

// Stats counts what a loader read: rows, examples, bad rows by reason with
// the first few of each (file:line: detail), and truncations.
type Stats struct {
	Rows            int64               `json:"rows"`     // non-blank records read, of the split served
	Examples        int64               `json:"examples"` // rows that became examples
	Truncated       int64               `json:"truncated,omitempty"`
	TruncatedTokens int64               `json:"truncated_tokens,omitempty"` // prompt tokens cut by TruncateLeft
	Bad             map[string]int64    `json:"bad,omitempty"`              // bad rows by reason
	Samples         map[string][]string `json:"samples,omitempty"`          // the first bad rows of each reason
	OtherSplit      int64               `json:"other_split,omitempty"`      // rows skipped as the other split of Options.HoldOut
}

// Dropped returns the number of bad rows.
func (s *Stats) Dropped() int64 {
	var n int64
	for _, c := range s.Bad {
		n += c
	}
	return n
}

// Clone returns a deep copy.
func (s Stats) Clone() Stats {
	s.Bad = maps.Clone(s.Bad)
	if s.Samples != nil {
		m := make(map[string][]string, len(s.Samples))
		for k, v := range s.Samples {
			m[k] = slices.Clone(v)
		}
		s.Samples = m
	}
	return s
}

// add counts a bad row, keeping up to keep samples of its reason.
func (s *Stats) add(e *rowError, keep int) {
	if s.Bad == nil {
		s.Bad = map[string]int64{}
	}
	s.Bad[e.Reason]++
	if len(s.Samples[e.Reason]) < keep {
		if s.Samples == nil {
			s.Samples = map[string][]string{}
		}
		d := e.Detail
		if len(d) > 200 {
			d = d[:197] + "..."
		}
		s.Samples[e.Reason] = append(s.Samples[e.Reason], e.Loc+": "+d)
	}
}

// String summarises the counts, one line, reasons in a fixed order, e.g.
// "1000 rows: 990 examples (3 truncated), 10 bad (too_long 7 [a.jsonl:3, …], …)".
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d rows: %d examples", s.Rows, s.Examples)
	if s.Truncated > 0 {
		fmt.Fprintf(&b, " (%d truncated, %d tokens cut)", s.Truncated, s.TruncatedTokens)
	}
	if d := s.Dropped(); d > 0 {
		fmt.Fprintf(&b, ", %d bad (", d)
		first := true
		for _, r := range reasons {
			if s.Bad[r] == 0 {
				continue
			}
			if !first {
				b.WriteString("; ")
			}
			first = false
			fmt.Fprintf(&b, "%s %d", r, s.Bad[r])
			if len(s.Samples[r]) > 0 {
				fmt.Fprintf(&b, ", e.g. %s", s.Samples[r][0])
			}
		}
		b.WriteString(")")
	}
	return b.String()
}
