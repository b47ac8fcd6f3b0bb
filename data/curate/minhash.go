package curate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sourcegraph/conc/pool"

	"github.com/herdml/herd/data/dedup"
)

// minhashStage removes near duplicates: each unit writes the MinHash
// signatures of its documents; the bands are bucketed and turned into
// candidate edges across ranks (band b on rank b mod world), verified by
// estimated Jaccard (minhash.threshold); rank 0 clusters the edges and
// keeps one document per cluster.
type minhashStage struct{ e *env }

func (*minhashStage) name() string { return StageMinHash }
func (*minhashStage) rule() string { return "near_duplicate" }

func (*minhashStage) key(it *item, s *scratch) {
	s.sig, _ = s.mh.Signature(it.rec.doc.Text, s.sig)
	it.sig = append(it.sig[:0], s.sig...)
}

// sigCollector writes the signatures of one unit.
type sigCollector struct{ w *dedup.SignatureWriter }

func (c *sigCollector) add(it *item) error           { return c.w.Add(it.rec.doc.Ordinal, it.sig) }
func (c *sigCollector) commit(context.Context) error { return c.w.Commit() }
func (c *sigCollector) abort()                       { c.w.Abort() }

func (g *minhashStage) collector(r *runner, p, u int) (collector, error) {
	w, err := dedup.NewSignatureWriter(r.keyFile(p, u), g.e.mhCfg)
	if err != nil {
		return nil, fmt.Errorf("minhash: %w", err)
	}
	return &sigCollector{w: w}, nil
}

func (g *minhashStage) decide(ctx context.Context, r *runner, p int) error {
	if err := g.edges(ctx, r, p, r.keyFiles(p)); err != nil {
		return err
	}
	return r.onRank0(ctx, g.name(), p, func() error {
		all := r.decisionFile(p) + ".all"
		var edges []string
		for b := range r.cfg.MinHash.Bands {
			edges = append(edges, g.edgeFile(r, p, b))
		}
		cs, err := dedup.ClusterEdges(ctx, edges, all)
		if err != nil {
			return err
		}
		r.log.Info("minhash decision", "clusters", cs.Clusters, "removed", cs.Removed)
		return r.publishRemovals(ctx, p, all)
	})
}

func (*minhashStage) load(*runner, int) error { return nil }

func (*minhashStage) edgeFile(r *runner, p, band int) string {
	return filepath.Join(r.passDir(p), fmt.Sprintf("edges-band%02d.rec", band))
}

// edges builds the band buckets and edges of this rank's bands, then
// waits for every band's edges.
func (g *minhashStage) edges(ctx context.Context, r *runner, p int, sigs []string) error {
	var bands []int
	for b := range r.cfg.MinHash.Bands {
		if b%r.opt.World == r.opt.Rank {
			if _, err := os.Stat(g.edgeFile(r, p, b)); err != nil {
				bands = append(bands, b)
			}
		}
	}
	if len(bands) > 0 {
		bandDir := filepath.Join(r.passDir(p), "bands")
		if err := os.MkdirAll(bandDir, 0o755); err != nil {
			return fmt.Errorf("minhash: %w", err)
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
				_, err := dedup.FindEdges(ctx, dedup.BandFileName(bandDir, b), idx, g.edgeFile(r, p, b), g.e.mhCfg)
				if err == nil {
					os.Remove(dedup.BandFileName(bandDir, b)) // scratch: the edges are written
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
		edges[b] = g.edgeFile(r, p, b)
	}
	return r.waitFor(ctx, fmt.Sprintf("the minhash edges of pass %d", p+1), len(edges), func(b int) bool { return fileExists(edges[b]) }, func(b int) (string, int) {
		return "band " + strconv.Itoa(b), b % r.opt.World
	})
}
