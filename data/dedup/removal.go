package dedup

import (
	"context"
	"encoding/binary"
	"slices"
)

// Removal says document ID is a duplicate and document Keep is the one
// kept in its place (for MinHash, Keep is also the cluster id: the
// smallest id of the cluster).
type Removal struct {
	ID, Keep uint64
}

var removalCodec = codec[Removal]{
	kind: kindRemovals, size: 16,
	put: func(b []byte, v Removal) {
		binary.LittleEndian.PutUint64(b[0:], v.ID)
		binary.LittleEndian.PutUint64(b[8:], v.Keep)
	},
	get: func(b []byte) Removal {
		return Removal{binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:])}
	},
	cmp: func(a, b Removal) int {
		if c := cmpU64(a.ID, b.ID); c != 0 {
			return c
		}
		return cmpU64(a.Keep, b.Keep)
	},
}

// RemovalWriter collects removals in any order and writes them sorted by
// id (one entry per id: the smallest Keep wins) to a removal file.
type RemovalWriter struct{ w *sortedWriter[Removal] }

// NewRemovalWriter starts the removal file path.
func NewRemovalWriter(path string, cfg SpillConfig) *RemovalWriter {
	same := func(prev, cur Removal) bool { return prev.ID == cur.ID }
	return &RemovalWriter{newSortedWriter("removal", path, removalCodec, cfg, same)}
}

// Add buffers one removal.
func (w *RemovalWriter) Add(r Removal) error { return w.w.add(r) }

// Commit writes the file atomically.
func (w *RemovalWriter) Commit(ctx context.Context) error { return w.w.commit(ctx) }

// Abort discards the file.
func (w *RemovalWriter) Abort() { w.w.abort() }

// writeRemovals writes rs (any order) to a removal file.
func writeRemovals(ctx context.Context, path string, rs []Removal) error {
	w := NewRemovalWriter(path, SpillConfig{MemoryBytes: int64(len(rs)+1) * 24})
	for _, r := range rs {
		if err := w.Add(r); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Commit(ctx)
}

// RemovalReader streams a removal file in increasing id order, so a
// pipeline can walk it alongside documents in id order.
type RemovalReader struct {
	r    *recReader
	last uint64
	n    int
}

// OpenRemovals opens a removal file.
func OpenRemovals(path string) (*RemovalReader, error) {
	r, err := openRec(path, kindRemovals, removalCodec.size)
	if err != nil {
		return nil, err
	}
	return &RemovalReader{r: r}, nil
}

// Next returns the next removal, or io.EOF after the last one.
func (rr *RemovalReader) Next() (Removal, error) {
	b, err := rr.r.next()
	if err != nil {
		return Removal{}, err
	}
	v := removalCodec.get(b)
	if rr.n > 0 && v.ID <= rr.last {
		return Removal{}, rr.r.errOrder("ids must increase")
	}
	rr.n++
	rr.last = v.ID
	return v, nil
}

// Close closes the file.
func (rr *RemovalReader) Close() error { return rr.r.close() }

// sortRemovals sorts in place by id and drops repeated ids (smallest Keep wins).
func sortRemovals(rs []Removal) []Removal {
	slices.SortFunc(rs, removalCodec.cmp)
	return slices.CompactFunc(rs, func(a, b Removal) bool { return a.ID == b.ID })
}
