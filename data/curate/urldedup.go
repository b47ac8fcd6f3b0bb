package curate

import (
	"context"

	"github.com/herdml/herd/data/dedup"
)

// urlDedup keeps the most recent document of each normalized URL
// (url_dedup.strip_www); documents without a parsable URL pass.
type urlDedup struct{ e *env }

func (*urlDedup) name() string { return StageURLDedup }
func (*urlDedup) rule() string { return "older_version" }

func (g *urlDedup) key(it *item, _ *scratch) {
	d := &it.rec.doc
	if d.URL == "" {
		return
	}
	norm, err := dedup.NormalizeURL(d.URL, g.e.urlCfg)
	if err != nil {
		return // unparsable URLs are not deduplicated by URL
	}
	it.key, it.hasKey = dedup.URLKey(norm), true
}

func (*urlDedup) collector(r *runner, p, u int) (collector, error) {
	return &keyCollector{w: dedup.NewKeyWriter(r.keyFile(p, u), r.spill()), order: recency}, nil
}

// recency orders the documents of one URL newest first (undated ones last).
func recency(it *item) uint64 {
	ts := int64(0)
	if t, ok := it.rec.doc.Time(); ok {
		ts = t.Unix()
	}
	return dedup.RecencyOrder(ts)
}

func (g *urlDedup) decide(ctx context.Context, r *runner, p int) error {
	return r.decideByKeys(ctx, g.name(), p)
}

func (*urlDedup) load(*runner, int) error { return nil }
