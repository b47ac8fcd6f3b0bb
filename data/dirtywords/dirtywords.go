// Package dirtywords counts "dirty words" (obscene or sexual terms) in a
// document, C4-style, with per-language lists: the LDNOOBW lists shipped in
// lists/ (CC-BY-4.0, see lists/NOTICE.md) or lists loaded from files.
// A document is rejected when the share of its words that are listed terms
// exceeds a threshold.
package dirtywords

import (
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

//go:embed lists/*.json
var lists embed.FS

// Languages returns the ISO 639-1 codes of the shipped lists.
func Languages() []string {
	entries, _ := lists.ReadDir("lists")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".json"))
	}
	slices.Sort(out)
	return out
}

// noSpaceLangs are written without spaces between words; their terms are
// matched as substrings.
var noSpaceLangs = map[string]bool{"zh": true, "ja": true, "th": true}

// Matcher finds listed terms in a text. It is safe for concurrent use.
type Matcher struct {
	lang      string
	words     map[string]struct{} // single-word terms, lower case
	phrases   map[string]struct{} // multi-word terms, words joined by one space
	maxWords  int                 // longest phrase, in words
	substr    []string            // terms matched as substrings (no-space scripts)
	substring bool
}

// Load returns the matcher for a shipped language list.
func Load(lang string) (*Matcher, error) {
	data, err := lists.ReadFile("lists/" + lang + ".json")
	if err != nil {
		return nil, fmt.Errorf("dirty words: no shipped list for language %q (shipped: %s); give a list file instead", lang, strings.Join(Languages(), " "))
	}
	return parse(lang, data, "lists/"+lang+".json")
}

// LoadFile reads a list for lang from a file: a JSON array of strings, or
// plain text with one term per line ('#' starts a comment line).
func LoadFile(lang, file string) (*Matcher, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("dirty words list: %w", err)
	}
	return parse(lang, data, file)
}

func parse(lang string, data []byte, source string) (*Matcher, error) {
	var terms []string
	if t := strings.TrimSpace(string(data)); strings.HasPrefix(t, "[") || path.Ext(source) == ".json" {
		if err := json.Unmarshal(data, &terms); err != nil {
			return nil, fmt.Errorf("dirty words list %s: want a JSON array of strings: %w", source, err)
		}
	} else {
		for line := range strings.SplitSeq(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				terms = append(terms, line)
			}
		}
	}
	return New(lang, terms), nil
}

// New builds a matcher from terms.
func New(lang string, terms []string) *Matcher {
	m := &Matcher{lang: lang, words: map[string]struct{}{}, phrases: map[string]struct{}{}, substring: noSpaceLangs[lang]}
	for _, t := range terms {
		fields := strings.Fields(strings.ToLower(t))
		switch {
		case len(fields) == 0:
		case m.substring:
			m.substr = append(m.substr, strings.Join(fields, ""))
		case len(fields) == 1:
			m.words[fields[0]] = struct{}{}
		default:
			m.phrases[strings.Join(fields, " ")] = struct{}{}
			m.maxWords = max(m.maxWords, len(fields))
		}
	}
	return m
}

// Count returns the number of listed terms in text and the number of words
// (for no-space scripts: matched runes and all non-space runes).
func (m *Matcher) Count(text string) (hits, words int) {
	if m.substring {
		lower := strings.ToLower(text)
		for _, t := range m.substr {
			if n := strings.Count(lower, t); n > 0 {
				hits += n * utf8.RuneCountInString(t)
			}
		}
		for _, r := range text {
			if !unicode.IsSpace(r) {
				words++
			}
		}
		return hits, words
	}
	var window []string
	for _, w := range strings.Fields(text) {
		w = strings.TrimFunc(w, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSymbol(r) })
		if w == "" {
			continue
		}
		words++
		lw := lowerWord(w)
		if _, ok := m.words[lw]; ok {
			hits++
		}
		if m.maxWords > 1 {
			window = append(window, lw)
			if len(window) > m.maxWords {
				window = window[1:]
			}
			// Phrases ending at this word.
			for n := 2; n <= len(window); n++ {
				if _, ok := m.phrases[strings.Join(window[len(window)-n:], " ")]; ok {
					hits++
				}
			}
		}
	}
	return hits, words
}

// lowerWord lower-cases w, without allocating when it is already lower-case ASCII.
func lowerWord(w string) string {
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= utf8.RuneSelf || (c >= 'A' && c <= 'Z') {
			return strings.ToLower(w)
		}
	}
	return w
}

// Ratio returns hits / words (0 for an empty text).
func (m *Matcher) Ratio(text string) float64 {
	hits, words := m.Count(text)
	if words == 0 {
		return 0
	}
	return float64(hits) / float64(words)
}
