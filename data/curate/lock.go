package curate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/herdml/herd/internal/dirlock"
)

// Ranks of one curation share the output directory, so the locks are per
// rank: rank 0 locks the output directory itself (it alone writes
// recipe.yaml, the dedup decisions and stats.json, and removes what older
// runs left), rank R > 0 locks its own work/rank-R. A second process of the
// same rank is refused with the holder's pid, while the ranks of one run
// never lock each other out. Each rank's work/rank-R is also its private
// scratch space (sort spills).

// rankDir is rank's private directory.
func (r *runner) rankDir(rank int) string {
	return filepath.Join(r.work, "rank-"+strconv.Itoa(rank))
}

// lock takes this rank's lock and checks that no rank outside this world
// size is writing the same output (a run started with a different -world).
// The returned locks are released by the caller.
func (r *runner) lock() ([]*dirlock.Lock, error) {
	dir := r.out
	what := "curation output"
	if r.opt.Rank > 0 {
		dir = r.rankDir(r.opt.Rank)
		what = fmt.Sprintf("rank %d of curation output", r.opt.Rank)
	}
	l, err := dirlock.Acquire(dir, what)
	if err != nil {
		return nil, err
	}
	locks := []*dirlock.Lock{l}
	entries, err := os.ReadDir(r.work)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		l.Release()
		return nil, fmt.Errorf("output: %w", err)
	}
	for _, e := range entries {
		k, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "rank-"))
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "rank-") || err != nil || k < r.opt.World {
			continue
		}
		// Rank k does not exist in this world: whoever holds its lock
		// writes this output with another world size.
		probe, err := dirlock.Acquire(r.rankDir(k), fmt.Sprintf("rank %d of curation output", k))
		if err != nil {
			for _, l := range locks {
				l.Release()
			}
			return nil, fmt.Errorf("%w (this run has -world %d: every rank of a curation must use the same -world)", err, r.opt.World)
		}
		probe.Release()
	}
	if err := os.MkdirAll(r.rankDir(r.opt.Rank), 0o755); err != nil {
		for _, l := range locks {
			l.Release()
		}
		return nil, fmt.Errorf("output: %w", err)
	}
	return locks, nil
}
