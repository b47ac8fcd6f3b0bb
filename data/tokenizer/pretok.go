package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Pattern is the Llama 3 pre-tokenization regular expression, exactly as it
// appears in the Split pre-tokenizer of Meta's tokenizer.json and in
// tiktoken's Llama 3 encoding. The scanner in this file is a hand-written
// equivalent of it; no regular expression engine runs at encode time.
const Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// Character classes used by the scanner. \s is the Unicode White_Space
// property (what Rust's regex, Oniguruma and .NET use), \p{L} and \p{N} the
// Unicode general categories L and N as tabulated by Go's unicode package.
// A byte that does not start a valid UTF-8 sequence is one character of
// class clsOther, so any byte string splits into pieces that concatenate
// back to it.
const (
	clsOther   = iota // anything else: punctuation, symbols, marks, controls, invalid bytes
	clsLetter         // \p{L}
	clsNumber         // \p{N}
	clsSpace          // \s other than CR and LF
	clsNewline        // \r or \n
)

// asciiClass classifies the ASCII bytes.
var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for c := 0; c < utf8.RuneSelf; c++ {
		switch {
		case c == '\r' || c == '\n':
			t[c] = clsNewline
		case c == ' ' || (c >= '\t' && c <= '\f'):
			t[c] = clsSpace
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			t[c] = clsLetter
		case c >= '0' && c <= '9':
			t[c] = clsNumber
		default:
			t[c] = clsOther
		}
	}
	return t
}()

// runeClass classifies a non-ASCII rune.
func runeClass(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r):
		return clsSpace
	}
	return clsOther
}

// classAt returns the class and byte width of the character at s[i].
func classAt(s []byte, i int) (uint8, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, n := utf8.DecodeRune(s[i:])
	if r == utf8.RuneError && n <= 1 {
		return clsOther, 1
	}
	return runeClass(r), n
}

// nextPiece returns the end of the pre-token that starts at s[i], i < len(s).
// It follows the alternatives of Pattern in order, with the leftmost-first,
// greedy-with-backtracking semantics of the regex engines that run it.
func nextPiece(s []byte, i int) int {
	if s[i] == '\'' {
		if n := contraction(s[i+1:]); n > 0 {
			return i + 1 + n
		}
	}
	c, n := classAt(s, i)
	switch c {
	case clsLetter:
		return scanClass(s, i+n, clsLetter)
	case clsNumber:
		j := i + n
		for k := 1; k < 3 && j < len(s); k++ {
			c2, n2 := classAt(s, j)
			if c2 != clsNumber {
				break
			}
			j += n2
		}
		return j
	case clsOther:
		// [^\r\n\p{L}\p{N}]?\p{L}+ with the optional character present.
		if j := i + n; j < len(s) {
			if c2, n2 := classAt(s, j); c2 == clsLetter {
				return scanClass(s, j+n2, clsLetter)
			}
		}
		// ?[^\s\p{L}\p{N}]+[\r\n]* without the space.
		return scanNewlines(s, scanClass(s, i+n, clsOther))
	case clsSpace:
		if j := i + n; j < len(s) {
			c2, n2 := classAt(s, j)
			if c2 == clsLetter {
				return scanClass(s, j+n2, clsLetter)
			}
			if c2 == clsOther && s[i] == ' ' {
				return scanNewlines(s, scanClass(s, j+n2, clsOther))
			}
		}
	}
	return scanWhitespace(s, i)
}

// scanClass advances j over characters of class c.
func scanClass(s []byte, j int, c uint8) int {
	for j < len(s) {
		if b := s[j]; b < utf8.RuneSelf { // ASCII fast path
			if asciiClass[b] != c {
				break
			}
			j++
			continue
		}
		c2, n := classAt(s, j)
		if c2 != c {
			break
		}
		j += n
	}
	return j
}

// scanNewlines advances j over CR and LF bytes.
func scanNewlines(s []byte, j int) int {
	for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
		j++
	}
	return j
}

// scanWhitespace matches \s*[\r\n]+ | \s+(?!\S) | \s+ at s[i], which is
// whitespace.
func scanWhitespace(s []byte, i int) int {
	lastNL := -1  // start of the last CR/LF in the run
	lastChar := i // start of the last character in the run
	j := i
	for j < len(s) {
		c, n := uint8(0), 1
		if b := s[j]; b < utf8.RuneSelf {
			c = asciiClass[b]
		} else {
			c, n = classAt(s, j)
		}
		if c == clsNewline {
			lastNL = j
		} else if c != clsSpace {
			break
		}
		lastChar = j
		j += n
	}
	switch {
	case lastNL >= 0: // \s*[\r\n]+ backtracks to the last line break
		return lastNL + 1
	case j == len(s): // \s+(?!\S) at the end of the input
		return j
	case lastChar > i: // \s+(?!\S) leaves the last space for the next piece
		return lastChar
	}
	return j // \s+: a single space before a non-space
}

// contraction returns the length of the contraction suffix ('s 't 're 've
// 'm 'll 'd, case-insensitively under Unicode simple case folding, so 'ſ
// counts as 's) at the start of s, the bytes after an apostrophe, or 0.
func contraction(s []byte) int {
	if len(s) == 0 {
		return 0
	}
	switch s[0] | 0x20 {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if len(s) > 1 && s[1]|0x20 == 'e' {
			return 2
		}
	case 'l':
		if len(s) > 1 && s[1]|0x20 == 'l' {
			return 2
		}
	}
	if len(s) > 1 && s[0] == 0xC5 && s[1] == 0xBF { // U+017F LATIN SMALL LETTER LONG S
		return 2
	}
	return 0
}
