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
	words     map[uint64]struct{} // hashes of single-word terms, lower case
	phrases   map[uint64]struct{} // hashes of multi-word terms (phraseHash of their word hashes)
	maxWords  int                 // longest phrase, in words
	substr    []string            // terms matched as substrings (no-space scripts)
	substring bool
	// maybe is a bit set over the top bits of word hashes: bit set when a
	// single-word term, or the last word of a phrase, has that hash prefix.
	// Almost every word of a text is ruled out by one bit test.
	maybe [1 << (bloomBits - 6)]uint64
}

const bloomBits = 16

func (m *Matcher) mark(h uint64) { m.maybe[h>>(64-bloomBits)>>6] |= 1 << (h >> (64 - bloomBits) & 63) }
func (m *Matcher) marked(h uint64) bool {
	return m.maybe[h>>(64-bloomBits)>>6]&(1<<(h>>(64-bloomBits)&63)) != 0
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
	return newMatcher(lang, terms), nil
}

// newMatcher builds a matcher from terms.
func newMatcher(lang string, terms []string) *Matcher {
	m := &Matcher{lang: lang, words: map[uint64]struct{}{}, phrases: map[uint64]struct{}{}, substring: noSpaceLangs[lang]}
	for _, t := range terms {
		fields := strings.Fields(strings.ToLower(t))
		switch {
		case len(fields) == 0:
		case m.substring:
			m.substr = append(m.substr, strings.Join(fields, ""))
		case len(fields) == 1:
			h := wordHash(fields[0])
			m.words[h] = struct{}{}
			m.mark(h)
		default:
			hs := make([]uint64, len(fields))
			for i, f := range fields {
				hs[i] = wordHash(f)
			}
			m.phrases[phraseHash(hs)] = struct{}{}
			m.maxWords = max(m.maxWords, len(fields))
			m.mark(hs[len(hs)-1])
		}
	}
	return m
}

// counter counts hits over a stream of words.
type counter struct {
	m           *Matcher
	window      [16]uint64 // hashes of the last words (ring)
	seen        int
	hits, words int
}

// add counts one whitespace-separated word.
func (c *counter) add(w string) {
	w = trimPunct(w)
	if w == "" {
		return
	}
	c.words++
	m := c.m
	h := wordHash(w)
	if m.maxWords > 1 {
		c.window[c.seen%len(c.window)] = h
		c.seen++
	}
	if !m.marked(h) {
		return
	}
	if _, ok := m.words[h]; ok {
		c.hits++
	}
	if m.maxWords > 1 {
		// Phrases ending at this word.
		var hs [16]uint64
		for n := 2; n <= min(m.maxWords, c.seen, len(c.window)); n++ {
			for k := range n {
				hs[k] = c.window[(c.seen-n+k)%len(c.window)]
			}
			if _, ok := m.phrases[phraseHash(hs[:n])]; ok {
				c.hits++
			}
		}
	}
}

// Count returns the number of listed terms in text and the number of words
// (for no-space scripts: matched runes and all non-space runes).
func (m *Matcher) Count(text string) (hits, words int) {
	if m.substring {
		return m.countSubstrings(text)
	}
	c := counter{m: m}
	for i := 0; i < len(text); {
		// Next whitespace-separated word.
		for i < len(text) && isSpaceByte(text[i]) {
			i++
		}
		start := i
		for i < len(text) && !isSpaceByte(text[i]) {
			if text[i] >= utf8.RuneSelf {
				r, size := utf8.DecodeRuneInString(text[i:])
				if unicode.IsSpace(r) {
					break
				}
				i += size
				continue
			}
			i++
		}
		if start == i {
			if i < len(text) {
				_, size := utf8.DecodeRuneInString(text[i:])
				i += size
			}
			continue
		}
		c.add(text[start:i])
	}
	return c.hits, c.words
}

// CountWords is Count for a text already split into whitespace-separated
// words (ASCII and Unicode white space; as heuristics.Analysis.Words):
// the curation pipeline splits each document once for all its filters.
// text is the unsplit text, used by no-space scripts.
func (m *Matcher) CountWords(text string, words []string) (hits, n int) {
	if m.substring {
		return m.countSubstrings(text)
	}
	c := counter{m: m}
	for _, w := range words {
		c.add(w)
	}
	return c.hits, c.words
}

func (m *Matcher) countSubstrings(text string) (hits, words int) {
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

// trimPunct strips leading and trailing punctuation and symbols.
func trimPunct(w string) string {
	i, j := 0, len(w)
	for i < j && w[i] < utf8.RuneSelf && isPunctOrSymbol(rune(w[i])) {
		i++
	}
	for j > i && w[j-1] < utf8.RuneSelf && isPunctOrSymbol(rune(w[j-1])) {
		j--
	}
	w = w[i:j]
	if w != "" && (w[0] >= utf8.RuneSelf || w[len(w)-1] >= utf8.RuneSelf) {
		return strings.TrimFunc(w, isPunctOrSymbol)
	}
	return w
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

func isPunctOrSymbol(r rune) bool {
	if r < utf8.RuneSelf {
		return r < '0' || (r > '9' && r < 'A') || (r > 'Z' && r < 'a') || (r > 'z' && r < 0x7f)
	}
	return unicode.IsPunct(r) || unicode.IsSymbol(r)
}

// wordHash is FNV-1a over the lower-cased word.
func wordHash(w string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= utf8.RuneSelf {
			for _, r := range strings.ToLower(w[i:]) {
				var b [4]byte
				n := utf8.EncodeRune(b[:], r)
				for _, x := range b[:n] {
					h ^= uint64(x)
					h *= 1099511628211
				}
			}
			return h
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func phraseHash(hs []uint64) uint64 {
	h := uint64(len(hs))
	for _, x := range hs {
		h ^= x + 0x9e3779b97f4a7c15 + (h << 6) + (h >> 2)
		h *= 0xbf58476d1ce4e5b9
	}
	return h ^ h>>31
}

// RatioWords returns hits / words (0 for an empty text) for a text already
// split into words (see CountWords).
func (m *Matcher) RatioWords(text string, words []string) float64 {
	return ratio(m.CountWords(text, words))
}

func ratio(hits, words int) float64 {
	if words == 0 {
		return 0
	}
	return float64(hits) / float64(words)
}
