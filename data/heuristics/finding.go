package heuristics

import (
	"math"
	"strconv"
)

// Finding says why a rule rejects a text: the value measured and the
// threshold it crossed, so a removal can be explained and a threshold
// tuned. The zero Finding keeps the text.
type Finding struct {
	Rule  string  // the rule that rejects the text ("" when kept)
	Field string  // the recipe field holding the threshold, e.g. "min_words" or "top_ngram_char_frac[1]"
	Value float64 // what was measured
	Limit float64 // the threshold
	Max   bool    // Limit is a maximum (the value exceeds it); else a minimum (the value is below it)
	Note  string  // for rules without a number: what was found (replaces the comparison; Field, if set, follows in parentheses)
}

// String is the comparison, e.g. "23 < min_words 50" or
// "0.35 > max_short_lines 0.3", or the note.
func (f Finding) String() string {
	if f.Note != "" && f.Field != "" {
		return f.Note + " (" + f.Field + ")"
	}
	if f.Note != "" || f.Rule == "" {
		return f.Note
	}
	op := " < "
	if f.Max {
		op = " > "
	}
	return formatNumber(f.Value) + op + f.Field + " " + formatNumber(f.Limit)
}

// formatNumber writes whole numbers as integers and others with four
// significant digits.
func formatNumber(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
