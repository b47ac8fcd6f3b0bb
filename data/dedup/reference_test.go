package dedup

// In-memory and single-process versions of the dedup stages that curate
// runs streamed and spilled to disk: the tests use them as independent
// references and to drive the file formats end to end.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/zeebo/xxh3"
)

// HashText returns the exact-dedup key of text under cfg. It is safe for
// concurrent use and does not allocate for texts up to 4 KiB (ExactHasher
// reuses one buffer for longer texts).
func HashText(text string, cfg ExactConfig) Key {
	var arr [4096]byte
	return hashBytes(appendNormalized(arr[:0], text, !cfg.KeepCase, !cfg.KeepWhitespace), cfg.Hash64)
}

// Normalize returns the text exact dedup hashes under cfg.
func Normalize(text string, cfg ExactConfig) string {
	return string(appendNormalized(nil, text, !cfg.KeepCase, !cfg.KeepWhitespace))
}

// ExactSet is a streaming in-memory exact-dedup set: the first document
// added with a given normalized text is kept, later ones are duplicates of
// it. Memory is about 40 bytes per distinct text. Not safe for concurrent use.
type ExactSet struct {
	h    *ExactHasher
	seen map[Key]uint64
}

// NewExactSet returns an empty set.
func NewExactSet(cfg ExactConfig) *ExactSet {
	return &ExactSet{h: NewExactHasher(cfg), seen: make(map[Key]uint64)}
}

// Add records a document. If an earlier document had the same normalized
// text, Add returns that document's id and dup = true.
func (s *ExactSet) Add(id uint64, text string) (keep uint64, dup bool) {
	return s.AddKey(id, s.h.Key(text))
}

// AddKey is Add for a precomputed key.
func (s *ExactSet) AddKey(id uint64, k Key) (keep uint64, dup bool) {
	if first, ok := s.seen[k]; ok {
		return first, true
	}
	s.seen[k] = id
	return id, false
}

// Len is the number of distinct texts seen.
func (s *ExactSet) Len() int { return len(s.seen) }

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

func (d *LineDedup) lineHash(line string) (uint64, bool) {
	d.buf = appendLineNorm(d.buf[:0], line)
	if len(d.buf) == 0 {
		return 0, false
	}
	return xxh3.Hash(d.buf), true
}

// NormalizeLine is the form line dedup compares: lowercase, digits mapped
// to 0, punctuation and symbols dropped, whitespace runs collapsed to one
// space and trimmed (after ccNet's normalization).
func NormalizeLine(line string) string { return string(appendLineNorm(nil, line)) }

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

// NearDuplicates finds near-duplicate documents in memory with the same
// hashing, bucketing, verification and clustering as the staged API, and
// returns the removals sorted by id. Ids must be unique. Signatures are
// computed on all cores; the result does not depend on their number.
func NearDuplicates(ctx context.Context, docs []Doc, cfg MinHashConfig) ([]Removal, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	k := cfg.Bands * cfg.Rows
	sigs := make([]uint64, len(docs)*k)
	pos := make(map[uint64]int, len(docs))
	for i, d := range docs {
		if j, dup := pos[d.ID]; dup {
			return nil, fmt.Errorf("dedup: NearDuplicates: id %d used by documents %d and %d", d.ID, j, i)
		}
		pos[d.ID] = i
	}
	workers := min(runtime.GOMAXPROCS(0), max(len(docs)/64, 1))
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mh, err := NewMinHasher(cfg)
			if err != nil {
				errs[w] = err
				return
			}
			for i := w; i < len(docs); i += workers {
				if i%256 == w && ctx.Err() != nil {
					errs[w] = ctx.Err()
					return
				}
				mh.Signature(docs[i].Text, sigs[i*k:(i+1)*k])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	lookup := func(id uint64, _ []uint64) ([]uint64, error) {
		i := pos[id]
		return sigs[i*k : (i+1)*k], nil
	}
	g := newGrouper(cfg, lookup)
	u := &unionFind{parent: make(map[uint64]uint64)}
	emit := func(e pairEdge) error { u.union(e.A, e.B); return nil }
	var st EdgeStats
	bh := make([]uint64, 0, len(docs)*cfg.Bands)
	for i := range docs {
		sig := sigs[i*k : (i+1)*k]
		bh = bandHashes(sig, cfg.Bands, cfg.Rows, bh)
	}
	recs := make([]bandRec, 0, len(docs))
	for b := range cfg.Bands {
		recs = recs[:0]
		for i, d := range docs {
			if sigs[i*k] == emptySig {
				continue
			}
			recs = append(recs, bandRec{bh[i*cfg.Bands+b], d.ID})
		}
		slices.SortFunc(recs, cmpBandRec)
		rest := recs
		next := func() (bandRec, bool, error) {
			if len(rest) == 0 {
				return bandRec{}, false, nil
			}
			v := rest[0]
			rest = rest[1:]
			return v, true, nil
		}
		if err := scanGroups(ctx, next, func(ids []uint64) error { return g.group(ids, &st, emit) }); err != nil {
			return nil, fmt.Errorf("dedup: NearDuplicates: %w", err)
		}
	}
	return u.removals(), nil
}

// BandsOf returns the bands that partition part of parts handles
// (b % parts == part), for splitting stages 2 and 3 across workers.
func BandsOf(part, parts, bands int) []int {
	var out []int
	for b := range bands {
		if parts > 0 && b%parts == part {
			out = append(out, b)
		}
	}
	return out
}

// EdgeFileName is the name of band b's edge file in dir.
func EdgeFileName(dir string, band int) string {
	return filepath.Join(dir, fmt.Sprintf("edges-%03d.bin", band))
}

// FindBandEdges runs stages 2 and 3 for one partition: it writes the band
// files of BandsOf(part, parts, Bands) into workDir, then their edge files
// (EdgeFileName), and returns the edge file paths. cfg must hash like the
// signature files (only Threshold and MaxCompare are taken from it).
func FindBandEdges(ctx context.Context, sigFiles []string, workDir string, part, parts int, cfg MinHashConfig, spill SpillConfig) ([]string, EdgeStats, error) {
	var total EdgeStats
	if parts < 1 || part < 0 || part >= parts {
		return nil, total, fmt.Errorf("dedup: partition %d of %d: want 0 ≤ part < parts", part, parts)
	}
	cfg = cfg.withDefaults()
	var idx *SignatureIndex
	var hashing MinHashConfig
	if cfg.Threshold >= 0 {
		var err error
		if idx, err = OpenSignatureIndex(sigFiles); err != nil {
			return nil, total, err
		}
		defer idx.Close()
		hashing = idx.cfg
	} else {
		r, err := openSignatures(sigFiles[0])
		if err != nil {
			return nil, total, err
		}
		hashing = r.cfg
		r.Close()
	}
	bands := BandsOf(part, parts, hashing.Bands)
	if len(bands) == 0 {
		return nil, total, nil
	}
	if err := WriteBands(ctx, sigFiles, workDir, bands, spill); err != nil {
		return nil, total, err
	}
	var out []string
	for _, b := range bands {
		p := EdgeFileName(workDir, b)
		st, err := FindEdges(ctx, BandFileName(workDir, b), idx, p, cfg)
		if err != nil {
			return nil, total, err
		}
		total.Buckets += st.Buckets
		total.Candidates += st.Candidates
		total.Compared += st.Compared
		total.Edges += st.Edges
		out = append(out, p)
	}
	return out, total, nil
}

// NearDuplicateFiles runs stages 2–4 in one process over signature files
// and writes the removal file out (intermediate files go to workDir).
func NearDuplicateFiles(ctx context.Context, sigFiles []string, workDir, out string, cfg MinHashConfig, spill SpillConfig) (ClusterStats, error) {
	edges, _, err := FindBandEdges(ctx, sigFiles, workDir, 0, 1, cfg, spill)
	if err != nil {
		return ClusterStats{}, err
	}
	return ClusterEdges(ctx, edges, out)
}

// URLRecord is the key-file record for URL dedup of document id fetched at
// time ts: write these with a KeyWriter and MergeKeyFiles keeps, per
// normalized URL, the most recent document (ties: the smallest id).
func URLRecord(id uint64, normalizedURL string, ts int64) KeyRecord {
	return KeyRecord{Key: URLKey(normalizedURL), Order: RecencyOrder(ts), ID: id}
}

// URLSet is in-memory URL dedup: add every document, then Removals lists
// all but the most recent document per normalized URL (ties: smallest id).
type URLSet struct {
	cfg  URLConfig
	best map[Key]KeyRecord
	all  []KeyRecord
}

// NewURLSet returns an empty set.
func NewURLSet(cfg URLConfig) *URLSet { return &URLSet{cfg: cfg, best: make(map[Key]KeyRecord)} }

// Add records document id with URL rawURL fetched at ts. A URL that does
// not normalize is an error and the document is not recorded.
func (s *URLSet) Add(id uint64, rawURL string, ts int64) error {
	n, err := NormalizeURL(rawURL, s.cfg)
	if err != nil {
		return err
	}
	r := URLRecord(id, n, ts)
	s.all = append(s.all, r)
	if b, ok := s.best[r.Key]; !ok || cmpKeyRecord(r, b) < 0 {
		s.best[r.Key] = r
	}
	return nil
}

// Removals returns the documents to remove, sorted by id.
func (s *URLSet) Removals() []Removal {
	var out []Removal
	for _, r := range s.all {
		if b := s.best[r.Key]; b.ID != r.ID {
			out = append(out, Removal{ID: r.ID, Keep: b.ID})
		}
	}
	return sortRemovals(out)
}

// ReadRemovals reads a whole removal file (16 bytes of memory per entry).
func ReadRemovals(path string) ([]Removal, error) {
	rr, err := OpenRemovals(path)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	return readRemovals(rr)
}

func readRemovals(rr *RemovalReader) ([]Removal, error) {
	var out []Removal
	for {
		v, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

// openRecBytes is newRecReader over an in-memory file (fuzz tests).
func openRecBytes(name string, data []byte, kind uint16, recSize int) (*recReader, error) {
	return newRecReader(name, bytes.NewReader(data), int64(len(data)), kind, recSize)
}

// Doc is a document for the in-memory APIs.
type Doc struct {
	ID   uint64
	Text string
}

// addText computes and writes the signature of one document.
func addText(s *SignatureWriter, id uint64, text string) error {
	sig, _ := s.mh.Signature(text, nil)
	return s.Add(id, sig)
}
