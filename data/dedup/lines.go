package dedup

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/zeebo/xxh3"
)

// LineStats is what line dedup did to one document.
type LineStats struct {
	Lines        int // lines in the input (the text split at '\n')
	LinesRemoved int
	Bytes        int // input bytes
	BytesRemoved int // removed line bytes including their '\n'
}

// FilterLines returns text without the lines whose hashLine remove
// reports true (lines that normalize to nothing are always kept). It is
// the second half of line dedup for callers that count lines themselves,
// for example across files or machines. Safe for concurrent use.
func FilterLines(text string, remove func(h uint64) bool) (string, LineStats) {
	return filterLines(text, hashLine, remove)
}

func filterLines(text string, hash func(string) (uint64, bool), remove func(uint64) bool) (string, LineStats) {
	st := LineStats{Bytes: len(text)}
	var b strings.Builder
	removed := false
	for pos := 0; pos < len(text); {
		end := strings.IndexByte(text[pos:], '\n')
		next := len(text)
		line := text[pos:]
		if end >= 0 {
			line = text[pos : pos+end]
			next = pos + end + 1
		}
		st.Lines++
		h, ok := hash(line)
		if ok && remove(h) {
			if !removed {
				b.Grow(len(text))
				b.WriteString(text[:pos])
				removed = true
			}
			st.LinesRemoved++
			st.BytesRemoved += next - pos
		} else if removed {
			b.WriteString(text[pos:next])
		}
		pos = next
	}
	if !removed {
		return text, st
	}
	return b.String(), st
}

// hashLine is the hash line dedup counts: xxh3-64 of NormalizeLine(line).
// ok is false for lines that normalize to nothing (never counted or
// removed). Safe for concurrent use.
func hashLine(line string) (h uint64, ok bool) {
	var arr [512]byte
	b := appendLineNorm(arr[:0], line)
	if len(b) == 0 {
		return 0, false
	}
	return xxh3.Hash(b), true
}

// AppendLineHashes appends the hashLine of every line of text (split at
// '\n', repeats included) that does not normalize to nothing: what a
// line-dedup bucket counts for the document. buf is scratch space; the
// grown buffer is returned for reuse.
func AppendLineHashes(dst []uint64, text string, buf []byte) ([]uint64, []byte) {
	for rest := text; len(rest) > 0; {
		line, next, _ := strings.Cut(rest, "\n")
		rest = next
		buf = appendLineNorm(buf[:0], line)
		if len(buf) > 0 {
			dst = append(dst, xxh3.Hash(buf))
		}
	}
	return dst, buf
}

func appendLineNorm(dst []byte, s string) []byte {
	pending := false
	start := len(dst)
	emit := func(r rune) {
		if pending {
			dst = append(dst, ' ')
			pending = false
		}
		dst = utf8.AppendRune(dst, r)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case 'a' <= c && c <= 'z':
				if pending {
					dst = append(dst, ' ')
					pending = false
				}
				dst = append(dst, c)
			case 'A' <= c && c <= 'Z':
				if pending {
					dst = append(dst, ' ')
					pending = false
				}
				dst = append(dst, c+'a'-'A')
			case '0' <= c && c <= '9':
				if pending {
					dst = append(dst, ' ')
					pending = false
				}
				dst = append(dst, '0')
			case asciiSpace[c]:
				pending = len(dst) > start
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case unicode.IsLetter(r) || unicode.IsMark(r):
			emit(unicode.ToLower(r))
		case unicode.IsDigit(r):
			emit('0')
		case unicode.IsSpace(r):
			pending = len(dst) > start
		}
	}
	return dst
}
