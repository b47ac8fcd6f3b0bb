package curate

import (
	"context"

	"github.com/herdml/herd/data/dedup"
)

// exactDedup keeps the first document of each normalized text
// (exact_dedup.keep_case, keep_whitespace).
type exactDedup struct{ e *env }

func (*exactDedup) name() string { return StageExactDedup }
func (*exactDedup) rule() string { return "exact_duplicate" }

func (*exactDedup) key(it *item, s *scratch) {
	it.key, it.hasKey = s.exact.Key(it.rec.doc.Text), true
}

func (*exactDedup) collector(r *runner, p, u int) (collector, error) {
	return &keyCollector{w: dedup.NewKeyWriter(r.keyFile(p, u), r.spill())}, nil
}

func (g *exactDedup) decide(ctx context.Context, r *runner, p int) error {
	return r.decideByKeys(ctx, g.name(), p)
}

func (*exactDedup) load(*runner, int) error { return nil }
