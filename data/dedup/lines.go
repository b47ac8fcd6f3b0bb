package dedup

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/zeebo/xxh3"
)

// LineConfig configures ccNet-style line dedup. The zero value is the
// default: buckets of 10,000 documents, lines seen more than 6 times in a
// bucket removed, exact counting.
type LineConfig struct {
	// BucketDocs is M, the number of consecutive documents per bucket;
	// default 10,000. The Llama 3 paper uses 30,000,000: raise it for web
	// scale runs (memory is one map entry per repeated line, or the bloom
	// filter below).
	BucketDocs int
	// MaxRepeats is N: a line whose normalized form occurs more than N
	// times in the bucket is removed from every document; default 6.
	MaxRepeats int
	// BloomLines, when > 0, bounds memory for large buckets: a bloom filter
	// sized for this many distinct lines absorbs first occurrences, and
	// only lines seen at least twice get an exact counter. A false positive
	// overcounts a line by one, so a line seen exactly MaxRepeats times is
	// removed with probability about BloomFalsePositive.
	BloomLines uint
	// BloomFalsePositive is the bloom filter's false-positive rate;
	// default 0.001.
	BloomFalsePositive float64
}

func (c LineConfig) withDefaults() LineConfig {
	if c.BucketDocs <= 0 {
		c.BucketDocs = 10_000
	}
	if c.MaxRepeats <= 0 {
		c.MaxRepeats = 6
	}
	if c.BloomFalsePositive <= 0 || c.BloomFalsePositive >= 1 {
		c.BloomFalsePositive = 0.001
	}
	return c
}

// LineStats is what line dedup did to one document.
type LineStats struct {
	Lines        int // lines in the input (the text split at '\n')
	LinesRemoved int
	Bytes        int // input bytes
	BytesRemoved int // removed line bytes including their '\n'
}

// LineDedup removes over-repeated lines within one bucket in two passes:
// Count every document of the bucket, then Filter every document, then
// Reset for the next bucket. Not safe for concurrent use.
type LineDedup struct {
	cfg    LineConfig
	counts map[uint64]uint32
	bloom  *bloom.BloomFilter
	buf    []byte
	docs   int
}

// NewLineDedup returns an empty bucket.
func NewLineDedup(cfg LineConfig) *LineDedup {
	cfg = cfg.withDefaults()
	d := &LineDedup{cfg: cfg, counts: make(map[uint64]uint32)}
	if cfg.BloomLines > 0 {
		d.bloom = bloom.NewWithEstimates(cfg.BloomLines, cfg.BloomFalsePositive)
	}
	return d
}

// Config returns the configuration with defaults filled in.
func (d *LineDedup) Config() LineConfig { return d.cfg }

// Docs is the number of documents counted since the last Reset.
func (d *LineDedup) Docs() int { return d.docs }

// Full reports whether the bucket holds BucketDocs documents.
func (d *LineDedup) Full() bool { return d.docs >= d.cfg.BucketDocs }

// Reset empties the bucket.
func (d *LineDedup) Reset() {
	clear(d.counts)
	if d.bloom != nil {
		d.bloom.ClearAll()
	}
	d.docs = 0
}

// Count is the first pass: it counts the lines of one document.
func (d *LineDedup) Count(text string) {
	d.docs++
	var key [8]byte
	for rest := text; len(rest) > 0; {
		line, next, _ := strings.Cut(rest, "\n")
		rest = next
		h, ok := d.lineHash(line)
		if !ok {
			continue
		}
		if c, seen := d.counts[h]; seen {
			if c < 1<<31 {
				d.counts[h] = c + 1
			}
			continue
		}
		if d.bloom == nil {
			d.counts[h] = 1
			continue
		}
		binary.LittleEndian.PutUint64(key[:], h)
		if d.bloom.TestAndAdd(key[:]) {
			d.counts[h] = 2
		}
	}
}

// count returns the bucket count of a line hash.
func (d *LineDedup) count(h uint64) uint32 {
	if c, ok := d.counts[h]; ok {
		return c
	}
	if d.bloom != nil {
		return 1 // first occurrence, absorbed by the bloom filter
	}
	return 0
}

// Filter is the second pass: it returns the text without the lines counted
// more than MaxRepeats times in the bucket. Lines that normalize to nothing
// (blank or punctuation-only lines) are always kept.
func (d *LineDedup) Filter(text string) (string, LineStats) {
	return filterLines(text, d.lineHash, func(h uint64) bool { return d.count(h) > uint32(d.cfg.MaxRepeats) })
}

// FilterLines returns text without the lines whose LineHash remove
// reports true (lines that normalize to nothing are always kept). It is
// the second half of line dedup for callers that count lines themselves,
// for example across files or machines. Safe for concurrent use.
func FilterLines(text string, remove func(h uint64) bool) (string, LineStats) {
	return filterLines(text, LineHash, remove)
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

func (d *LineDedup) lineHash(line string) (uint64, bool) {
	d.buf = appendLineNorm(d.buf[:0], line)
	if len(d.buf) == 0 {
		return 0, false
	}
	return xxh3.Hash(d.buf), true
}

// LineHash is the hash line dedup counts: xxh3-64 of NormalizeLine(line).
// ok is false for lines that normalize to nothing (never counted or
// removed). Safe for concurrent use.
func LineHash(line string) (h uint64, ok bool) {
	var arr [512]byte
	b := appendLineNorm(arr[:0], line)
	if len(b) == 0 {
		return 0, false
	}
	return xxh3.Hash(b), true
}

// AppendLineHashes appends the LineHash of every line of text (split at
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

// NormalizeLine is the form line dedup compares: lowercase, digits mapped
// to 0, punctuation and symbols dropped, whitespace runs collapsed to one
// space and trimmed (after ccNet's normalization).
func NormalizeLine(line string) string { return string(appendLineNorm(nil, line)) }

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

// DedupLines runs line dedup over texts in consecutive buckets of
// cfg.BucketDocs documents and returns the filtered texts and per-document
// statistics, index-aligned with texts.
func DedupLines(ctx context.Context, texts []string, cfg LineConfig) ([]string, []LineStats, error) {
	d := NewLineDedup(cfg)
	m := d.cfg.BucketDocs
	out := make([]string, len(texts))
	stats := make([]LineStats, len(texts))
	for lo := 0; lo < len(texts); lo += m {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("dedup: line dedup: %w", err)
		}
		hi := min(lo+m, len(texts))
		d.Reset()
		for _, t := range texts[lo:hi] {
			d.Count(t)
		}
		for i := lo; i < hi; i++ {
			out[i], stats[i] = d.Filter(texts[i])
		}
	}
	return out, stats, nil
}
