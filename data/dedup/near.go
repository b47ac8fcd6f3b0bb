package dedup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
)

// Distributed MinHash near-dedup runs in four stages, each of which can be
// split across workers that share a file system:
//
//  1. signatures: each worker writes the signatures of its documents with a
//     SignatureWriter (one file per worker, ids increasing).
//  2. bands: WriteBands reads all signature files and writes, for the bands
//     assigned to this worker, one file per band of (band hash, id) sorted
//     by hash (external sort, memory bounded by SpillConfig).
//  3. edges: FindEdges scans one band file; documents sharing a band hash
//     are candidate pairs, verified by estimated Jaccard if configured, and
//     written to an edge file.
//  4. clusters: ClusterEdges unions all edges (connected components) and
//     writes the removal file: every member of a cluster except its
//     smallest id, with Keep = that smallest id (the cluster id).

// pairEdge says documents A and B were found similar (A > B).
type pairEdge struct{ A, B uint64 }

type bandRec struct{ Hash, ID uint64 }

func cmpBandRec(a, b bandRec) int {
	if c := cmpU64(a.Hash, b.Hash); c != 0 {
		return c
	}
	return cmpU64(a.ID, b.ID)
}

var bandCodec = codec[bandRec]{
	kind: kindBands, size: 16,
	put: func(b []byte, v bandRec) {
		binary.LittleEndian.PutUint64(b[0:], v.Hash)
		binary.LittleEndian.PutUint64(b[8:], v.ID)
	},
	get: func(b []byte) bandRec {
		return bandRec{binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:])}
	},
	cmp: cmpBandRec,
}

var edgeCodec = codec[pairEdge]{
	kind: kindEdges, size: 16,
	put: func(b []byte, v pairEdge) {
		binary.LittleEndian.PutUint64(b[0:], v.A)
		binary.LittleEndian.PutUint64(b[8:], v.B)
	},
	get: func(b []byte) pairEdge {
		return pairEdge{binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:])}
	},
	cmp: func(a, b pairEdge) int {
		if c := cmpU64(a.A, b.A); c != 0 {
			return c
		}
		return cmpU64(a.B, b.B)
	},
}

// BandFileName is the name of band b's bucket file in dir.
func BandFileName(dir string, band int) string {
	return filepath.Join(dir, fmt.Sprintf("band-%03d.bin", band))
}

func bandParams(c MinHashConfig, band int) []byte {
	p := sigParams(c)
	return binary.LittleEndian.AppendUint32(p, uint32(band))
}

// WriteBands is stage 2: it reads the signature files (all workers'
// output) and writes BandFileName(outDir, b) for each b in bands. A worker
// of W takes the bands b with b % W == rank; nil means all bands. Memory is
// bounded by cfg.MemoryBytes across all the bands being built.
func WriteBands(ctx context.Context, sigFiles []string, outDir string, bands []int, cfg SpillConfig) error {
	if len(sigFiles) == 0 {
		return errors.New("dedup: WriteBands: no signature files")
	}
	readers := make([]*signatureReader, 0, len(sigFiles))
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	for _, p := range sigFiles {
		r, err := openSignatures(p)
		if err != nil {
			return err
		}
		if len(readers) > 0 && !sameHashing(readers[0].cfg, r.cfg) {
			r.Close()
			return fmt.Errorf("dedup: %s was written with different MinHash settings than %s", p, sigFiles[0])
		}
		readers = append(readers, r)
	}
	mc := readers[0].cfg
	if bands == nil {
		for b := range mc.Bands {
			bands = append(bands, b)
		}
	}
	cfg = cfg.withDefaults()
	per := SpillConfig{TempDir: cfg.TempDir, MemoryBytes: cfg.MemoryBytes / int64(max(len(bands), 1))}
	sorters := make([]*sorter[bandRec], len(bands))
	for i, b := range bands {
		if b < 0 || b >= mc.Bands {
			return fmt.Errorf("dedup: WriteBands: band %d out of range 0..%d", b, mc.Bands-1)
		}
		sorters[i] = newSorter(bandCodec, bandParams(mc, b), per)
		defer sorters[i].cleanup()
	}
	var hs []uint64
	for _, r := range readers {
		for n := 0; ; n++ {
			if n&4095 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			id, sig, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			if sig[0] == emptySig {
				continue
			}
			hs = bandHashes(sig, mc.Bands, mc.Rows, hs[:0])
			for i, b := range bands {
				if err := sorters[i].add(bandRec{hs[b], id}); err != nil {
					return err
				}
			}
		}
	}
	enc := make([]byte, bandCodec.size)
	for i, b := range bands {
		path := BandFileName(outDir, b)
		w, err := createRec(path, kindBands, bandCodec.size, bandParams(mc, b))
		if err != nil {
			return err
		}
		err = sorters[i].finish(ctx, func(v bandRec) error {
			bandCodec.put(enc, v)
			return w.write(enc)
		})
		if err != nil {
			w.abort()
			return fmt.Errorf("dedup: write %s: %w", path, err)
		}
		if err := w.commit(); err != nil {
			return err
		}
	}
	return nil
}

// EdgeStats counts the work of FindEdges.
type EdgeStats struct {
	Buckets    int64 // band hashes shared by ≥ 2 documents
	Candidates int64 // documents in those buckets after the first
	Compared   int64 // signature comparisons made
	Edges      int64 // edges written
}

// FindEdges is stage 3 for one band file: documents sharing a band hash
// are candidates; each is linked to the earliest member of its bucket
// whose signature agrees on at least cfg.Threshold of positions (checked
// via idx; at most cfg.MaxCompare comparisons per document), or, with
// Threshold < 0, to the bucket's smallest id. Edges go to the file out.
func FindEdges(ctx context.Context, bandFile string, idx *SignatureIndex, out string, cfg MinHashConfig) (EdgeStats, error) {
	var st EdgeStats
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return st, err
	}
	if cfg.Threshold >= 0 && idx == nil {
		return st, fmt.Errorf("dedup: FindEdges %s: verification at threshold %v needs a SignatureIndex (or set Threshold < 0)", bandFile, cfg.Threshold)
	}
	r, err := openRec(bandFile, kindBands, bandCodec.size)
	if err != nil {
		return st, err
	}
	defer r.close()
	fc, err := parseSigParams(bandFile, r.params)
	if err != nil {
		return st, err
	}
	if idx != nil && !sameHashing(fc, idx.cfg) {
		return st, fmt.Errorf("dedup: %s and the signature index were built with different MinHash settings", bandFile)
	}
	w, err := createRec(out, kindEdges, edgeCodec.size, nil)
	if err != nil {
		return st, err
	}
	enc := make([]byte, edgeCodec.size)
	emit := func(e pairEdge) error {
		edgeCodec.put(enc, e)
		return w.write(enc)
	}
	var lookup func(id uint64, dst []uint64) ([]uint64, error)
	if idx != nil {
		lookup = func(id uint64, dst []uint64) ([]uint64, error) {
			s, ok, err := idx.Lookup(id, dst)
			if err == nil && !ok {
				err = fmt.Errorf("dedup: %s names document %d, which no signature file holds", bandFile, id)
			}
			return s, err
		}
	}
	g := newGrouper(cfg, lookup)
	err = scanGroups(ctx, fileSource(r, bandCodec), func(ids []uint64) error {
		return g.group(ids, &st, emit)
	})
	if err != nil {
		w.abort()
		return st, fmt.Errorf("dedup: find edges in %s: %w", bandFile, err)
	}
	return st, w.commit()
}

// scanGroups calls fn with the ids (ascending) of each run of ≥ 2 records
// sharing a hash. The ids slice is reused between calls.
func scanGroups(ctx context.Context, next source[bandRec], fn func(ids []uint64) error) error {
	var ids []uint64
	var cur uint64
	for n := 0; ; n++ {
		if n&4095 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		v, ok, err := next()
		if err != nil {
			return err
		}
		if !ok || v.Hash != cur || len(ids) == 0 {
			if len(ids) >= 2 {
				if err := fn(ids); err != nil {
					return err
				}
			}
			if !ok {
				return nil
			}
			ids, cur = ids[:0], v.Hash
		}
		ids = append(ids, v.ID)
	}
}

// grouper turns one bucket into edges.
type grouper struct {
	cfg    MinHashConfig
	lookup func(id uint64, dst []uint64) ([]uint64, error)
	sigs   [][]uint64
}

func newGrouper(cfg MinHashConfig, lookup func(uint64, []uint64) ([]uint64, error)) *grouper {
	return &grouper{cfg: cfg, lookup: lookup}
}

func (g *grouper) group(ids []uint64, st *EdgeStats, emit func(pairEdge) error) error {
	st.Buckets++
	st.Candidates += int64(len(ids) - 1)
	if g.cfg.Threshold < 0 || g.lookup == nil {
		for _, id := range ids[1:] {
			st.Edges++
			if err := emit(pairEdge{id, ids[0]}); err != nil {
				return err
			}
		}
		return nil
	}
	// Load signatures lazily: only the first MaxCompare members are ever
	// compared against, plus each member itself.
	keep := min(len(ids), g.cfg.MaxCompare)
	for len(g.sigs) < keep+1 {
		g.sigs = append(g.sigs, nil)
	}
	var err error
	for j := range keep {
		if g.sigs[j], err = g.lookup(ids[j], g.sigs[j]); err != nil {
			return err
		}
	}
	for i := 1; i < len(ids); i++ {
		var si []uint64
		if i < keep {
			si = g.sigs[i]
		} else {
			if g.sigs[keep], err = g.lookup(ids[i], g.sigs[keep]); err != nil {
				return err
			}
			si = g.sigs[keep]
		}
		for j := 0; j < min(i, keep); j++ {
			st.Compared++
			if signatureSimilarity(si, g.sigs[j]) >= g.cfg.Threshold {
				st.Edges++
				if err := emit(pairEdge{ids[i], ids[j]}); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// unionFind holds connected components over the documents seen in edges;
// the root of each component is its smallest id.
type unionFind struct{ parent map[uint64]uint64 }

func (u *unionFind) find(x uint64) uint64 {
	root := x
	for {
		p, ok := u.parent[root]
		if !ok || p == root {
			break
		}
		root = p
	}
	for x != root { // path compression
		p := u.parent[x]
		u.parent[x] = root
		x = p
	}
	return root
}

func (u *unionFind) union(a, b uint64) {
	if _, ok := u.parent[a]; !ok {
		u.parent[a] = a
	}
	if _, ok := u.parent[b]; !ok {
		u.parent[b] = b
	}
	ra, rb := u.find(a), u.find(b)
	switch {
	case ra < rb:
		u.parent[rb] = ra
	case rb < ra:
		u.parent[ra] = rb
	}
}

func (u *unionFind) removals() []Removal {
	var out []Removal
	for x := range u.parent {
		if r := u.find(x); r != x {
			out = append(out, Removal{ID: x, Keep: r})
		}
	}
	return sortRemovals(out)
}

// ClusterStats counts the result of ClusterEdges.
type ClusterStats struct {
	Edges    int64 // edges read
	Docs     int64 // documents in some cluster
	Clusters int64 // clusters (each keeps one document)
	Removed  int64 // documents removed
}

// ClusterEdges is stage 4: it reads edge files, computes connected
// components and writes the removal file out. Memory is about 40 bytes per
// document that appears in an edge.
func ClusterEdges(ctx context.Context, edgeFiles []string, out string) (ClusterStats, error) {
	var st ClusterStats
	u := &unionFind{parent: make(map[uint64]uint64)}
	for _, p := range edgeFiles {
		r, err := openRec(p, kindEdges, edgeCodec.size)
		if err != nil {
			return st, err
		}
		err = r.each(func(b []byte) error {
			if st.Edges&4095 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			e := edgeCodec.get(b)
			st.Edges++
			u.union(e.A, e.B)
			return nil
		})
		r.close()
		if err != nil {
			return st, fmt.Errorf("dedup: cluster edges: %w", err)
		}
	}
	rs := u.removals()
	st.Docs = int64(len(u.parent))
	st.Removed = int64(len(rs))
	st.Clusters = st.Docs - st.Removed
	return st, writeRemovals(ctx, out, rs)
}
