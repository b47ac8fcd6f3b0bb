// Package heuristics implements the rule-based document quality filters of
// web-scale pretraining pipelines: Gopher quality and repetition (including
// duplicated n-gram coverage), C4, FineWeb, and a token-distribution
// KL-divergence outlier score. Each filter returns the rule that rejected a
// document ("" when kept), so the curation pipeline can count and report it.
//
// Default thresholds follow the values in REFERENCE.md ("Common defaults
// (HF datatrove)"); every one can be changed in the recipe.
//
// All filters read one shared Analysis of the text: its lines and words are
// split once, and what more than one filter needs (word hashes, non-empty
// lines and their duplicates, paragraphs, word n-gram hashes) is computed
// on first use and cached, in buffers that are reused from one document to
// the next, so filtering a document allocates nothing in steady state.
package heuristics

import (
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/zeebo/xxh3"
)

// Analysis holds the lines and words of one text, computed once and shared by
// all filters. Reuse one per goroutine: its buffers are kept between texts.
type Analysis struct {
	Text  string
	Lines []string // lines split on '\n', without the newline (empty lines kept)
	Words []string // whitespace-separated words

	hashes   []uint64 // word hashes (hashesOK)
	wordEnd  []int    // wordEnd[i] = bytes of Words[:i] (no separators); len(Words)+1 entries
	grams    []uint64 // hashes of the word n-grams starting at each word, n = gramN
	gramN    int
	nonEmpty []string // lines with a non-space character
	paras    []string // paragraphs (runs of lines between blank lines)
	dupLines struct{ n, chars int }

	hashesOK, wordEndOK, nonEmptyOK, parasOK, dupLinesOK bool

	tab table
}

// Of analyses text, reusing a's buffers. It returns a for chaining. When text
// is the very string analysed last time (same bytes in memory) the cached
// result is kept; call Reset between documents whose strings may reuse freed
// memory.
func (a *Analysis) Of(text string) *Analysis {
	if len(text) == len(a.Text) && unsafe.StringData(text) == unsafe.StringData(a.Text) && a.Lines != nil {
		return a
	}
	a.Reset()
	a.Text = text
	start := 0
	for {
		i := strings.IndexByte(text[start:], '\n')
		if i < 0 {
			break
		}
		a.Lines = append(a.Lines, text[start:start+i])
		start += i + 1
	}
	a.Lines = append(a.Lines, text[start:])
	a.Words = appendWords(a.Words, text)
	return a
}

// Reset forgets the analysed text (keeping the buffers), so the next Of
// analyses its argument afresh.
func (a *Analysis) Reset() {
	a.Text = ""
	a.Lines = a.Lines[:0]
	a.Words = a.Words[:0]
	a.hashes = a.hashes[:0]
	a.gramN = 0
	a.hashesOK, a.wordEndOK, a.nonEmptyOK, a.parasOK, a.dupLinesOK = false, false, false, false, false
}

var asciiSpace = [256]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// appendWords appends the whitespace-separated fields of s (Unicode spaces
// count as separators).
func appendWords(dst []string, s string) []string {
	start := -1
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if asciiSpace[c] {
				if start >= 0 {
					dst = append(dst, s[start:i])
					start = -1
				}
			} else if start < 0 {
				start = i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
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
	i, j := 0, len(w)
	for i < j && w[i] < utf8.RuneSelf && asciiPunct[w[i]] {
		i++
	}
	for j > i && w[j-1] < utf8.RuneSelf && asciiPunct[w[j-1]] {
		j--
	}
	w = w[i:j]
	if w != "" && (w[0] >= utf8.RuneSelf || w[len(w)-1] >= utf8.RuneSelf) {
		return strings.TrimFunc(w, isPunctOrSymbol)
	}
	return w
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

// hashLine hashes a line or paragraph (xxh3: long strings, fast).
func hashLine(s string) uint64 { return xxh3.HashString(s) }

// wordHashes returns the hash of every word (cached).
func (a *Analysis) wordHashes() []uint64 {
	if a.hashesOK {
		return a.hashes
	}
	a.hashes = a.hashes[:0]
	for _, w := range a.Words {
		a.hashes = append(a.hashes, hashWord(w))
	}
	a.hashesOK = true
	return a.hashes
}

// wordChars returns wordEnd: wordEnd[j]-wordEnd[i] is the bytes of
// Words[i:j] without separators (cached).
func (a *Analysis) wordChars() []int {
	if a.wordEndOK {
		return a.wordEnd
	}
	a.wordEnd = append(a.wordEnd[:0], 0)
	n := 0
	for _, w := range a.Words {
		n += len(w)
		a.wordEnd = append(a.wordEnd, n)
	}
	a.wordEndOK = true
	return a.wordEnd
}

// nGrams returns the hashes of the word n-grams (one per start position,
// len(Words)-n+1 of them), extending the cached (n-1)-grams when it can.
func (a *Analysis) nGrams(n int) []uint64 {
	hs := a.wordHashes()
	if len(hs) < n || n < 1 {
		return nil
	}
	if a.gramN == 0 || a.gramN > n {
		a.grams = append(a.grams[:0], hs...)
		a.gramN = 1
	}
	for a.gramN < n {
		k := a.gramN
		g := a.grams[:len(hs)-k]
		next := hs[k:]
		for i := range g {
			g[i] = mix(g[i], next[i])
		}
		a.grams = g
		a.gramN++
	}
	return a.grams
}

// mix combines an n-gram hash with the next word hash (order-dependent).
func mix(h, w uint64) uint64 {
	h ^= w + 0x9e3779b97f4a7c15 + (h << 6) + (h >> 2)
	h *= 0xbf58476d1ce4e5b9
	return h ^ h>>31
}

// nonEmptyLines returns the lines with a non-space character (cached).
func (a *Analysis) nonEmptyLines() []string {
	if a.nonEmptyOK {
		return a.nonEmpty
	}
	a.nonEmpty = a.nonEmpty[:0]
	for _, l := range a.Lines {
		if !blank(l) {
			a.nonEmpty = append(a.nonEmpty, l)
		}
	}
	a.nonEmptyOK = true
	return a.nonEmpty
}

// blank reports whether s holds only white space.
func blank(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return strings.TrimSpace(s[i:]) == ""
		}
		if !asciiSpace[c] {
			return false
		}
	}
	return true
}

// paragraphs returns the text split on "\n\n", each trimmed of newlines,
// blank ones left out (cached).
func (a *Analysis) paragraphs() []string {
	if a.parasOK {
		return a.paras
	}
	a.paras = a.paras[:0]
	text := a.Text
	for {
		i := strings.Index(text, "\n\n")
		p := text
		if i >= 0 {
			p = text[:i]
		}
		if p = strings.Trim(p, "\n"); !blank(p) {
			a.paras = append(a.paras, p)
		}
		if i < 0 {
			break
		}
		text = text[i+2:]
	}
	a.parasOK = true
	return a.paras
}

// duplicateLines counts the non-empty lines equal to an earlier one and
// their bytes (cached; Gopher repetition and FineWeb share it).
func (a *Analysis) duplicateLines() (n, chars int) {
	if !a.dupLinesOK {
		a.dupLines.n, a.dupLines.chars = duplicates(a, a.nonEmptyLines())
		a.dupLinesOK = true
	}
	return a.dupLines.n, a.dupLines.chars
}

// freshTable returns the reusable table, emptied, sized for n keys.
func (a *Analysis) freshTable(n int) *table {
	a.tab.reset(n)
	return &a.tab
}
