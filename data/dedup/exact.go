// Package dedup removes duplicate documents and lines at the three levels
// Llama 3 uses: URL (keep the most recent page), document (exact hashes of
// normalized text and MinHash near-duplicates) and line (ccNet style: drop
// lines repeated more than N times within a bucket of documents).
//
// The API works on caller-chosen uint64 document ids and plain strings; it
// knows nothing of Parquet, recipes or the curation pipeline. Ids should
// follow input order (for example a global ordinal, or shard<<32|row):
// wherever a rule says "keep the first", the smallest id wins, so results
// are deterministic and the same whether one process or many did the work.
//
// Each technique has an in-memory form for small inputs and a file-based
// form for corpora that do not fit one process: workers write sorted record
// files (see SpillConfig for the memory bound), and a merge step produces a
// removal file listing (removed id, kept id) in id order.
package dedup

import (
	"context"
	"encoding/binary"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/zeebo/xxh3"
)

// Key is a 128-bit content hash (Hi is zero for 64-bit hashing).
type Key struct{ Hi, Lo uint64 }

// ExactConfig selects the normalization and hash width of exact dedup.
// The zero value is the default: lowercase, whitespace runs collapsed to
// one space and trimmed, 128-bit xxh3.
type ExactConfig struct {
	// KeepCase disables lowercasing.
	KeepCase bool
	// KeepWhitespace disables whitespace collapsing and trimming.
	KeepWhitespace bool
	// Hash64 uses 64-bit xxh3 (Key.Hi = 0): half the key bytes, collision
	// probability about n²/2⁶⁵ for n documents (≈ 3% at 10⁹).
	Hash64 bool
}

// ExactHasher hashes normalized text. It reuses an internal buffer, so it
// is not safe for concurrent use; make one per goroutine.
type ExactHasher struct {
	cfg ExactConfig
	buf []byte
}

// NewExactHasher returns a hasher for cfg.
func NewExactHasher(cfg ExactConfig) *ExactHasher { return &ExactHasher{cfg: cfg} }

// Key returns the hash of the normalized text.
func (h *ExactHasher) Key(text string) Key {
	h.buf = appendNormalized(h.buf[:0], text, !h.cfg.KeepCase, !h.cfg.KeepWhitespace)
	return hashBytes(h.buf, h.cfg.Hash64)
}

func hashBytes(b []byte, h64 bool) Key {
	if h64 {
		return Key{Lo: xxh3.Hash(b)}
	}
	u := xxh3.Hash128(b)
	return Key{Hi: u.Hi, Lo: u.Lo}
}

// appendNormalized appends s lowercased (if lower) with whitespace runs
// collapsed to one space and trimmed (if collapse).
func appendNormalized(dst []byte, s string, lower, collapse bool) []byte {
	if !lower && !collapse {
		return append(dst, s...)
	}
	pending := false
	start := len(dst)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			if collapse && asciiSpace[c] {
				pending = len(dst) > start
				continue
			}
			if pending {
				dst = append(dst, ' ')
				pending = false
			}
			if lower && 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if collapse && unicode.IsSpace(r) {
			pending = len(dst) > start
			continue
		}
		if pending {
			dst = append(dst, ' ')
			pending = false
		}
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, s[i-1])
			continue
		}
		if lower {
			r = unicode.ToLower(r)
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst
}

var asciiSpace = [256]bool{' ': true, '\t': true, '\n': true, '\v': true, '\f': true, '\r': true}

// KeyRecord is one entry of a key file: a content or URL hash, an ordering
// value, and a document id. Among records with the same Key the one with
// the smallest (Order, ID) is kept.
type KeyRecord struct {
	Key   Key
	Order uint64
	ID    uint64
}

// RecencyOrder maps a timestamp (any monotone int64 unit, e.g. Unix
// seconds) to an Order value under which the most recent record sorts
// first, as URL dedup wants.
func RecencyOrder(ts int64) uint64 { return ^(uint64(ts) ^ 1<<63) }

func cmpKeyRecord(a, b KeyRecord) int {
	switch {
	case a.Key.Hi != b.Key.Hi:
		return cmpU64(a.Key.Hi, b.Key.Hi)
	case a.Key.Lo != b.Key.Lo:
		return cmpU64(a.Key.Lo, b.Key.Lo)
	case a.Order != b.Order:
		return cmpU64(a.Order, b.Order)
	}
	return cmpU64(a.ID, b.ID)
}

func cmpU64(a, b uint64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

var keyCodec = codec[KeyRecord]{
	kind: kindKeys, size: 32,
	put: func(b []byte, v KeyRecord) {
		binary.LittleEndian.PutUint64(b[0:], v.Key.Hi)
		binary.LittleEndian.PutUint64(b[8:], v.Key.Lo)
		binary.LittleEndian.PutUint64(b[16:], v.Order)
		binary.LittleEndian.PutUint64(b[24:], v.ID)
	},
	get: func(b []byte) KeyRecord {
		return KeyRecord{
			Key:   Key{binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:])},
			Order: binary.LittleEndian.Uint64(b[16:]),
			ID:    binary.LittleEndian.Uint64(b[24:]),
		}
	},
	cmp: cmpKeyRecord,
}

// KeyWriter builds one worker's key file: records are buffered, spilled as
// sorted runs when SpillConfig.MemoryBytes is reached, and merged into a
// single sorted file at Commit. Use one per worker (rank) and merge the
// files with MergeKeyFiles.
type KeyWriter struct{ w *sortedWriter[KeyRecord] }

// NewKeyWriter starts the key file path.
func NewKeyWriter(path string, cfg SpillConfig) *KeyWriter {
	return &KeyWriter{newSortedWriter("key", path, keyCodec, cfg, nil)}
}

// Add buffers one record.
func (w *KeyWriter) Add(r KeyRecord) error { return w.w.add(r) }

// Commit sorts and writes the file atomically.
func (w *KeyWriter) Commit(ctx context.Context) error { return w.w.commit(ctx) }

// Abort discards the file and the spilled runs.
func (w *KeyWriter) Abort() { w.w.abort() }

// MergeStats counts what a merge saw.
type MergeStats struct {
	Records  int64 // records read
	Distinct int64 // distinct keys (= documents kept)
	Removed  int64 // records whose key was already taken (= removals written)
}

// MergeKeyFiles merges sorted key files (one per worker) and writes the
// removal file out: for each key, every record but the smallest
// (Order, ID) is removed in favour of it. Memory is one record per input
// plus the removal list, which is sorted by id before writing.
func MergeKeyFiles(ctx context.Context, out string, inputs []string, cfg SpillConfig) (MergeStats, error) {
	var st MergeStats
	rw := NewRemovalWriter(out, cfg)
	var cur KeyRecord
	have := false
	err := mergeFiles(ctx, inputs, keyCodec, func(r KeyRecord) error {
		st.Records++
		if have && r.Key == cur.Key {
			st.Removed++
			return rw.Add(Removal{ID: r.ID, Keep: cur.ID})
		}
		cur, have = r, true
		st.Distinct++
		return nil
	})
	if err != nil {
		rw.Abort()
		return st, fmt.Errorf("dedup: merge key files into %s: %w", out, err)
	}
	return st, rw.Commit(ctx)
}
