package heuristics

import (
	"strings"
	"testing"
)

// TestFindings: each rule's finding states the measured value against the
// threshold (counted here by hand), and agrees with Check.
func TestFindings(t *testing.T) {
	sentence := "The quick brown fox jumps over the lazy dog and the cat."
	many := strings.Repeat(sentence+"\n", 10)
	cases := []struct {
		name  string
		find  func(a *Analysis) Finding
		check func(a *Analysis) string
		text  string
		want  string
	}{
		{"gopher min words", DefaultGopherQuality().Find, DefaultGopherQuality().Check, "only five words here now.", "5 < min_words 50"},
		{"gopher stop words", GopherQuality{MinStopWords: 2, StopWords: []string{"the"}}.Find, GopherQuality{MinStopWords: 2, StopWords: []string{"the"}}.Check, "one the two", "1 < min_stop_words 2"},
		{"gopher ellipsis lines", GopherQuality{MaxEllipsisLines: 0.3}.Find, GopherQuality{MaxEllipsisLines: 0.3}.Check, "a…\nb…\nc.\nd.", "0.5 > max_ellipsis_lines 0.3"},
		{"gopher kept", DefaultGopherQuality().Find, DefaultGopherQuality().Check, many, ""},
		{"repetition lines", GopherRepetition{DupLineFrac: 0.3}.Find, GopherRepetition{DupLineFrac: 0.3}.Check, "x y\nx y\nx y\nz w", "0.5 > dup_line_frac 0.3"},
		{"repetition top 3-gram", GopherRepetition{TopNGramCharFrac: []float64{0, 0.1}}.Find, GopherRepetition{TopNGramCharFrac: []float64{0, 0.1}}.Check, "a b c a b c d", "0.8571 > top_ngram_char_frac[1] 0.1"}, // "a b c" twice: 6 of 7 word chars
		{"repetition kept", GopherRepetition{TopNGramCharFrac: []float64{0, 0.9}}.Find, GopherRepetition{TopNGramCharFrac: []float64{0, 0.9}}.Check, "a b c a b c d", ""},
		{"c4 curly bracket", func(a *Analysis) Finding { _, f, _ := DefaultC4().Clean(a); return f }, func(a *Analysis) string { _, r, _ := DefaultC4().Apply(a); return r }, "a {b}", `"{" at byte 2 (drop_curly_bracket)`},
		{"c4 min sentences", func(a *Analysis) Finding { _, f, _ := DefaultC4().Clean(a); return f }, func(a *Analysis) string { _, r, _ := DefaultC4().Apply(a); return r }, "One short line here.\nAnother line is here!", "2 < min_sentences 5"},
		{"c4 nothing left", func(a *Analysis) Finding { _, f, _ := DefaultC4().Clean(a); return f }, func(a *Analysis) string { _, r, _ := DefaultC4().Apply(a); return r }, "menu\nhome page", "all 2 lines removed by the line rules"},
		{"fineweb punctuation", FineWeb{MinLinePunct: 0.12}.Find, FineWeb{MinLinePunct: 0.12}.Check, "no stop\nnor here\nor here", "0 < min_line_punct 0.12"},
		{"fineweb newlines", FineWeb{MaxNewlineToWord: 0.3}.Find, FineWeb{MaxNewlineToWord: 0.3}.Check, "a.\nb.\nc d.", "0.5 > max_newline_to_word 0.3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var a Analysis
			f := c.find(a.Of(c.text))
			if got := f.String(); got != c.want {
				t.Errorf("finding %q, want %q", got, c.want)
			}
			a.Reset()
			if r := c.check(a.Of(c.text)); r != f.Rule {
				t.Errorf("Check says %q, Find %q", r, f.Rule)
			}
			if (f.Rule == "") != (c.want == "") {
				t.Errorf("rule %q for finding %q", f.Rule, c.want)
			}
		})
	}
}

func TestFormatNumber(t *testing.T) {
	for v, want := range map[float64]string{3: "3", 0.5: "0.5", 0.123456: "0.1235", 123456: "123456", 10.07: "10.07", -2: "-2"} {
		if got := formatNumber(v); got != want {
			t.Errorf("FormatNumber(%v) = %q, want %q", v, got, want)
		}
	}
}
