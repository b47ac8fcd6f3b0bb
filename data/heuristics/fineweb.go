package heuristics

import (
	"strings"
	"unicode/utf8"
)

// FineWeb holds the FineWeb (Penedo et al. 2024) line statistics rules.
type FineWeb struct {
	MinLinePunct     float64 `yaml:"min_line_punct"`      // fraction of lines ending in punctuation, at least (default 0.12)
	MaxShortLines    float64 `yaml:"max_short_lines"`     // fraction of lines of ≤ ShortLineChars, at most (default 0.67)
	ShortLineChars   int     `yaml:"short_line_chars"`    // (default 30)
	MaxDupLineChars  float64 `yaml:"max_dup_line_chars"`  // chars in duplicated lines / all chars, at most (default 0.01)
	MaxNewlineToWord float64 `yaml:"max_newline_to_word"` // newlines / words, at most (default 0.3)
}

// DefaultFineWeb returns the REFERENCE.md thresholds.
func DefaultFineWeb() FineWeb {
	return FineWeb{MinLinePunct: 0.12, MaxShortLines: 0.67, ShortLineChars: 30, MaxDupLineChars: 0.01, MaxNewlineToWord: 0.3}
}

// Check returns the rule that rejects the text analysed in a, or "".
func (f FineWeb) Check(a *Analysis) string { return f.Find(a).Rule }

// Find returns why the text analysed in a is rejected (Rule "" when kept).
func (f FineWeb) Find(a *Analysis) Finding {
	lines := a.nonEmptyLines()
	if len(lines) == 0 {
		return Finding{Rule: "empty", Note: "no non-empty line"}
	}
	punct, short := 0, 0
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if endsWithTerminal(t) {
			punct++
		}
		if len(t) <= f.ShortLineChars || utf8.RuneCountInString(t) <= f.ShortLineChars {
			short++
		}
	}
	if v := float64(punct) / float64(len(lines)); f.MinLinePunct > 0 && v < f.MinLinePunct {
		return Finding{Rule: "line_punct", Field: "min_line_punct", Value: v, Limit: f.MinLinePunct}
	}
	if v := float64(short) / float64(len(lines)); f.MaxShortLines > 0 && v > f.MaxShortLines {
		return Finding{Rule: "short_lines", Field: "max_short_lines", Value: v, Limit: f.MaxShortLines, Max: true}
	}
	if f.MaxDupLineChars > 0 {
		_, dupChars := a.duplicateLines()
		total := 0
		for _, l := range lines {
			total += len(l)
		}
		if v := float64(dupChars) / float64(total); v > f.MaxDupLineChars {
			return Finding{Rule: "dup_line_chars", Field: "max_dup_line_chars", Value: v, Limit: f.MaxDupLineChars, Max: true}
		}
	}
	if f.MaxNewlineToWord > 0 && len(a.Words) > 0 {
		nl := len(a.Lines) - 1 // newlines
		if v := float64(nl) / float64(len(a.Words)); v > f.MaxNewlineToWord {
			return Finding{Rule: "newline_to_word", Field: "max_newline_to_word", Value: v, Limit: f.MaxNewlineToWord, Max: true}
		}
	}
	return Finding{}
}
