// Package heuristics implements the rule-based document quality filters of
// web-scale pretraining pipelines: Gopher quality and repetition (including
// duplicated n-gram coverage), C4, FineWeb, and a token-distribution
// KL-divergence outlier score. Each filter returns the rule that rejected a
// document ("" when kept), so the curation pipeline can count and report it.
//
// Default thresholds follow the values in REFERENCE.md ("Common defaults
// (HF datatrove)"); every one can be changed in the recipe.
package heuristics

import (
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// Analysis holds the lines and words of one text, computed once and shared by
// all filters. Reuse one per goroutine: Reset keeps its buffers.
type Analysis struct {
	Text  string
	Lines []string // lines split on '\n', without the newline (empty lines kept)
	Words []string // whitespace-separated words

	hashes []uint64
	tab    table
}

// Of analyses text, reusing a's buffers. It returns a for chaining; when
// text is the very string analysed last time the cached result is kept.
func (a *Analysis) Of(text string) *Analysis {
	if len(text) == len(a.Text) && unsafe.StringData(text) == unsafe.StringData(a.Text) && a.Lines != nil {
		return a
	}
	a.Text = text
	a.Lines = a.Lines[:0]
	a.Words = a.Words[:0]
	a.hashes = a.hashes[:0]
	start := 0
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' {
			a.Lines = append(a.Lines, text[start:i])
			start = i + 1
		}
	}
	a.Lines = append(a.Lines, text[start:])
	a.Words = appendWords(a.Words, text)
	return a
}

var asciiSpace = [256]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// appendWords appends the whitespace-separated fields of s (Unicode spaces
// count as separators).
func appendWords(dst []string, s string) []string {
	start := -1
	for i := 0; i < len(s); {
		c := s[i]
		var space bool
		size := 1
		if c < utf8.RuneSelf {
			space = asciiSpace[c]
		} else {
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			space = unicode.IsSpace(r)
		}
		if space {
			if start >= 0 {
				dst = append(dst, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
		i += size
	}
	if start >= 0 {
		dst = append(dst, s[start:])
	}
	return dst
}

// isPunctOrSymbol reports whether r is punctuation or a symbol.
func isPunctOrSymbol(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiPunct[r]
	}
	return unicode.IsPunct(r) || unicode.IsSymbol(r)
}

var asciiPunct = func() (t [utf8.RuneSelf]bool) {
	for _, c := range "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" {
		t[c] = true
	}
	return
}()

// hasLetter reports whether w contains a letter.
func hasLetter(w string) bool {
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= utf8.RuneSelf {
			for _, r := range w[i:] {
				if unicode.IsLetter(r) {
					return true
				}
			}
			return false
		}
		if (c|0x20) >= 'a' && (c|0x20) <= 'z' {
			return true
		}
	}
	return false
}

// onlySymbols reports whether every rune of w is punctuation or a symbol.
func onlySymbols(w string) bool {
	for _, r := range w {
		if !isPunctOrSymbol(r) {
			return false
		}
	}
	return true
}

// trimPunct strips leading and trailing punctuation and symbols.
func trimPunct(w string) string {
	return strings.TrimFunc(w, isPunctOrSymbol)
}

// hashWord is FNV-1a over the bytes of w, a fast stable 64-bit word hash.
func hashWord(w string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(w); i++ {
		h ^= uint64(w[i])
		h *= 1099511628211
	}
	return h
}

// wordHashes returns the hash of every word (cached).
func (a *Analysis) wordHashes() []uint64 {
	if len(a.hashes) == len(a.Words) && len(a.Words) > 0 {
		return a.hashes
	}
	a.hashes = a.hashes[:0]
	for _, w := range a.Words {
		a.hashes = append(a.hashes, hashWord(w))
	}
	return a.hashes
}

// mix combines an n-gram hash with the next word hash (order-dependent).
func mix(h, w uint64) uint64 {
	h ^= w + 0x9e3779b97f4a7c15 + (h << 6) + (h >> 2)
	h *= 0xbf58476d1ce4e5b9
	return h ^ h>>31
}

// freshTable returns the reusable table, emptied, sized for n keys.
func (a *Analysis) freshTable(n int) *table {
	a.tab.reset(n)
	return &a.tab
}
