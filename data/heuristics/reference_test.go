package heuristics

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The filters share cached, hashed intermediate results (see Analysis).
// The functions below compute the same statistics the plain way — strings
// split with the standard library, n-grams as joined strings in Go maps —
// as an independent check of the cached and incremental versions.

func refWords(text string) []string { return strings.Fields(text) }

func refNGram(words []string, i, n int) string { return strings.Join(words[i:i+n], "\x00") }

func refTopNGramChars(words []string, n int) int {
	counts := map[string]int{}
	best, bestAt := 0, 0
	for i := 0; i+n <= len(words); i++ {
		k := refNGram(words, i, n)
		counts[k]++
		if counts[k] > best {
			best, bestAt = counts[k], i
		}
	}
	if best < 2 {
		return 0
	}
	return len(strings.Join(words[bestAt:bestAt+n], "")) * best
}

func refDupNGramChars(words []string, n int) int {
	seen := map[string]bool{}
	chars := 0
	for i := 0; i+n <= len(words); {
		k := refNGram(words, i, n)
		if seen[k] {
			chars += len(strings.Join(words[i:i+n], ""))
			i += n
			continue
		}
		seen[k] = true
		i++
	}
	return chars
}

func refDuplicates(items []string) (dup, chars int) {
	seen := map[string]bool{}
	for _, it := range items {
		if seen[it] {
			dup++
			chars += len(it)
		}
		seen[it] = true
	}
	return dup, chars
}

func refNonEmptyLines(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func refParagraphs(text string) []string {
	var out []string
	for _, p := range strings.Split(text, "\n\n") {
		if p = strings.Trim(p, "\n"); strings.TrimSpace(p) != "" {
			out = append(out, p)
		}
	}
	return out
}

// refGopherRepetition is GopherRepetition.Check from the reference pieces.
func refGopherRepetition(g GopherRepetition, text string) string {
	if len(text) == 0 {
		return ""
	}
	paras := refParagraphs(text)
	dup, dupChars := refDuplicates(paras)
	if g.DupParaFrac > 0 && float64(dup)/float64(len(paras)) > g.DupParaFrac {
		return "dup_para_frac"
	}
	if g.DupParaCharFrac > 0 && float64(dupChars)/float64(len(text)) > g.DupParaCharFrac {
		return "dup_para_char_frac"
	}
	if lines := refNonEmptyLines(text); len(lines) > 0 {
		dup, dupChars := refDuplicates(lines)
		if g.DupLineFrac > 0 && float64(dup)/float64(len(lines)) > g.DupLineFrac {
			return "dup_line_frac"
		}
		if g.DupLineCharFrac > 0 && float64(dupChars)/float64(len(text)) > g.DupLineCharFrac {
			return "dup_line_char_frac"
		}
	}
	words := refWords(text)
	wordChars := len(strings.Join(words, ""))
	if wordChars == 0 {
		return ""
	}
	for i, th := range g.TopNGramCharFrac {
		if th > 0 && float64(refTopNGramChars(words, i+2))/float64(wordChars) > th {
			return "top_" + itoa(i+2) + "gram_char_frac"
		}
	}
	for i, th := range g.DupNGramCharFrac {
		d := refDupNGramChars(words, i+5)
		if th > 0 && float64(d)/float64(wordChars) > th {
			return "dup_" + itoa(i+5) + "gram_char_frac"
		}
		if d == 0 {
			break
		}
	}
	return ""
}

// refFineWeb is FineWeb.Check from the reference pieces.
func refFineWeb(f FineWeb, text string) string {
	lines := refNonEmptyLines(text)
	if len(lines) == 0 {
		return "empty"
	}
	punct, short, total := 0, 0, 0
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasSuffix(t, ".") || strings.HasSuffix(t, "!") || strings.HasSuffix(t, "?") || strings.HasSuffix(t, "\"") ||
			strings.HasSuffix(t, "'") || strings.HasSuffix(t, "…") || strings.HasSuffix(t, "”") || strings.HasSuffix(t, "’") {
			punct++
		}
		if utf8.RuneCountInString(t) <= f.ShortLineChars {
			short++
		}
		total += len(l)
	}
	if f.MinLinePunct > 0 && float64(punct)/float64(len(lines)) < f.MinLinePunct {
		return "line_punct"
	}
	if f.MaxShortLines > 0 && float64(short)/float64(len(lines)) > f.MaxShortLines {
		return "short_lines"
	}
	if _, dupChars := refDuplicates(lines); f.MaxDupLineChars > 0 && float64(dupChars)/float64(total) > f.MaxDupLineChars {
		return "dup_line_chars"
	}
	if words := refWords(text); f.MaxNewlineToWord > 0 && len(words) > 0 &&
		float64(strings.Count(text, "\n"))/float64(len(words)) > f.MaxNewlineToWord {
		return "newline_to_word"
	}
	return ""
}

// referenceTexts returns windows of the reference corpora and random
// repetitive texts (few distinct words, lines and paragraphs, so repeats of
// every kind occur).
func referenceTexts(t *testing.T) []string {
	t.Helper()
	var out []string
	files, _ := filepath.Glob("../../../shared/testdata/corpora/*.txt")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ToValidUTF8(string(b), "\uFFFD")
		for at := 0; at+3000 <= len(s) && at < 40*20011; at += 20011 {
			out = append(out, s[at:at+3000])
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	vocab := []string{"the", "cat", "sat", "on", "mat", "and", "a", "dog", "ran", "ﬁne", "café", "—", "...", "#", "x."}
	seps := []string{" ", " ", " ", " ", "\n", "\n\n", "  ", "\t", "\u00a0", " \n "}
	for range 400 {
		var b strings.Builder
		for range 5 + rng.IntN(120) {
			b.WriteString(vocab[rng.IntN(len(vocab))])
			b.WriteString(seps[rng.IntN(len(seps))])
		}
		text := b.String()
		if rng.IntN(3) == 0 { // repeat a block
			text += "\n\n" + text
		}
		out = append(out, text)
	}
	return out
}

// TestAgainstReference compares the cached, incremental statistics and
// rules with the plain computations on corpus windows and random texts.
func TestAgainstReference(t *testing.T) {
	texts := referenceTexts(t)
	rep, fw := DefaultGopherRepetition(), DefaultFineWeb()
	var a Analysis
	rules := map[string]int{}
	for _, text := range texts {
		a.Reset()
		a.Of(text)
		words := refWords(text)
		if strings.Join(a.Words, "\x00") != strings.Join(words, "\x00") {
			t.Fatalf("words of %q differ", text)
		}
		// n-grams in the order the filter asks for them, then out of order.
		for _, n := range []int{2, 3, 4, 5, 6, 7, 8, 9, 10, 3, 7} {
			if got, want := topNGramChars(&a, n), refTopNGramChars(words, n); got != want {
				t.Fatalf("top %d-gram chars %d, reference %d in %q", n, got, want, text)
			}
			if got, want := dupNGramChars(&a, n), refDupNGramChars(words, n); got != want {
				t.Fatalf("dup %d-gram chars %d, reference %d in %q", n, got, want, text)
			}
		}
		a.Reset()
		a.Of(text)
		got, want := rep.Check(&a), refGopherRepetition(rep, text)
		if got != want {
			t.Fatalf("gopher repetition %q, reference %q on %q", got, want, text)
		}
		rules["rep:"+got]++
		if got, want := fw.Check(&a), refFineWeb(fw, text); got != want {
			t.Fatalf("fineweb %q, reference %q on %q", got, want, text)
		}
		rules["fineweb:"+fw.Check(&a)]++
	}
	t.Logf("%d texts; rules %v", len(texts), rules)
	if len(rules) < 8 {
		t.Errorf("the texts exercise only %d rule outcomes", len(rules))
	}
}

// refGopherQuality is GopherQuality.Check word by word with unicode tests.
func refGopherQuality(g GopherQuality, text string) string {
	words := refWords(text)
	punct := func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSymbol(r) }
	nonSymbol, nonSymbolChars, alpha, symbols, stop := 0, 0, 0, 0, 0
	for _, w := range words {
		if strings.TrimFunc(w, punct) != "" {
			nonSymbol++
			nonSymbolChars += utf8.RuneCountInString(w)
		}
		if strings.IndexFunc(w, unicode.IsLetter) >= 0 {
			alpha++
		}
		if w == "#" || strings.Contains(w, "...") || strings.Contains(w, "…") {
			symbols++
		}
		for _, s := range g.StopWords {
			if strings.EqualFold(strings.TrimFunc(w, punct), s) {
				stop++
				break
			}
		}
	}
	switch {
	case nonSymbol < g.MinWords:
		return "min_words"
	case nonSymbol > g.MaxWords:
		return "max_words"
	}
	if nonSymbol > 0 {
		avg := float64(nonSymbolChars) / float64(nonSymbol)
		if avg < g.MinAvgWordLength {
			return "min_avg_word_length"
		}
		if avg > g.MaxAvgWordLength {
			return "max_avg_word_length"
		}
	}
	if len(words) > 0 && float64(symbols)/float64(len(words)) > g.MaxSymbolWordRate {
		return "max_symbol_word_ratio"
	}
	bullets, ellipsis, lines := 0, 0, 0
	for _, l := range refNonEmptyLines(text) {
		t := strings.TrimSpace(l)
		lines++
		for _, b := range []string{"•", "-", "*", "‣", "●"} {
			if strings.HasPrefix(t, b) {
				bullets++
				break
			}
		}
		if strings.HasSuffix(t, "...") || strings.HasSuffix(t, "…") {
			ellipsis++
		}
	}
	if lines > 0 && float64(bullets)/float64(lines) > g.MaxBulletLines {
		return "max_bullet_lines"
	}
	if lines > 0 && float64(ellipsis)/float64(lines) > g.MaxEllipsisLines {
		return "max_ellipsis_lines"
	}
	if len(words) > 0 && float64(alpha)/float64(len(words)) < g.MinAlphaWords {
		return "min_alpha_words"
	}
	if stop < g.MinStopWords {
		return "min_stop_words"
	}
	return ""
}

func TestGopherQualityAgainstReference(t *testing.T) {
	g := DefaultGopherQuality()
	g.MinWords = 8 // let the short random texts reach the later rules
	var a Analysis
	rules := map[string]int{}
	for _, text := range referenceTexts(t) {
		for _, variant := range []string{text, strings.ReplaceAll(text, "the", "THE"), "• " + strings.ReplaceAll(text, "\n", "\n- ")} {
			a.Reset()
			got, want := g.Check(a.Of(variant)), refGopherQuality(g, variant)
			if got != want {
				t.Fatalf("gopher %q, reference %q on %q", got, want, variant)
			}
			rules[got]++
		}
	}
	t.Logf("rules %v", rules)
	if len(rules) < 5 {
		t.Errorf("the texts exercise only %d rule outcomes", len(rules))
	}
}
