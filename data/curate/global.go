package curate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/herdml/herd/data/dedup"
	"github.com/herdml/herd/internal/atomicfile"
)

// A global stage needs the whole corpus before it decides, so it ends a
// pass (datatrove's step classes are the model; each stage is one type in
// its own file):
//
//  1. key: every document reaching the stage yields what the stage
//     collects (a URL or text hash, a MinHash signature, line hashes, a
//     word histogram), computed in parallel;
//  2. collector: each unit writes those keys to its own file;
//  3. decide: once every unit of every rank is done, the keys of all
//     units become the stage's decision (rank 0 merges; MinHash bands and
//     line buckets are split across ranks first);
//  4. load: the next pass loads the decision and applies it, either as a
//     list of removals streamed per unit (a remover: the dedup stages) or
//     as a per-document step run before the pass's local stages (a
//     docStep: token_kl, line_dedup).
type globalStage interface {
	// name is the stage's name in recipes.
	name() string
	// key fills in what the collector records of a kept document. It runs
	// on many goroutines, each with its own scratch.
	key(it *item, s *scratch)
	// collector starts the key file of unit u in pass p.
	collector(r *runner, p, u int) (collector, error)
	// decide turns the keys of every unit of pass p into the decision;
	// every rank calls it, and it returns once the decision file
	// (r.decisionFile(p)) exists.
	decide(ctx context.Context, r *runner, p int) error
	// load readies the decision of pass p for the pass after it.
	load(r *runner, p int) error
}

// remover is a global stage whose decision is a list of documents to
// remove (each with the ordinal of the document kept in its place).
type remover interface {
	globalStage
	// rule names the removals in the funnel and in removed/.
	rule() string
}

// docStep is a global stage applied document by document in the next
// pass, before that pass's local stages.
type docStep interface {
	globalStage
	// step is the per-document function (see localFunc).
	step() localFunc
	// prepare readies the decision for a chunk of documents before step
	// runs on them in parallel.
	prepare(items []*item) error
}

// newGlobal returns the global stage of this name, or nil for a
// per-document stage; e holds the run's settings and resources (nil
// only to ask whether the stage is global).
func newGlobal(name string, e *env) globalStage {
	switch name {
	case StageURLDedup:
		return &urlDedup{e: e}
	case StageExactDedup:
		return &exactDedup{e: e}
	case StageLineDedup:
		return &lineDedup{e: e}
	case StageMinHash:
		return &minhashStage{e: e}
	case StageTokenKL:
		return &tokenKL{e: e}
	}
	return nil
}

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

func (r *runner) spill() dedup.SpillConfig {
	return dedup.SpillConfig{TempDir: r.rankDir(r.opt.Rank), MemoryBytes: int64(r.cfg.MinHash.MemoryMB) << 20}
}

func (r *runner) keyFile(p, u int) string { return r.unitFile(p, u, "keys") + ".rec" }

// keyFiles lists the key files of every unit in pass p.
func (r *runner) keyFiles(p int) []string {
	var files []string
	for _, u := range r.units {
		files = append(files, r.keyFile(p, u.Index))
	}
	return files
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

// decide makes the decision of the global stage that ends pass p, unless
// an earlier run made it.
func (r *runner) decide(ctx context.Context, p *pass) error {
	if fileExists(r.decisionFile(p.index)) {
		return nil
	}
	return p.collect.decide(ctx, r, p.index)
}

// onRank0 runs merge on rank 0, which must write the decision file of pass
// p last (it marks the decision complete); the other ranks wait for it.
func (r *runner) onRank0(ctx context.Context, stage string, p int, merge func() error) error {
	if r.opt.Rank != 0 {
		return r.waitFile(ctx, fmt.Sprintf("the %s decision of pass %d", stage, p+1), r.decisionFile(p))
	}
	return merge()
}

// publishRemovals splits the removals of all units (file all) by unit and
// writes the decision file.
func (r *runner) publishRemovals(ctx context.Context, p int, all string) error {
	if err := r.splitDecision(ctx, p, all); err != nil {
		return err
	}
	if err := os.Remove(all); err != nil {
		return fmt.Errorf("dedup decision: %w", err)
	}
	return atomicfile.WriteFile(r.decisionFile(p), []byte("removals split by unit\n"), 0o644)
}

// splitDecision writes the removals of each unit to its own file.
func (r *runner) splitDecision(ctx context.Context, p int, all string) error {
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
		w := dedup.NewRemovalWriter(r.unitDecisionFile(p, u.Index), r.spill())
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

// waitFile waits for a file that rank 0 writes (a decision).
func (r *runner) waitFile(ctx context.Context, what, path string) error {
	return r.waitFor(ctx, what, 1, func(int) bool { return fileExists(path) }, func(int) (string, int) { return filepath.Base(path), 0 })
}

// keyCollector writes the dedup keys of one unit (URL and exact dedup).
type keyCollector struct {
	w *dedup.KeyWriter
	// order ranks documents with the same key: the lowest is kept (0 for
	// all: the first in input order).
	order func(it *item) uint64
}

func (c *keyCollector) add(it *item) error {
	if !it.hasKey {
		return nil
	}
	order := uint64(0)
	if c.order != nil {
		order = c.order(it)
	}
	return c.w.Add(dedup.KeyRecord{Key: it.key, Order: order, ID: it.rec.doc.Ordinal})
}
func (c *keyCollector) commit(ctx context.Context) error { return c.w.Commit(ctx) }
func (c *keyCollector) abort()                           { c.w.Abort() }

// decideByKeys is the decision of a key dedup stage: rank 0 merges the
// sorted key files of every unit into removals and splits them by unit.
func (r *runner) decideByKeys(ctx context.Context, stage string, p int) error {
	return r.onRank0(ctx, stage, p, func() error {
		all := r.decisionFile(p) + ".all"
		ms, err := dedup.MergeKeyFiles(ctx, all, r.keyFiles(p), r.spill())
		if err != nil {
			return err
		}
		r.log.Info("dedup decision", "stage", stage, "records", ms.Records, "removed", ms.Removed)
		return r.publishRemovals(ctx, p, all)
	})
}
