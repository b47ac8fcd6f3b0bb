package curate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/pqcheck"
)

// Resuming. Every finished unit of a pass has a marker file that records
// the key of what it was computed from; a rerun reuses the unit only when
// the key is the current one, and redoes it otherwise.
//
//   - The first pass of a unit depends on the recipe and the unit's own
//     input files: its key hashes the resolved recipe, the files the recipe
//     names (block lists, word lists, models), the HTML extractor, and the
//     unit's number, kind and files (path, size, modification time).
//   - Everything after the first global decision depends on every unit:
//     the plan key hashes all unit keys, and those files live under
//     work/plan-KEY/, so the work of other inputs is never seen.
//
// Files are compared by size and modification time (as make and rsync
// do), not by content: a file rewritten with the same size and time keeps
// its old results.

// fingerprintFile adds a file's path, size and modification time to h.
func fingerprintFile(h hash.Hash, path string) {
	st, err := os.Stat(path)
	if err != nil {
		fmt.Fprintf(h, "%s\x00missing\x00", path)
		return
	}
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00", path, st.Size(), st.ModTime().UnixNano())
}

// computeKeys sets the unit keys and the plan key.
func (r *runner) computeKeys(resolved []byte) {
	base := sha256.New()
	base.Write(resolved)
	fmt.Fprintf(base, "\x00html extractor %T\x00", r.opt.HTML)
	var named []string
	named = append(named, r.cfg.URLFilter.BlockLists...)
	for _, lang := range sortedKeys(r.cfg.DirtyWords.Lists) {
		named = append(named, r.cfg.DirtyWords.Lists[lang])
	}
	named = append(named, r.cfg.Quality.Model, r.cfg.Domain.Model)
	for _, f := range named {
		if f != "" {
			fingerprintFile(base, f)
		}
	}
	run := base.Sum(nil)
	plan := sha256.New()
	plan.Write(run)
	r.unitKeys = make([]string, len(r.units))
	for i, u := range r.units {
		h := sha256.New()
		h.Write(run)
		fmt.Fprintf(h, "unit %d %s %d\x00", u.Index, u.Kind, len(u.Files))
		for _, f := range u.Files {
			fingerprintFile(h, f)
		}
		r.unitKeys[i] = hex.EncodeToString(h.Sum(nil)[:16])
		plan.Write([]byte(r.unitKeys[i]))
	}
	r.planKey = hex.EncodeToString(plan.Sum(nil)[:8])
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// passKey is the key a finished unit of pass p records.
func (r *runner) passKey(p int, u int) string {
	if p == 0 {
		return r.unitKeys[u]
	}
	return r.planKey
}

// unitMarker is the content of a unit's marker: its funnel and its key.
type unitMarker struct {
	Key string `json:"key"`
	*Stats
}

func (s *Stats) writeMarker(path, key string) error {
	b, err := json.Marshal(unitMarker{Key: key, Stats: s})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

// markerKey returns the key recorded in a marker ("" when there is none).
func markerKey(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var m struct {
		Key string `json:"key"`
	}
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	return m.Key
}

// unitDone reports whether unit u has finished pass p for the current
// inputs and recipe (and, for the last pass, its shards are there).
func (r *runner) unitDone(p, u int) bool {
	if markerKey(r.passDone(p, u)) != r.passKey(p, u) {
		return false
	}
	return p < len(r.passes)-1 || fileExists(r.docsPath(u)) && fileExists(r.removedPath(u))
}

// allFinished reports whether every unit's final outputs are current: a
// rerun of a finished curation then only merges the funnels.
func (r *runner) allFinished() bool {
	for _, u := range r.units {
		if !r.unitDone(len(r.passes)-1, u.Index) {
			return false
		}
	}
	return true
}

// shardNumber parses the unit number of a shard name herd writes
// (prefix + at least five digits + ".parquet").
func shardNumber(name, prefix string) (int, bool) {
	digits, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, ".parquet")
	if !ok || len(digits) < 5 || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil
}

// removeStale deletes the shards an earlier run of this output wrote for
// units this run does not have (its inputs had more units), and the
// earlier stats.json, so the directory never shows an older run's
// documents beside the new ones. Only files herd wrote are removed: names
// of herd's pattern whose Parquet footer carries this recipe's hash, in an
// output directory that held this recipe before the run. Rank 0 calls it
// under the output lock.
func (r *runner) removeStale() error {
	// The final markers of those units first: a marker never outlives
	// its shards.
	markers, err := os.ReadDir(r.finalDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("output: %w", err)
	}
	for _, e := range markers {
		digits, ok := strings.CutPrefix(e.Name(), "unit-")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSuffix(digits, ".json")); err == nil && n >= len(r.units) {
			if err := os.Remove(filepath.Join(r.finalDir(), e.Name())); err != nil {
				return fmt.Errorf("remove a marker of an earlier run: %w", err)
			}
		}
	}
	for _, d := range []struct{ dir, prefix string }{{r.out, "docs-"}, {filepath.Join(r.out, "removed"), "removed-"}} {
		entries, err := os.ReadDir(d.dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("output: %w", err)
		}
		for _, e := range entries {
			n, ok := shardNumber(e.Name(), d.prefix)
			if !ok || n < len(r.units) || !e.Type().IsRegular() {
				continue
			}
			path := filepath.Join(d.dir, e.Name())
			if !r.wroteShard(path) {
				r.log.Warn("a file named like a shard of this curation was not written by it; leaving it", "file", path)
				continue
			}
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("remove a shard of an earlier run: %w", err)
			}
			r.log.Info("removed a shard of an earlier run (its input unit no longer exists)", "file", path)
		}
	}
	stats := filepath.Join(r.out, "stats.json")
	if b, err := os.ReadFile(stats); err == nil {
		var s struct {
			Recipe string `json:"recipe"`
		}
		if json.Unmarshal(b, &s) == nil && s.Recipe == r.hash {
			if err := os.Remove(stats); err != nil {
				return fmt.Errorf("remove the stats of an earlier run: %w", err)
			}
		}
	}
	return nil
}

// wroteShard reports whether path is a Parquet file written by a
// curation of this recipe (its footer records the recipe hash).
func (r *runner) wroteShard(path string) (ok bool) {
	var err error
	defer pqcheck.Recover(path, &err)
	defer func() {
		if err != nil {
			ok = false
		}
	}()
	pf, f, err := pqcheck.Open(path, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return false
	}
	defer f.Close()
	v, found := pf.Lookup("herd.recipe")
	return found && v == r.hash
}
