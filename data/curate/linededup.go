package curate

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/herdml/herd/data/dedup"
	"github.com/herdml/herd/data/document"
	"github.com/herdml/herd/internal/atomicfile"
)

// Line dedup (ccNet) counts lines within buckets of M consecutive input
// documents across the whole corpus: bucket b holds the documents whose
// input position (documents of earlier units, then the index within the
// unit) lies in [b·M, (b+1)·M). A bucket may span several units and ranks,
// so line dedup is a global stage in three steps, each with memory bounded
// by the bucket size, not the corpus:
//
//  1. collect: each unit writes, for every document reaching the stage,
//     its index in the unit and the hashes of its lines (lines-NNNNN);
//  2. decide: bucket b (on rank b mod world) counts the hashes of its
//     documents, reading the units it overlaps in order, and writes the
//     hashes seen more than N times (linebucket-NNNNNN);
//  3. apply: the next pass removes those lines from each document, loading
//     the one or two buckets a chunk of documents overlaps.

const (
	lineFileMagic   = "herd-lines-v1\n"
	bucketFileMagic = "herd-linebucket-v1\n"
)

// lineDedup is the line_dedup stage (see above).
type lineDedup struct {
	e       *env
	buckets *lineBuckets // the decision, once loaded
}

func (*lineDedup) name() string { return StageLineDedup }

func (*lineDedup) key(it *item, s *scratch) {
	it.lines, s.line = dedup.AppendLineHashes(it.lines[:0], it.rec.doc.Text, s.line)
}

func (*lineDedup) collector(r *runner, p, u int) (collector, error) {
	c, err := newLineCollector(r.lineFile(p, u))
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (g *lineDedup) decide(ctx context.Context, r *runner, p int) error {
	if err := r.decideLines(ctx, p); err != nil {
		return err
	}
	return r.onRank0(ctx, g.name(), p, func() error {
		return atomicfile.WriteFile(r.decisionFile(p), []byte("line dedup buckets written\n"), 0o644)
	})
}

func (g *lineDedup) load(r *runner, p int) error {
	lb, err := r.loadLineBuckets(p)
	if err != nil {
		return err
	}
	g.buckets = lb
	return nil
}

func (g *lineDedup) prepare(items []*item) error { return g.buckets.prepare(items) }

func (g *lineDedup) step() localFunc {
	minChars := g.e.cfg.LineDedup.MinChars
	return func(d *document.Doc, s *scratch) verdict {
		text, ls := g.buckets.filter(d.Text, d.Ordinal)
		if ls.LinesRemoved == 0 {
			return verdict{}
		}
		d.Text = strings.TrimSpace(text)
		if len(d.Text) < minChars {
			return verdict{rule: "nothing_left", linesRemoved: ls.LinesRemoved,
				detail: fmt.Sprintf("%d of %d lines were repeated boilerplate", ls.LinesRemoved, ls.Lines)}
		}
		return verdict{linesRemoved: ls.LinesRemoved}
	}
}

func (r *runner) lineFile(p, u int) string { return r.unitFile(p, u, "lines") }

func (r *runner) bucketFile(p, b int) string {
	return filepath.Join(r.passDir(p), fmt.Sprintf("linebucket-%06d", b))
}

// lineCollector writes one unit's line hashes.
type lineCollector struct {
	f   *atomicfile.File
	w   *bufio.Writer
	buf []byte
}

func newLineCollector(path string) (*lineCollector, error) {
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	w.WriteString(lineFileMagic)
	return &lineCollector{f: f, w: w}, nil
}

func (c *lineCollector) add(it *item) error {
	b := binary.AppendUvarint(c.buf[:0], uint64(uint32(it.rec.doc.Ordinal)))
	b = binary.AppendUvarint(b, uint64(len(it.lines)))
	for _, h := range it.lines {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	c.buf = b
	if _, err := c.w.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", c.f.Name(), err)
	}
	return nil
}

func (c *lineCollector) commit(context.Context) error {
	if err := c.w.Flush(); err != nil {
		c.f.Abort()
		return fmt.Errorf("write %s: %w", c.f.Name(), err)
	}
	return c.f.Commit()
}

func (c *lineCollector) abort() { c.f.Abort() }

// lineReader streams a unit's line file.
type lineReader struct {
	path string
	f    *os.File
	r    *bufio.Reader
	// current record
	index  uint64
	hashes []uint64
	ok     bool
}

func openLineFile(path string) (*lineReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(f, 256<<10)
	magic := make([]byte, len(lineFileMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != lineFileMagic {
		f.Close()
		return nil, fmt.Errorf("%s: not a herd line-hash file (delete the work directory to start over)", path)
	}
	return &lineReader{path: path, f: f, r: r}, nil
}

// next reads the next record; ok is false at the end.
func (lr *lineReader) next() error {
	idx, err := binary.ReadUvarint(lr.r)
	if errors.Is(err, io.EOF) {
		lr.ok = false
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", lr.path, err)
	}
	n, err := binary.ReadUvarint(lr.r)
	if err != nil || n > 1<<28 {
		return fmt.Errorf("%s: corrupt record (delete the work directory to start over)", lr.path)
	}
	lr.hashes = slices.Grow(lr.hashes[:0], int(n))[:n]
	var b [8]byte
	for i := range lr.hashes {
		if _, err := io.ReadFull(lr.r, b[:]); err != nil {
			return fmt.Errorf("%s: truncated record: %w", lr.path, err)
		}
		lr.hashes[i] = binary.LittleEndian.Uint64(b[:])
	}
	lr.index, lr.ok = idx, true
	return nil
}

func (lr *lineReader) close() { lr.f.Close() }

// inputOffsets returns, per unit, the input position of its first
// document, and the total number of input documents (from pass 0's stats).
func (r *runner) inputOffsets() ([]int64, int64, error) {
	offsets := make([]int64, len(r.units))
	var total int64
	for i, u := range r.units {
		st, err := readStats(r.unitFile(0, u.Index, "stats") + ".json")
		if err != nil {
			return nil, 0, fmt.Errorf("line dedup: %w", err)
		}
		offsets[i] = total
		if in := st.Stages["input"]; in != nil {
			total += in.In.Docs
		}
	}
	return offsets, total, nil
}

// decideLines writes the bucket files of this rank's buckets, then waits
// for every bucket.
func (r *runner) decideLines(ctx context.Context, p int) error {
	offsets, total, err := r.inputOffsets()
	if err != nil {
		return err
	}
	m := int64(r.cfg.LineDedup.BucketDocs)
	buckets := int((total + m - 1) / m)
	cursors := map[int]*lineReader{} // unit position → reader, advanced in bucket order
	defer func() {
		for _, c := range cursors {
			c.close()
		}
	}()
	counts := map[uint64]uint32{}
	for b := r.opt.Rank; b < buckets; b += r.opt.World {
		out := r.bucketFile(p, b)
		if _, err := os.Stat(out); err == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		lo, hi := int64(b)*m, int64(b+1)*m
		clear(counts)
		end := func(i int) int64 {
			if i+1 < len(offsets) {
				return offsets[i+1]
			}
			return total
		}
		first := sort.Search(len(offsets), func(i int) bool { return end(i) > lo })
		for i, c := range cursors {
			if i < first { // wholly before this bucket: done
				c.close()
				delete(cursors, i)
			}
		}
		for i := first; i < len(offsets) && offsets[i] < hi; i++ {
			u := r.units[i]
			c := cursors[i]
			if c == nil {
				if c, err = openLineFile(r.lineFile(p, u.Index)); err != nil {
					return err
				}
				cursors[i] = c
				if err := c.next(); err != nil {
					return err
				}
			}
			for c.ok {
				g := offsets[i] + int64(c.index)
				if g >= hi {
					break
				}
				if g >= lo {
					for _, h := range c.hashes {
						if n := counts[h]; n < 1<<31 {
							counts[h] = n + 1
						}
					}
				}
				if err := c.next(); err != nil {
					return err
				}
			}
		}
		var over []uint64
		for h, n := range counts {
			if n > uint32(r.cfg.LineDedup.MaxRepeats) {
				over = append(over, h)
			}
		}
		slices.Sort(over)
		b := make([]byte, 0, len(bucketFileMagic)+8*len(over))
		b = append(b, bucketFileMagic...)
		for _, h := range over {
			b = binary.LittleEndian.AppendUint64(b, h)
		}
		if err := atomicfile.WriteFile(out, b, 0o644); err != nil {
			return err
		}
	}
	files := make([]string, buckets)
	for b := range files {
		files[b] = r.bucketFile(p, b)
	}
	return r.waitFor(ctx, fmt.Sprintf("the line buckets of pass %d", p+1), len(files), func(b int) bool { return fileExists(files[b]) }, func(b int) (string, int) {
		return "line bucket " + strconv.Itoa(b), b % r.opt.World
	})
}

func readBucketFile(path string) (map[uint64]struct{}, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("line dedup: %w", err)
	}
	if len(b) < len(bucketFileMagic) || string(b[:len(bucketFileMagic)]) != bucketFileMagic || (len(b)-len(bucketFileMagic))%8 != 0 {
		return nil, fmt.Errorf("%s: not a herd line bucket file (delete the work directory to start over)", path)
	}
	b = b[len(bucketFileMagic):]
	set := make(map[uint64]struct{}, len(b)/8)
	for i := 0; i+8 <= len(b); i += 8 {
		set[binary.LittleEndian.Uint64(b[i:])] = struct{}{}
	}
	return set, nil
}

// lineBuckets holds the repeated-line sets of the buckets the current
// chunk overlaps (read-only while a chunk is processed).
type lineBuckets struct {
	offsets []int64 // by unit position
	unitPos map[int]int
	m       int64
	dir     func(b int) string
	sets    map[int64]map[uint64]struct{}
}

func (r *runner) loadLineBuckets(p int) (*lineBuckets, error) {
	offsets, _, err := r.inputOffsets()
	if err != nil {
		return nil, err
	}
	lb := &lineBuckets{offsets: offsets, unitPos: map[int]int{}, m: int64(r.cfg.LineDedup.BucketDocs),
		dir: func(b int) string { return r.bucketFile(p, b) }, sets: map[int64]map[uint64]struct{}{}}
	for i, u := range r.units {
		lb.unitPos[u.Index] = i
	}
	return lb, nil
}

func (lb *lineBuckets) bucket(ordinal uint64) int64 {
	return (lb.offsets[lb.unitPos[int(ordinal>>32)]] + int64(uint32(ordinal))) / lb.m
}

// prepare loads the buckets of items and drops the others.
func (lb *lineBuckets) prepare(items []*item) error {
	want := map[int64]bool{}
	for _, it := range items {
		if it.stage == "" {
			want[lb.bucket(it.rec.doc.Ordinal)] = true
		}
	}
	for b := range lb.sets {
		if !want[b] {
			delete(lb.sets, b)
		}
	}
	for b := range want {
		if lb.sets[b] == nil {
			set, err := readBucketFile(lb.dir(int(b)))
			if err != nil {
				return err
			}
			lb.sets[b] = set
		}
	}
	return nil
}

// filter removes the repeated lines of the document's bucket.
func (lb *lineBuckets) filter(text string, ordinal uint64) (string, dedup.LineStats) {
	set := lb.sets[lb.bucket(ordinal)]
	if len(set) == 0 {
		return text, dedup.LineStats{}
	}
	return dedup.FilterLines(text, func(h uint64) bool {
		_, ok := set[h]
		return ok
	})
}
