package heuristics

import (
	"strings"
	"unicode/utf8"
)

// GopherQuality holds the Gopher (Rae et al. 2021) quality thresholds.
// A zero threshold disables its rule.
type GopherQuality struct {
	MinWords          int      `yaml:"min_words"`             // fewest non-symbol words (default 50)
	MaxWords          int      `yaml:"max_words"`             // most non-symbol words (default 100000)
	MinAvgWordLength  float64  `yaml:"min_avg_word_length"`   // mean non-symbol word length, chars (default 3)
	MaxAvgWordLength  float64  `yaml:"max_avg_word_length"`   // (default 10)
	MaxSymbolWordRate float64  `yaml:"max_symbol_word_ratio"` // ('#' + ellipses) / words (default 0.1)
	MaxBulletLines    float64  `yaml:"max_bullet_lines"`      // fraction of lines starting with a bullet (default 0.9)
	MaxEllipsisLines  float64  `yaml:"max_ellipsis_lines"`    // fraction of lines ending in an ellipsis (default 0.3)
	MinAlphaWords     float64  `yaml:"min_alpha_words"`       // fraction of words with a letter (default 0.8)
	MinStopWords      int      `yaml:"min_stop_words"`        // fewest stop words (default 2)
	StopWords         []string `yaml:"stop_words"`            // a document must contain at least min_stop_words of these words (default: the, be, to, of, and, that, have, with)
}

// DefaultGopherQuality returns the REFERENCE.md thresholds.
func DefaultGopherQuality() GopherQuality {
	return GopherQuality{
		MinWords: 50, MaxWords: 100000, MinAvgWordLength: 3, MaxAvgWordLength: 10,
		MaxSymbolWordRate: 0.1, MaxBulletLines: 0.9, MaxEllipsisLines: 0.3,
		MinAlphaWords: 0.8, MinStopWords: 2,
		StopWords: []string{"the", "be", "to", "of", "and", "that", "have", "with"},
	}
}

// Check returns the rule that rejects the text analysed in a, or "".
func (g GopherQuality) Check(a *Analysis) string { return g.Find(a).Rule }

// Find returns why the text analysed in a is rejected (Rule "" when kept).
func (g GopherQuality) Find(a *Analysis) Finding {
	nonSymbol, nonSymbolChars, alpha, symbols, stop := 0, 0, 0, 0, 0
	// Stop words are compared only when a word's length and first letter
	// could match one.
	minStop, maxStop := 1<<30, 0
	var first [256]bool
	for _, s := range g.StopWords {
		minStop, maxStop = min(minStop, utf8.RuneCountInString(s)), max(maxStop, len(s))
		switch {
		case s == "":
		case s[0] >= utf8.RuneSelf: // may fold to anything: compare every word
			for i := range first {
				first[i] = true
			}
		default:
			first[lowerASCII(s[0])] = true
			first[upperASCII(s[0])] = true
		}
	}
	for _, w := range a.Words {
		ascii, sym, letter, dots, maxDots := true, true, false, 0, 0
		for i := 0; i < len(w); i++ {
			c := w[i]
			if c >= utf8.RuneSelf {
				ascii = false
				break
			}
			if asciiPunct[c] {
				if c == '.' {
					dots++
					maxDots = max(maxDots, dots)
				} else {
					dots = 0
				}
				continue
			}
			dots = 0
			sym = false
			if (c|0x20) >= 'a' && (c|0x20) <= 'z' {
				letter = true
			}
		}
		if ascii {
			if !sym {
				nonSymbol++
				nonSymbolChars += len(w)
			}
			if letter {
				alpha++
			}
			if w == "#" || maxDots >= 3 {
				symbols++
			}
		} else {
			if !onlySymbols(w) {
				nonSymbol++
				nonSymbolChars += utf8.RuneCountInString(w)
			}
			if hasLetter(w) {
				alpha++
			}
			if strings.Contains(w, "...") || strings.Contains(w, "…") {
				symbols++
			}
		}
		if g.MinStopWords > 0 && len(w) <= maxStop+4 {
			lw := trimPunct(w)
			if lw != "" && len(lw) >= minStop && len(lw) <= 4*maxStop && (lw[0] >= utf8.RuneSelf || first[lw[0]]) {
				for _, s := range g.StopWords {
					if strings.EqualFold(lw, s) {
						stop++
						break
					}
				}
			}
		}
	}
	switch {
	case g.MinWords > 0 && nonSymbol < g.MinWords:
		return Finding{Rule: "min_words", Field: "min_words", Value: float64(nonSymbol), Limit: float64(g.MinWords)}
	case g.MaxWords > 0 && nonSymbol > g.MaxWords:
		return Finding{Rule: "max_words", Field: "max_words", Value: float64(nonSymbol), Limit: float64(g.MaxWords), Max: true}
	}
	if nonSymbol > 0 {
		avg := float64(nonSymbolChars) / float64(nonSymbol)
		if g.MinAvgWordLength > 0 && avg < g.MinAvgWordLength {
			return Finding{Rule: "min_avg_word_length", Field: "min_avg_word_length", Value: avg, Limit: g.MinAvgWordLength}
		}
		if g.MaxAvgWordLength > 0 && avg > g.MaxAvgWordLength {
			return Finding{Rule: "max_avg_word_length", Field: "max_avg_word_length", Value: avg, Limit: g.MaxAvgWordLength, Max: true}
		}
	}
	n := len(a.Words)
	if g.MaxSymbolWordRate > 0 && n > 0 && float64(symbols)/float64(n) > g.MaxSymbolWordRate {
		return Finding{Rule: "max_symbol_word_ratio", Field: "max_symbol_word_ratio", Value: float64(symbols) / float64(n), Limit: g.MaxSymbolWordRate, Max: true}
	}
	bullets, ellipsis, lines := 0, 0, 0
	for _, l := range a.nonEmptyLines() {
		t := strings.TrimSpace(l)
		lines++
		switch t[0] {
		case '-', '*':
			bullets++
		case 0xE2: // "•" U+2022, "‣" U+2023, "●" U+25CF
			if strings.HasPrefix(t, "•") || strings.HasPrefix(t, "‣") || strings.HasPrefix(t, "●") {
				bullets++
			}
		}
		if strings.HasSuffix(t, "...") || strings.HasSuffix(t, "…") {
			ellipsis++
		}
	}
	if lines > 0 {
		if g.MaxBulletLines > 0 && float64(bullets)/float64(lines) > g.MaxBulletLines {
			return Finding{Rule: "max_bullet_lines", Field: "max_bullet_lines", Value: float64(bullets) / float64(lines), Limit: g.MaxBulletLines, Max: true}
		}
		if g.MaxEllipsisLines > 0 && float64(ellipsis)/float64(lines) > g.MaxEllipsisLines {
			return Finding{Rule: "max_ellipsis_lines", Field: "max_ellipsis_lines", Value: float64(ellipsis) / float64(lines), Limit: g.MaxEllipsisLines, Max: true}
		}
	}
	if g.MinAlphaWords > 0 && n > 0 && float64(alpha)/float64(n) < g.MinAlphaWords {
		return Finding{Rule: "min_alpha_words", Field: "min_alpha_words", Value: float64(alpha) / float64(n), Limit: g.MinAlphaWords}
	}
	if g.MinStopWords > 0 && stop < g.MinStopWords {
		return Finding{Rule: "min_stop_words", Field: "min_stop_words", Value: float64(stop), Limit: float64(g.MinStopWords)}
	}
	return Finding{}
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// GopherRepetition holds the Gopher repetition thresholds (fractions; zero
// disables a rule).
type GopherRepetition struct {
	DupLineFrac      float64   `yaml:"dup_line_frac"`       // lines that repeat an earlier line (default 0.3)
	DupParaFrac      float64   `yaml:"dup_para_frac"`       // paragraphs repeating an earlier one (default 0.3)
	DupLineCharFrac  float64   `yaml:"dup_line_char_frac"`  // chars in repeated lines (default 0.2)
	DupParaCharFrac  float64   `yaml:"dup_para_char_frac"`  // chars in repeated paragraphs (default 0.2)
	TopNGramCharFrac []float64 `yaml:"top_ngram_char_frac"` // for n = 2, 3, 4: chars of the most frequent n-gram (default 0.20, 0.18, 0.16)
	DupNGramCharFrac []float64 `yaml:"dup_ngram_char_frac"` // for n = 5..10: chars covered by repeated n-grams (default 0.15 .. 0.10)
}

// DefaultGopherRepetition returns the REFERENCE.md thresholds.
func DefaultGopherRepetition() GopherRepetition {
	return GopherRepetition{
		DupLineFrac: 0.3, DupParaFrac: 0.3, DupLineCharFrac: 0.2, DupParaCharFrac: 0.2,
		TopNGramCharFrac: []float64{0.20, 0.18, 0.16},
		DupNGramCharFrac: []float64{0.15, 0.14, 0.13, 0.12, 0.11, 0.10},
	}
}

// Check returns the rule that rejects the text analysed in a, or "".
func (g GopherRepetition) Check(a *Analysis) string { return g.Find(a).Rule }

// Find returns why the text analysed in a is rejected (Rule "" when kept).
func (g GopherRepetition) Find(a *Analysis) Finding {
	textChars := len(a.Text)
	if textChars == 0 {
		return Finding{}
	}
	if g.DupParaFrac > 0 || g.DupParaCharFrac > 0 {
		paras := a.paragraphs()
		dup, dupChars := duplicates(a, paras)
		if v := float64(dup) / float64(len(paras)); g.DupParaFrac > 0 && v > g.DupParaFrac {
			return Finding{Rule: "dup_para_frac", Field: "dup_para_frac", Value: v, Limit: g.DupParaFrac, Max: true}
		}
		if v := float64(dupChars) / float64(textChars); g.DupParaCharFrac > 0 && v > g.DupParaCharFrac {
			return Finding{Rule: "dup_para_char_frac", Field: "dup_para_char_frac", Value: v, Limit: g.DupParaCharFrac, Max: true}
		}
	}
	if g.DupLineFrac > 0 || g.DupLineCharFrac > 0 {
		if lines := a.nonEmptyLines(); len(lines) > 0 {
			dup, dupChars := a.duplicateLines()
			if v := float64(dup) / float64(len(lines)); g.DupLineFrac > 0 && v > g.DupLineFrac {
				return Finding{Rule: "dup_line_frac", Field: "dup_line_frac", Value: v, Limit: g.DupLineFrac, Max: true}
			}
			if v := float64(dupChars) / float64(textChars); g.DupLineCharFrac > 0 && v > g.DupLineCharFrac {
				return Finding{Rule: "dup_line_char_frac", Field: "dup_line_char_frac", Value: v, Limit: g.DupLineCharFrac, Max: true}
			}
		}
	}
	ends := a.wordChars()
	wordChars := ends[len(ends)-1]
	if wordChars == 0 {
		return Finding{}
	}
	for i, th := range g.TopNGramCharFrac {
		n := i + 2
		if th <= 0 {
			continue
		}
		if v := float64(topNGramChars(a, n)) / float64(wordChars); v > th {
			return Finding{Rule: "top_" + itoa(n) + "gram_char_frac", Field: "top_ngram_char_frac[" + itoa(i) + "]", Value: v, Limit: th, Max: true}
		}
	}
	for i, th := range g.DupNGramCharFrac {
		n := i + 5
		if th <= 0 {
			continue
		}
		d := dupNGramChars(a, n)
		if v := float64(d) / float64(wordChars); v > th {
			return Finding{Rule: "dup_" + itoa(n) + "gram_char_frac", Field: "dup_ngram_char_frac[" + itoa(i) + "]", Value: v, Limit: th, Max: true}
		}
		if d == 0 {
			break // no repeated n-gram means no repeated longer one either
		}
	}
	return Finding{}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return string(rune('0'+n/10)) + string(rune('0'+n%10))
}

// duplicates counts the items equal to an earlier item and their bytes.
func duplicates(a *Analysis, items []string) (dup, dupChars int) {
	seen := a.freshTable(len(items))
	for _, it := range items {
		if seen.inc(hashLine(it)) > 1 {
			dup++
			dupChars += len(it)
		}
	}
	return dup, dupChars
}

// topNGramChars returns count × chars of the most frequent word n-gram
// (chars counted without separators).
func topNGramChars(a *Analysis, n int) int {
	grams := a.nGrams(n)
	if len(grams) == 0 {
		return 0
	}
	counts := a.freshTable(len(grams))
	bestCount, bestAt := int32(0), 0
	for i, h := range grams {
		if c := counts.inc(h); c > bestCount {
			bestCount, bestAt = c, i
		}
	}
	if bestCount < 2 {
		return 0
	}
	ends := a.wordChars()
	return (ends[bestAt+n] - ends[bestAt]) * int(bestCount)
}

// dupNGramChars returns the chars of words covered by n-grams that repeat an
// earlier n-gram; a repeated n-gram's words are counted once and scanning
// resumes after it (as in Gopher).
func dupNGramChars(a *Analysis, n int) int {
	grams := a.nGrams(n)
	seen := a.freshTable(len(grams))
	ends := a.wordChars()
	chars := 0
	for i := 0; i < len(grams); {
		if seen.inc(grams[i]) > 1 {
			chars += ends[i+n] - ends[i]
			i += n
			continue
		}
		i++
	}
	return chars
}
