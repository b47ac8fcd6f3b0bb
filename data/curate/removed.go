package curate

import (
	"errors"
	"io"

	"github.com/herdml/herd/data/shard"
)

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
