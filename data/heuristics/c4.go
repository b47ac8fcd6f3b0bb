package heuristics

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// C4 holds the C4 (Raffel et al. 2020) cleaning rules. Line rules remove
// lines; document rules reject the document.
type C4 struct {
	MinSentences       int  `yaml:"min_sentences"`       // fewest sentences left (default 5; 0 disables)
	MinWordsPerLine    int  `yaml:"min_words_per_line"`  // lines with fewer words are removed (default 3)
	MaxWordLength      int  `yaml:"max_word_length"`     // a longer word rejects the document (default 1000)
	RequirePunctuation bool `yaml:"require_punctuation"` // remove lines not ending in . ! ? " ' (default true)
	DropLoremIpsum     bool `yaml:"drop_lorem_ipsum"`    // reject documents containing "lorem ipsum" (default true)
	DropCurlyBracket   bool `yaml:"drop_curly_bracket"`  // reject documents containing "{" (default true)
	RemoveJavascript   bool `yaml:"remove_javascript"`   // remove lines mentioning javascript (default true)
	RemovePolicy       bool `yaml:"remove_policy"`       // remove terms-of-use / privacy / cookie lines (default true)
}

// DefaultC4 returns the REFERENCE.md rules.
func DefaultC4() C4 {
	return C4{MinSentences: 5, MinWordsPerLine: 3, MaxWordLength: 1000, RequirePunctuation: true,
		DropLoremIpsum: true, DropCurlyBracket: true, RemoveJavascript: true, RemovePolicy: true}
}

var c4Policy = []string{"terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"}

// Apply returns the text with C4's line rules applied and the document rule
// that rejects it ("" when kept). removedLines counts the lines dropped.
// Phrases are matched ignoring ASCII case.
func (c C4) Apply(a *Analysis) (text, rule string, removedLines int) {
	text, f, removedLines := c.Clean(a)
	return text, f.Rule, removedLines
}

// Clean is Apply with the reason for a rejection: what was found and the
// threshold.
func (c C4) Clean(a *Analysis) (text string, f Finding, removedLines int) {
	if c.DropLoremIpsum {
		if i := indexFold(a.Text, "lorem ipsum"); i >= 0 {
			return a.Text, Finding{Rule: "lorem_ipsum", Field: "drop_lorem_ipsum", Note: "\"lorem ipsum\" at byte " + strconv.Itoa(i)}, 0
		}
	}
	if c.DropCurlyBracket {
		if i := strings.IndexByte(a.Text, '{'); i >= 0 {
			return a.Text, Finding{Rule: "curly_bracket", Field: "drop_curly_bracket", Note: "\"{\" at byte " + strconv.Itoa(i)}, 0
		}
	}
	if c.MaxWordLength > 0 {
		for _, w := range a.Words {
			if len(w) > c.MaxWordLength {
				if n := utf8.RuneCountInString(w); n > c.MaxWordLength {
					return a.Text, Finding{Rule: "max_word_length", Field: "max_word_length", Value: float64(n), Limit: float64(c.MaxWordLength), Max: true}, 0
				}
			}
		}
	}
	// First pass: which lines stay. Only when one goes is a new text built.
	kept, sentences, keptBytes := 0, 0, 0
	for _, line := range a.nonEmptyLines() {
		t := strings.TrimSpace(line)
		if !c.keepLine(t) {
			removedLines++
			continue
		}
		kept++
		keptBytes += len(t) + 1
		sentences += countSentences(t)
	}
	text = a.Text
	if removedLines > 0 {
		var b strings.Builder
		b.Grow(keptBytes)
		n := 0
		for _, line := range a.nonEmptyLines() {
			t := strings.TrimSpace(line)
			if !c.keepLine(t) {
				continue
			}
			if n > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(t)
			n++
		}
		text = b.String()
	}
	if kept == 0 {
		return text, Finding{Rule: "no_lines_left", Note: "all " + strconv.Itoa(removedLines) + " lines removed by the line rules"}, removedLines
	}
	if c.MinSentences > 0 && sentences < c.MinSentences {
		return text, Finding{Rule: "min_sentences", Field: "min_sentences", Value: float64(sentences), Limit: float64(c.MinSentences)}, removedLines
	}
	return text, Finding{}, removedLines
}

func (c C4) keepLine(t string) bool {
	if c.RequirePunctuation && !endsWithTerminal(t) {
		return false
	}
	if c.MinWordsPerLine > 0 && countFields(t) < c.MinWordsPerLine {
		return false
	}
	if c.RemoveJavascript && indexFold(t, "javascript") >= 0 {
		return false
	}
	if c.RemovePolicy {
		for _, p := range c4Policy {
			if indexFold(t, p) >= 0 {
				return false
			}
		}
	}
	return true
}

// indexFold returns the first index of pat (lower-case ASCII) in s,
// ignoring ASCII case, or -1.
func indexFold(s, pat string) int {
	if len(pat) == 0 {
		return 0
	}
	c0 := pat[0]
	for i := 0; i+len(pat) <= len(s); i++ {
		if s[i]|0x20 != c0 {
			// Skip ahead to the next byte that could start a match.
			j := indexTwo(s[i+1:len(s)-len(pat)+1], c0, c0&^0x20)
			if j < 0 {
				return -1
			}
			i += j
			continue
		}
		if equalFoldASCII(s[i:i+len(pat)], pat) {
			return i
		}
	}
	return -1
}

// indexTwo returns the index of the first a or b in s, or -1.
func indexTwo(s string, a, b byte) int {
	i := strings.IndexByte(s, a)
	if a == b {
		return i
	}
	if i >= 0 {
		s = s[:i]
	}
	if j := strings.IndexByte(s, b); j >= 0 {
		return j
	}
	return i
}

func equalFoldASCII(s, lowerPat string) bool {
	for k := 0; k < len(lowerPat); k++ {
		c := s[k]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lowerPat[k] {
			return false
		}
	}
	return true
}

func endsWithTerminal(t string) bool {
	if t == "" {
		return false
	}
	switch t[len(t)-1] {
	case '.', '!', '?', '"', '\'':
		return true
	}
	return strings.HasSuffix(t, "…") || strings.HasSuffix(t, "”") || strings.HasSuffix(t, "’")
}

func countFields(s string) int {
	n, in := 0, false
	for i := 0; i < len(s); i++ {
		sp := asciiSpace[s[i]]
		if !sp && !in {
			n++
		}
		in = !sp
	}
	return n
}

// countSentences counts sentence ends (. ! ? followed by space or end).
func countSentences(t string) int {
	n := 0
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '.', '!', '?':
			if i+1 == len(t) || t[i+1] == ' ' || t[i+1] == '"' || t[i+1] == '\'' {
				n++
			}
		}
	}
	return n
}
