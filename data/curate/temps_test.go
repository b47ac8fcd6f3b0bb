package curate

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLeftoversRemoved plants what interrupted writes leave (temporary
// files and directories of atomic writes, sort spills) in every directory
// a curation writes, then reruns it: the leftovers are gone, files a user
// put there are not, and the outputs are complete.
func TestLeftoversRemoved(t *testing.T) {
	for _, world := range []int{1, 2} {
		t.Run(map[int]string{1: "one rank", 2: "two ranks"}[world], func(t *testing.T) {
			in := t.TempDir()
			writeDistinctFiles(t, in, "a", 0, 4)
			cfg := Default()
			cfg.Input.Paths = []string{in}
			cfg.Input.FilesPerUnit = 1
			cfg.Output.Dir = t.TempDir()
			cfg.Output.KeepWork = true
			cfg.Stages = []string{StageNormalize, StageExactDedup, StageMinHash}
			cfg.MinHash.Bands, cfg.MinHash.Rows = 4, 2
			run := func() {
				t.Helper()
				var wg sync.WaitGroup
				errs := make([]error, world)
				for rank := range world {
					wg.Go(func() {
						_, errs[rank] = Run(t.Context(), cfg, Options{Rank: rank, World: world, Poll: 5 * time.Millisecond, Logger: quietLogger()})
					})
				}
				wg.Wait()
				for rank, err := range errs {
					if err != nil {
						t.Fatalf("rank %d: %v", rank, err)
					}
				}
			}
			run()
			plans, _ := filepath.Glob(filepath.Join(cfg.Output.Dir, "work", "plan-*"))
			if len(plans) != 1 {
				t.Fatalf("plan directories %v", plans)
			}
			plan, _ := filepath.Rel(cfg.Output.Dir, plans[0])
			leftovers := []string{
				".docs-00001.parquet.tmp-123",
				".stats.json.tmp-77",
				".recipe.yaml.tmp-5/",
				"removed/.removed-00002.parquet.tmp-9",
				"work/pass0/.docs-00003.tmp-1",
				"work/pass0/.keys-00000.rec.tmp-2",
				"work/pass0/.stats-00001.json.tmp-3",
				"work/final/.unit-00003.json.tmp-4",
				plan + "/pass0/.decision-00002.rec.tmp-5",
				plan + "/pass0/.decision.all.tmp-6",
				plan + "/pass1/.edges-band03.rec.tmp-7",
				plan + "/pass1/bands/.band-001.bin.tmp-8",
				plan + "/pass1/.keys-00001.rec.tmp-8",
				"work/rank-0/herd-dedup-run-4242",
				"work/rank-0/.herd-dedup-run-4242.tmp-1",
				"work/herd-dedup-run-17",
				"work/rank-0/.junk.tmp-1",
			}
			if world == 2 {
				leftovers = append(leftovers, "work/rank-1/herd-dedup-run-99", "work/rank-1/.herd-dedup-run-99.tmp-3")
			}
			user := []string{"notes.txt", "removed/mine.parquet", "work/pass0/my-file.tmp-1", "work/rank-0/readme"}
			for _, f := range append(append([]string{}, leftovers...), user...) {
				p := filepath.Join(cfg.Output.Dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if strings.HasSuffix(f, "/") {
					if err := os.MkdirAll(filepath.Join(p, "inner"), 0o755); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run()
			for _, f := range leftovers {
				if _, err := os.Stat(filepath.Join(cfg.Output.Dir, f)); err == nil {
					t.Errorf("leftover %s is still there", f)
				}
			}
			for _, f := range user {
				if _, err := os.Stat(filepath.Join(cfg.Output.Dir, f)); err != nil {
					t.Errorf("user file %s: %v", f, err)
				}
			}
			kept, removed := readOutputs(t, cfg.Output.Dir)
			if len(kept)+len(removed) != 4 {
				t.Errorf("outputs hold %d kept + %d removed documents, want 4", len(kept), len(removed))
			}
		})
	}
}

// TestTempOwner: with several ranks, a rank removes only leftovers of
// files it writes itself, never a live temporary of another rank.
func TestTempOwner(t *testing.T) {
	cases := []struct {
		name  string
		world int
		owner int
	}{
		{".docs-00005.parquet.tmp-1", 2, 1},
		{".removed-00004.parquet.tmp-1", 2, 0},
		{".unit-00007.json.tmp-9", 3, 1},
		{".docs-00003.tmp-1", 4, 3},
		{".stats-00003.json.tmp-1", 4, 3},
		{".keys-00006.rec.tmp-1", 4, 2},
		{".lines-00002.tmp-1", 4, 2},
		{".decision-00003.rec.tmp-1", 4, 0},
		{".decision.all.tmp-1", 4, 0},
		{".edges-band05.rec.tmp-1", 4, 1},
		{".band-013.bin.tmp-1", 4, 1},
		{".linebucket-000006.tmp-1", 4, 2},
		{".stats.json.tmp-1", 4, 0},
		{".recipe.yaml.tmp-1", 4, 0},
		{".docs-00005.parquet.old-1", 2, 1},
	}
	for _, c := range cases {
		if got := tempOwner(c.name, c.world); got != c.owner {
			t.Errorf("%s in a world of %d: owner %d, want %d", c.name, c.world, got, c.owner)
		}
	}
}
