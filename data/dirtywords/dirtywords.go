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
	m := &Matcher{lang: lang, words: map[uint64]struct{}{}, phrases: map[uint64]struct{}{}, substring: noSpaceLangs[lang]}
	for _, t := range terms {
		fields := strings.Fields(strings.ToLower(t))
		switch {
		case len(fields) == 0:
		case m.substring:
			m.substr = append(m.substr, strings.Join(fields, ""))
		case len(fields) == 1:
			m.words[wordHash(fields[0])] = struct{}{}
		default:
			hs := make([]uint64, len(fields))
			for i, f := range fields {
				hs[i] = wordHash(f)
			}
			m.phrases[phraseHash(hs)] = struct{}{}
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
	var window [16]uint64 // hashes of the last words (ring)
	seen := 0
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
		w := strings.TrimFunc(text[start:i], isPunctOrSymbol)
		if w == "" {
			continue
		}
		words++
		h := wordHash(w)
		if _, ok := m.words[h]; ok {
			hits++
		}
		if m.maxWords > 1 {
			window[seen%len(window)] = h
			seen++
			// Phrases ending at this word.
			var hs [16]uint64
			for n := 2; n <= min(m.maxWords, seen, len(window)); n++ {
				for k := range n {
					hs[k] = window[(seen-n+k)%len(window)]
				}
				if _, ok := m.phrases[phraseHash(hs[:n])]; ok {
					hits++
				}
			}
		}
	}
	return hits, words
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

// Ratio returns hits / words (0 for an empty text).
func (m *Matcher) Ratio(text string) float64 {
	hits, words := m.Count(text)
	if words == 0 {
		return 0
	}
	return float64(hits) / float64(words)
}
