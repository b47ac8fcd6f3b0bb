package curate

import (
	"context"
	"fmt"
	"os"

	"github.com/herdml/herd/data/document"
	"github.com/herdml/herd/data/heuristics"
	"github.com/herdml/herd/internal/atomicfile"
)

// tokenKL removes documents whose word distribution is far from the
// corpus's (filters.token_kl): each unit writes the hashed word histogram
// of its documents, rank 0 adds them up, and the next pass scores every
// document against the total.
type tokenKL struct {
	e      *env
	corpus heuristics.Histogram // the decision, once loaded
}

func (*tokenKL) name() string          { return StageTokenKL }
func (*tokenKL) key(*item, *scratch)   {} // the collector analyses the text itself
func (*tokenKL) prepare([]*item) error { return nil }

// histCollector adds up the word histogram of one unit.
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
	b, err := c.h.MarshalBinary()
	if err != nil {
		return fmt.Errorf("token_kl: %w", err)
	}
	return atomicfile.WriteFile(c.path, b, 0o644)
}

func (c *histCollector) abort() {}

func (g *tokenKL) collector(r *runner, p, u int) (collector, error) {
	return &histCollector{h: g.e.cfg.Filters.TokenKL.NewHistogram(), path: r.keyFile(p, u)}, nil
}

func (g *tokenKL) decide(ctx context.Context, r *runner, p int) error {
	return r.onRank0(ctx, g.name(), p, func() error {
		cfg := g.e.cfg.Filters.TokenKL
		total := cfg.NewHistogram()
		for _, in := range r.keyFiles(p) {
			b, err := os.ReadFile(in)
			if err != nil {
				return fmt.Errorf("token_kl decision: %w", err)
			}
			h, err := heuristics.UnmarshalHistogram(b, cfg.Buckets)
			if err != nil {
				return fmt.Errorf("%s: %w", in, err)
			}
			total.Merge(h)
		}
		b, err := total.MarshalBinary()
		if err != nil {
			return fmt.Errorf("token_kl decision: %w", err)
		}
		return atomicfile.WriteFile(r.decisionFile(p), b, 0o644)
	})
}

func (g *tokenKL) load(r *runner, p int) error {
	out := r.decisionFile(p)
	b, err := os.ReadFile(out)
	if err != nil {
		return fmt.Errorf("token_kl decision: %w", err)
	}
	h, err := heuristics.UnmarshalHistogram(b, g.e.cfg.Filters.TokenKL.Buckets)
	if err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	g.corpus = h
	return nil
}

func (g *tokenKL) step() localFunc {
	cfg := g.e.cfg.Filters.TokenKL
	return func(d *document.Doc, s *scratch) verdict {
		if s.kl == nil {
			s.kl = cfg.NewScorer(g.corpus)
		}
		return found("filters.token_kl.", s.kl.Find(s.an.Of(d.Text)))
	}
}
