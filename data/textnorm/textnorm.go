// Package textnorm normalizes document text before filtering and dedup:
// invalid UTF-8 repair, Unicode NFC, control characters, line endings and
// whitespace. Normalization is idempotent: Normalize(Normalize(s)) ==
// Normalize(s).
package textnorm

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Options selects what Normalize does. The zero value only repairs UTF-8,
// applies NFC, unifies line endings and removes control characters; see
// Default for the web-text settings.
type Options struct {
	// CollapseSpaces turns every run of horizontal whitespace (spaces, tabs,
	// no-break and other Unicode spaces) inside a line into one space and
	// trims leading spaces of lines. Off for code, where indentation matters.
	CollapseSpaces bool `yaml:"collapse_spaces"`
	// TrimTrailing removes spaces and tabs at the end of every line.
	TrimTrailing bool `yaml:"trim_trailing"`
	// MaxBlankLines caps runs of empty lines (0 keeps them all).
	MaxBlankLines int `yaml:"max_blank_lines"`
	// Tabs are kept when CollapseSpaces is off; other Unicode spaces become
	// U+0020 either way.
}

// Default returns the settings for web text: collapse spaces, trim line
// ends, at most one blank line in a row.
func Default() Options {
	return Options{CollapseSpaces: true, TrimTrailing: true, MaxBlankLines: 1}
}

// Normalizer holds a reusable buffer; it is not safe for concurrent use
// (make one per goroutine).
type Normalizer struct {
	opt Options
	buf []byte
}

// New returns a Normalizer with the given options.
func New(opt Options) *Normalizer { return &Normalizer{opt: opt} }

// Normalize returns s normalized. Invalid UTF-8 bytes become U+FFFD
// (use ValidUTF8 first to drop such documents instead).
func (n *Normalizer) Normalize(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if !norm.NFC.IsNormalString(s) {
		s = norm.NFC.String(s)
	}
	b := n.buf[:0]
	if cap(b) < len(s) {
		b = make([]byte, 0, len(s))
	}
	lineStart := 0        // index in b where the current line starts
	pendingSpace := false // a collapsed space waits for the next visible char
	blank := 0            // consecutive empty lines emitted so far
	atLineStart := true
	endLine := func() {
		if n.opt.TrimTrailing || n.opt.CollapseSpaces {
			for len(b) > lineStart && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
				b = b[:len(b)-1]
			}
		}
		pendingSpace = false
		if len(b) == lineStart {
			blank++
			if n.opt.MaxBlankLines > 0 && blank > n.opt.MaxBlankLines {
				atLineStart = true
				return
			}
		} else {
			blank = 0
		}
		b = append(b, '\n')
		lineStart = len(b)
		atLineStart = true
	}
	dropped := false // a character was deleted (may join a base and a mark)
	for i := 0; i < len(s); {
		c := s[i]
		if plain[c] {
			// A run of printable ASCII other than space is copied as is.
			j := i + 1
			for j < len(s) && plain[s[j]] {
				j++
			}
			if pendingSpace {
				b = append(b, ' ')
				pendingSpace = false
			}
			b = append(b, s[i:j]...)
			atLineStart = false
			i = j
			continue
		}
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == '\n':
				endLine()
				continue
			case c == '\r':
				if i < len(s) && s[i] == '\n' {
					i++
				}
				endLine()
				continue
			case c == '\b':
				// Overstrike ("X\bX", "_\bX"): drop the character before.
				dropped = true
				if len(b) > lineStart {
					_, size := utf8.DecodeLastRune(b[lineStart:])
					b = b[:len(b)-size]
				}
				if len(b) == lineStart {
					atLineStart, pendingSpace = true, false
				} else if n.opt.CollapseSpaces && b[len(b)-1] == ' ' {
					// The deletion exposed a space: keep it pending, so a
					// following space does not make a double one.
					b = b[:len(b)-1]
					pendingSpace = true
				}
				continue
			case c == ' ' || c == '\t' || c == '\v' || c == '\f':
				if n.opt.CollapseSpaces {
					if !atLineStart {
						pendingSpace = true
					}
					continue
				}
				if c == '\v' || c == '\f' {
					c = ' '
				}
			case c < 0x20 || c == 0x7f:
				dropped = true
				continue // other C0 controls and DEL
			}
			if pendingSpace {
				b = append(b, ' ')
				pendingSpace = false
			}
			b = append(b, c)
			atLineStart = false
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '\u2028' || r == '\u2029' || r == '\u0085':
			endLine()
			continue
		case r == '\uFEFF' || r == '\u200B' || r == '\u00AD':
			dropped = true
			continue // BOM / zero-width no-break space, zero-width space, soft hyphen
		case r >= 0x80 && r < 0xA0:
			dropped = true
			continue // C1 controls
		case unicode.IsSpace(r) || r == '\u200A' || r == '\u202F' || r == '\u205F' || r == '\u3000':
			if n.opt.CollapseSpaces {
				if !atLineStart {
					pendingSpace = true
				}
				continue
			}
			b = append(b, ' ')
			atLineStart = false
			continue
		case r == '\u200E' || r == '\u200F' || (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069'):
			dropped = true
			continue // bidi marks and embeddings
		}
		if pendingSpace {
			b = append(b, ' ')
			pendingSpace = false
		}
		b = append(b, s[i-size:i]...)
		atLineStart = false
	}
	if len(b) > lineStart {
		endLine()
	}
	// Trim blank lines at both ends.
	start := 0
	for start < len(b) && b[start] == '\n' {
		start++
	}
	end := len(b)
	for end > start && b[end-1] == '\n' {
		end--
	}
	n.buf = b
	if string(b[start:end]) == s {
		return s // unchanged: no copy
	}
	out := string(b[start:end])
	// Deleting a character can join a base letter with a combining mark,
	// so recheck NFC then (rare; keeps Normalize idempotent).
	if dropped && !norm.NFC.IsNormalString(out) {
		out = norm.NFC.String(out)
	}
	return out
}

// plain marks the bytes copied without a second look: printable ASCII
// except space.
var plain = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = true
	}
	return
}()
