package curate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sourcegraph/conc/pool"

	"github.com/herdml/herd/data/dedup"
	"github.com/herdml/herd/data/heuristics"
	"github.com/herdml/herd/data/shard"
	"github.com/herdml/herd/internal/atomicfile"
)

// collector writes one unit's keys for a global stage.
type collector interface {
	add(it *item) error
	commit(ctx context.Context) error
	abort()
}

type noCollector struct{}

func (noCollector) add(*item) error              { return nil }
func (noCollector) commit(context.Context) error { return nil }
func (noCollector) abort()                       {}

type keyCollector struct {
	w     *dedup.KeyWriter
	stage string
}

func (c *keyCollector) add(it *item) error {
	if !it.hasKey {
		return nil
	}
	order := uint64(0)
	if c.stage == StageURLDedup {
		ts := int64(0)
		if t, ok := it.rec.doc.Time(); ok {
			ts = t.Unix()
		}
		order = dedup.RecencyOrder(ts)
	}
	return c.w.Add(dedup.KeyRecord{Key: it.key, Order: order, ID: it.rec.doc.Ordinal})
}
func (c *keyCollector) commit(ctx context.Context) error { return c.w.Commit(ctx) }
func (c *keyCollector) abort()                           { c.w.Abort() }

type sigCollector struct{ w *dedup.SignatureWriter }

func (c *sigCollector) add(it *item) error           { return c.w.Add(it.rec.doc.Ordinal, it.sig) }
func (c *sigCollector) commit(context.Context) error { return c.w.Commit() }
func (c *sigCollector) abort()                       { c.w.Abort() }

type histCollector struct {
	h    heuristics.Histogram
	an   heuristics.Analysis
	path string
}

func (c *histCollector) add(it *item) error {
	c.an.Reset()
	c.h.Add(c.an.Of(it.rec.doc.Text))
	return nil
}
func (c *histCollector) commit(context.Context) error {
	b, _ := c.h.MarshalBinary()
	return atomicfile.WriteFile(c.path, b, 0o644)
}
func (c *histCollector) abort() {}

func (r *runner) spill() dedup.SpillConfig {
	return dedup.SpillConfig{TempDir: r.rankDir(r.opt.Rank), MemoryBytes: int64(r.cfg.MinHash.MemoryMB) << 20}
}

func (r *runner) keyFile(p, u int) string { return r.unitFile(p, u, "keys") + ".rec" }

func (r *runner) newCollector(p *pass, u int) (collector, error) {
	switch p.collect {
	case StageURLDedup, StageExactDedup:
		return &keyCollector{w: dedup.NewKeyWriter(r.keyFile(p.index, u), r.spill()), stage: p.collect}, nil
	case StageMinHash:
		w, err := dedup.NewSignatureWriter(r.keyFile(p.index, u), r.env.mhCfg)
		if err != nil {
			return nil, fmt.Errorf("minhash: %w", err)
		}
		return &sigCollector{w: w}, nil
	case StageTokenKL:
		return &histCollector{h: r.cfg.Filters.TokenKL.NewHistogram(), path: r.keyFile(p.index, u)}, nil
	case StageLineDedup:
		c, err := newLineCollector(r.lineFile(p.index, u))
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return noCollector{}, nil
}

// prepareKey computes, in parallel, what the collector needs.
func (r *runner) prepareKey(stage string, it *item, s *scratch) {
	d := &it.rec.doc
	switch stage {
	case StageURLDedup:
		if d.URL == "" {
			return
		}
		norm, err := dedup.NormalizeURL(d.URL, r.env.urlCfg)
		if err != nil {
			return // unparsable URLs are not deduplicated by URL
		}
		it.key, it.hasKey = dedup.URLKey(norm), true
	case StageExactDedup:
		it.key, it.hasKey = s.exact.Key(d.Text), true
	case StageMinHash:
		s.sig, _ = s.mh.Signature(d.Text, s.sig)
		it.sig = append(it.sig[:0], s.sig...)
	case StageLineDedup:
		it.lines, s.line = dedup.AppendLineHashes(it.lines[:0], d.Text, s.line)
	}
}

func (r *runner) decisionFile(p int) string { return filepath.Join(r.passDir(p), "decision") }

// unitDecisionFile holds the removals of one unit (a dedup decision split
// by unit, so each unit streams its own).
func (r *runner) unitDecisionFile(p, u int) string {
	return filepath.Join(r.passDir(p), fmt.Sprintf("decision-%05d.rec", u))
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// decide merges the keys of pass p into its decision. Rank 0 merges dedup
// keys; MinHash bands and line dedup buckets are split across ranks. The
// decision file is written last: it marks the decision complete.
func (r *runner) decide(ctx context.Context, p *pass) error {
	out := r.decisionFile(p.index)
	if _, err := os.Stat(out); err == nil {
		return nil
	}
	var inputs []string
	for _, u := range r.units {
		inputs = append(inputs, r.keyFile(p.index, u.Index))
	}
	switch p.collect {
	case StageMinHash:
		if err := r.minhashEdges(ctx, p, inputs); err != nil {
			return err
		}
	case StageLineDedup:
		if err := r.decideLines(ctx, p); err != nil {
			return err
		}
	}
	if r.opt.Rank != 0 {
		return r.waitFile(ctx, fmt.Sprintf("the %s decision of pass %d", p.collect, p.index+1), out)
	}
	all := out + ".all"
	switch p.collect {
	case StageURLDedup, StageExactDedup:
		ms, err := dedup.MergeKeyFiles(ctx, all, inputs, r.spill())
		if err != nil {
			return err
		}
		r.log.Info("dedup decision", "stage", p.collect, "records", ms.Records, "removed", ms.Removed)
	case StageMinHash:
		var edges []string
		for b := range r.cfg.MinHash.Bands {
			edges = append(edges, r.edgeFile(p.index, b))
		}
		cs, err := dedup.ClusterEdges(ctx, edges, all)
		if err != nil {
			return err
		}
		r.log.Info("minhash decision", "clusters", cs.Clusters, "removed", cs.Removed)
	case StageTokenKL:
		total := r.cfg.Filters.TokenKL.NewHistogram()
		for _, in := range inputs {
			b, err := os.ReadFile(in)
			if err != nil {
				return err
			}
			h, err := heuristics.UnmarshalHistogram(b, r.cfg.Filters.TokenKL.Buckets)
			if err != nil {
				return fmt.Errorf("%s: %w", in, err)
			}
			total.Merge(h)
		}
		b, _ := total.MarshalBinary()
		return atomicfile.WriteFile(out, b, 0o644)
	case StageLineDedup:
		return atomicfile.WriteFile(out, []byte("line dedup buckets written\n"), 0o644)
	}
	if err := r.splitDecision(ctx, p, all); err != nil {
		return err
	}
	os.Remove(all)
	return atomicfile.WriteFile(out, []byte("removals split by unit\n"), 0o644)
}

// splitDecision writes the removals of each unit to its own file.
func (r *runner) splitDecision(ctx context.Context, p *pass, all string) error {
	rr, err := dedup.OpenRemovals(all)
	if err != nil {
		return err
	}
	defer rr.Close()
	next, err := rr.Next()
	if errors.Is(err, io.EOF) {
		next.ID = ^uint64(0)
	} else if err != nil {
		return err
	}
	for _, u := range r.units {
		if err := ctx.Err(); err != nil {
			return err
		}
		w := dedup.NewRemovalWriter(r.unitDecisionFile(p.index, u.Index), r.spill())
		for next.ID != ^uint64(0) && int(next.ID>>32) == u.Index {
			if err := w.Add(next); err != nil {
				w.Abort()
				return err
			}
			if next, err = rr.Next(); errors.Is(err, io.EOF) {
				next.ID = ^uint64(0)
			} else if err != nil {
				w.Abort()
				return err
			}
		}
		if next.ID != ^uint64(0) && int(next.ID>>32) < u.Index {
			w.Abort()
			return fmt.Errorf("%s: removal of ordinal %d names no input unit", all, next.ID)
		}
		if err := w.Commit(ctx); err != nil {
			return err
		}
	}
	if next.ID != ^uint64(0) {
		return fmt.Errorf("%s: removal of ordinal %d names no input unit", all, next.ID)
	}
	return nil
}

func (r *runner) edgeFile(p, band int) string {
	return filepath.Join(r.passDir(p), fmt.Sprintf("edges-band%02d.rec", band))
}

// minhashEdges builds the band buckets and edges of this rank's bands.
func (r *runner) minhashEdges(ctx context.Context, p *pass, sigs []string) error {
	var bands []int
	for b := range r.cfg.MinHash.Bands {
		if b%r.opt.World == r.opt.Rank {
			if _, err := os.Stat(r.edgeFile(p.index, b)); err != nil {
				bands = append(bands, b)
			}
		}
	}
	if len(bands) > 0 {
		bandDir := filepath.Join(r.passDir(p.index), "bands")
		if err := os.MkdirAll(bandDir, 0o755); err != nil {
			return err
		}
		if err := dedup.WriteBands(ctx, sigs, bandDir, bands, r.spill()); err != nil {
			return err
		}
		idx, err := dedup.OpenSignatureIndex(sigs)
		if err != nil {
			return err
		}
		defer idx.Close()
		// One band at a time: the signature index is shared.
		pl := pool.New().WithErrors().WithContext(ctx).WithMaxGoroutines(1)
		for _, b := range bands {
			pl.Go(func(ctx context.Context) error {
				_, err := dedup.FindEdges(ctx, dedup.BandFileName(bandDir, b), idx, r.edgeFile(p.index, b), r.env.mhCfg)
				if err == nil {
					os.Remove(dedup.BandFileName(bandDir, b))
				}
				return err
			})
		}
		if err := pl.Wait(); err != nil {
			return err
		}
	}
	// Barrier: every band's edges.
	edges := make([]string, r.cfg.MinHash.Bands)
	for b := range edges {
		edges[b] = r.edgeFile(p.index, b)
	}
	return r.waitFor(ctx, fmt.Sprintf("the minhash edges of pass %d", p.index+1), len(edges), func(b int) bool { return fileExists(edges[b]) }, func(b int) (string, int) {
		return "band " + strconv.Itoa(b), b % r.opt.World
	})
}

// waitFile waits for a file that rank 0 writes (a decision).
func (r *runner) waitFile(ctx context.Context, what, path string) error {
	return r.waitFor(ctx, what, 1, func(int) bool { return fileExists(path) }, func(int) (string, int) { return filepath.Base(path), 0 })
}

// loadDecision loads what the next pass needs of the decision of a global
// stage collected in pass p (dedup removals are streamed per unit instead).
func (r *runner) loadDecision(stage string, p int) error {
	out := r.decisionFile(p)
	switch stage {
	case StageTokenKL:
		b, err := os.ReadFile(out)
		if err != nil {
			return fmt.Errorf("token_kl decision: %w", err)
		}
		h, err := heuristics.UnmarshalHistogram(b, r.cfg.Filters.TokenKL.Buckets)
		if err != nil {
			return fmt.Errorf("%s: %w", out, err)
		}
		r.env.klCorpus = h
	case StageLineDedup:
		lb, err := r.loadLineBuckets(p)
		if err != nil {
			return err
		}
		r.env.lines = lb
	}
	return nil
}

// writeRemovedParquet merges the removed documents of every pass of a unit
// into removed/removed-NNNNN.parquet, in ordinal order.
func (r *runner) writeRemovedParquet(unit int) error {
	var readers []*docReader
	defer func() {
		for _, rd := range readers {
			rd.close()
		}
	}()
	for i := range r.passes {
		rd, err := openDocfile(r.unitFile(i, unit, "removed"))
		if err != nil {
			return err
		}
		readers = append(readers, rd)
	}
	heads := make([]*docRec, len(readers))
	advance := func(i int) error {
		rec := &docRec{}
		err := readers[i].next(rec)
		if errors.Is(err, io.EOF) {
			heads[i] = nil
			return nil
		}
		heads[i] = rec
		return err
	}
	for i := range readers {
		if err := advance(i); err != nil {
			return err
		}
	}
	w, err := shard.Create[shard.Removed](r.removedPath(unit), r.cfg.Output.RowGroupDocs, "herd.recipe", r.hash)
	if err != nil {
		return err
	}
	defer w.Abort()
	for {
		best := -1
		for i, h := range heads {
			if h != nil && (best < 0 || h.doc.Ordinal < heads[best].doc.Ordinal) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		h := heads[best]
		if err := w.Write(shard.RemovedFromDoc(&h.doc, h.reason, h.detail)); err != nil {
			return err
		}
		if err := advance(best); err != nil {
			return err
		}
	}
	return w.Commit()
}
