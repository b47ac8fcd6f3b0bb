package curate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/herdml/herd/internal/atomicfile"
)

// Interrupted writes leave temporary files behind: atomic writes leave
// ".NAME.tmp-*" beside their destination, sort spills "herd-dedup-run-*"
// in the rank's own directory. removeTemps deletes them at the start of the
// next run of the same output, under the lock. A single rank (world 1)
// owns every directory and removes every leftover there; with several ranks
// sharing the output, a rank removes only the leftovers of files it writes
// itself (tempOwner), so it never deletes a live temporary of another rank.

// spillPrefix starts the names of the dedup package's sort spills.
const spillPrefix = "herd-dedup-run-"

// removeTemps deletes this rank's leftovers of interrupted writes.
func (r *runner) removeTemps() error {
	dirs := []string{r.out, filepath.Join(r.out, "removed"), r.work, r.unitDir(0), r.finalDir()}
	plans, err := filepath.Glob(filepath.Join(r.work, "plan-*"))
	if err != nil {
		return err
	}
	for _, plan := range plans {
		dirs = append(dirs, plan)
		passes, _ := filepath.Glob(filepath.Join(plan, "pass*"))
		for _, p := range passes {
			dirs = append(dirs, p, filepath.Join(p, "bands"))
		}
	}
	dirs = append(dirs, r.rankDir(r.opt.Rank))
	var removed []string
	for _, dir := range dirs {
		var names []string
		if r.opt.World == 1 || dir == r.rankDir(r.opt.Rank) {
			names, err = atomicfile.RemoveTemps(dir)
		} else {
			names, err = r.removeOwnTemps(dir)
		}
		if err != nil {
			return err
		}
		for _, n := range names {
			removed = append(removed, filepath.Join(dir, n))
		}
	}
	// Sort spills: in the rank's own directory, and (rank 0) in work/,
	// where earlier versions spilled.
	spillDirs := []string{r.rankDir(r.opt.Rank)}
	if r.opt.Rank == 0 {
		spillDirs = append(spillDirs, r.work)
	}
	for _, dir := range spillDirs {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("clean %s: %w", dir, err)
		}
		for _, e := range entries {
			name := e.Name()
			if !strings.HasPrefix(name, spillPrefix) && !strings.HasPrefix(name, "."+spillPrefix) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("clean %s: %w", dir, err)
			}
			removed = append(removed, filepath.Join(dir, name))
		}
	}
	if len(removed) > 0 {
		r.log.Info("removed leftovers of an interrupted run", "files", len(removed), "first", removed[0])
	}
	return nil
}

// removeOwnTemps deletes the leftovers in dir of files this rank writes.
func (r *runner) removeOwnTemps(dir string) ([]string, error) {
	return atomicfile.RemoveTempsFunc(dir, func(name string) bool { return tempOwner(name, r.opt.World) == r.opt.Rank })
}

// tempOwner returns the rank that writes the destination of a temporary
// name (".NAME.tmp-*" or ".NAME.old-*"): per-unit files belong to the
// unit's rank, per-band and per-bucket files to the band's or bucket's
// rank, everything else (recipe, decisions, stats.json) to rank 0.
func tempOwner(temp string, world int) int {
	name := strings.TrimPrefix(temp, ".")
	if i := max(strings.LastIndex(name, ".tmp-"), strings.LastIndex(name, ".old-")); i >= 0 {
		name = name[:i]
	}
	for _, prefix := range []string{"docs-", "removed-", "stats-", "unit-", "keys-", "lines-", "edges-band", "band-", "linebucket-"} {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		end := 0
		for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
			end++
		}
		n, err := strconv.Atoi(rest[:end])
		if err != nil {
			return 0
		}
		return n % world
	}
	return 0
}
