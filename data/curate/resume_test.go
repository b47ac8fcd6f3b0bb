package curate

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herdml/herd/data/shard"
)

// writeDistinctFiles writes one text document per file named name-NNN.txt,
// each a different document (nothing is a duplicate of another).
func writeDistinctFiles(t *testing.T, dir, name string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		text := fmt.Sprintf("%s number %d: the mill by the river ground %d sacks of grain in the autumn of year %d.", name, i, i*7, 1900+i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%03d.txt", name, i)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// userShard is a file a user put in the output, named like herd's shards.
const userShard = "docs-00042.parquet"

// outputIDs returns the IDs (input paths) of the kept and removed
// documents in the output shards, and stats.json's kept count.
func outputIDs(t *testing.T, out string) (kept, removed []string, statsKept int64) {
	t.Helper()
	var k []shard.Row
	var r []shard.Removed
	docs, _ := filepath.Glob(filepath.Join(out, "docs-*.parquet"))
	for _, p := range docs {
		if filepath.Base(p) == userShard {
			continue
		}
		rows, err := shard.ReadAll[shard.Row](p)
		if err != nil {
			t.Fatal(err)
		}
		k = append(k, rows...)
	}
	rm, _ := filepath.Glob(filepath.Join(out, "removed", "removed-*.parquet"))
	for _, p := range rm {
		rows, err := shard.ReadAll[shard.Removed](p)
		if err != nil {
			t.Fatal(err)
		}
		r = append(r, rows...)
	}
	for _, row := range k {
		kept = append(kept, row.ID)
	}
	for _, row := range r {
		removed = append(removed, row.ID)
	}
	var sj struct {
		Kept struct{ Docs int64 } `json:"kept"`
	}
	b, err := os.ReadFile(filepath.Join(out, "stats.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sj); err != nil {
		t.Fatal(err)
	}
	slices.Sort(kept)
	slices.Sort(removed)
	return kept, removed, sj.Kept.Docs
}

// inputIDs lists the input files, as the IDs curate gives text documents.
func inputIDs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// TestResumeAfterInputsChange reruns a curation on the same output after
// deleting, adding and rewriting input files: the outputs are exactly
// those of the current inputs (no document of a deleted file, none of the
// new files lost), stats.json agrees, shards herd wrote for units that no
// longer exist are removed, and files herd did not write are left alone.
func TestResumeAfterInputsChange(t *testing.T) {
	for _, stages := range [][]string{{StageNormalize}, {StageNormalize, StageExactDedup}} {
		t.Run(strings.Join(stages, ","), func(t *testing.T) {
			in := t.TempDir()
			writeDistinctFiles(t, in, "a", 0, 8)
			cfg := Default()
			cfg.Input.Paths = []string{in}
			cfg.Input.FilesPerUnit = 1
			cfg.Output.Dir = t.TempDir()
			cfg.Stages = stages
			run := func(what string) {
				t.Helper()
				if _, err := Run(t.Context(), cfg, Options{Logger: quietLogger()}); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				kept, removed, statsKept := outputIDs(t, cfg.Output.Dir)
				if len(removed) != 0 {
					t.Fatalf("%s: removed %v", what, removed)
				}
				if want := inputIDs(t, in); !slices.Equal(kept, want) {
					t.Fatalf("%s: kept %d documents\n%v\nwant the %d inputs\n%v", what, len(kept), kept, len(want), want)
				}
				if statsKept != int64(len(kept)) {
					t.Fatalf("%s: stats.json says kept %d, the shards hold %d", what, statsKept, len(kept))
				}
			}
			run("first run")
			// Files herd did not write, named like its shards or not.
			user := map[string]string{
				userShard:         "not a parquet file",
				"notes.txt":       "my notes",
				"removed/keep.me": "mine",
			}
			for name, text := range user {
				if err := os.WriteFile(filepath.Join(cfg.Output.Dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}

			// Delete half of the inputs: units 4-7 no longer exist.
			for i := 1; i < 8; i += 2 {
				if err := os.Remove(filepath.Join(in, fmt.Sprintf("a-%03d.txt", i))); err != nil {
					t.Fatal(err)
				}
			}
			run("after deleting half of the inputs")
			for _, stale := range []string{"docs-00004.parquet", "docs-00007.parquet", "removed/removed-00007.parquet"} {
				if _, err := os.Stat(filepath.Join(cfg.Output.Dir, stale)); err == nil {
					t.Errorf("%s of the earlier run is still there", stale)
				}
			}

			// Add files before and after the existing ones.
			writeDistinctFiles(t, in, "0", 0, 3)
			writeDistinctFiles(t, in, "b", 0, 5)
			run("after adding files")

			// Rewrite one file in place (same name, new content).
			time.Sleep(10 * time.Millisecond) // a visibly different mtime
			p := filepath.Join(in, "a-002.txt")
			if err := os.WriteFile(p, []byte("A completely new text about harbours, ships and the tides of the northern sea."), 0o644); err != nil {
				t.Fatal(err)
			}
			run("after rewriting a file")
			for _, f := range []string{"docs-00005.parquet", "docs-00006.parquet"} { // 0-000..002, a-000, a-002
				rows, err := shard.ReadAll[shard.Row](filepath.Join(cfg.Output.Dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) == 1 && rows[0].ID == p && !strings.Contains(rows[0].Text, "harbours") {
					t.Errorf("%s: the output holds the old text %q", p, rows[0].Text)
				}
			}
			for name, text := range user {
				if b, err := os.ReadFile(filepath.Join(cfg.Output.Dir, name)); err != nil || string(b) != text {
					t.Errorf("user file %s: %q, %v", name, b, err)
				}
			}
		})
	}
}

// TestResumeAfterListChange: a file the recipe names (here a URL block
// list) changing between runs invalidates the finished units.
func TestResumeAfterListChange(t *testing.T) {
	in := t.TempDir()
	writeDocs(t, filepath.Join(in, "a.jsonl"), []jsonDoc{
		{ID: "1", URL: "https://good.example/a", Text: "A text about rivers and mills and grain."},
		{ID: "2", URL: "https://bad.example/b", Text: "A text about harbours and ships and tides."},
	})
	list := filepath.Join(t.TempDir(), "block.txt")
	if err := os.WriteFile(list, []byte("other.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Input.Paths = []string{in}
	cfg.Output.Dir = t.TempDir()
	cfg.Stages = []string{StageNormalize, StageURLFilter}
	cfg.URLFilter.BlockLists = []string{list}
	for i, want := range []int{2, 1} {
		if i == 1 {
			time.Sleep(10 * time.Millisecond)
			if err := os.WriteFile(list, []byte("bad.example\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Run(t.Context(), cfg, Options{Logger: quietLogger()}); err != nil {
			t.Fatal(err)
		}
		kept, _ := readOutputs(t, cfg.Output.Dir)
		if len(kept) != want {
			t.Fatalf("run %d: kept %d, want %d", i+1, len(kept), want)
		}
	}
}
