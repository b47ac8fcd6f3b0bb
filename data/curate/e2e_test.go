package curate

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/herdml/herd/data/dedup/planted"
	"github.com/herdml/herd/data/shard"
	"github.com/herdml/herd/internal/testenv"
)

const corpora = "../../../shared/testdata/corpora"

func needCorpora(t testing.TB) {
	t.Helper()
	testenv.Testdata(t, corpora)
}

// writeJSONL writes the planted corpus as nfiles JSONL files (units).
func writeJSONL(t testing.TB, dir string, docs []planted.Doc, nfiles int) {
	t.Helper()
	per := (len(docs) + nfiles - 1) / nfiles
	for f := 0; f < nfiles; f++ {
		var b strings.Builder
		for _, d := range docs[min(f*per, len(docs)):min((f+1)*per, len(docs))] {
			line, _ := json.Marshal(map[string]any{"id": strconv.FormatUint(d.ID, 10), "text": d.Text})
			b.Write(line)
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%02d.jsonl", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readOutputs(t testing.TB, out string) (kept []shard.Row, removed []shard.Removed) {
	t.Helper()
	docs, _ := filepath.Glob(filepath.Join(out, "docs-*.parquet"))
	for _, p := range docs {
		rows, err := shard.ReadAll[shard.Row](p)
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, rows...)
	}
	rm, _ := filepath.Glob(filepath.Join(out, "removed", "removed-*.parquet"))
	for _, p := range rm {
		rows, err := shard.ReadAll[shard.Removed](p)
		if err != nil {
			t.Fatal(err)
		}
		removed = append(removed, rows...)
	}
	return kept, removed
}

// shingles returns the set of word 5-grams, for an independent similarity check.
func shingles(text string) map[string]bool {
	w := strings.Fields(strings.ToLower(text))
	s := map[string]bool{}
	for i := 0; i+5 <= len(w); i++ {
		s[strings.Join(w[i:i+5], " ")] = true
	}
	return s
}

func jaccard(a, b string) float64 {
	sa, sb := shingles(a), shingles(b)
	inter := 0
	for k := range sa {
		if sb[k] {
			inter++
		}
	}
	union := len(sa) + len(sb) - inter
	if union == 0 {
		return 1
	}
	return float64(inter) / float64(union)
}

// TestPlantedDuplicates runs the dedup stages through the pipeline on a
// corpus with planted exact and near copies and boilerplate lines, and
// checks the figures: all exact copies caught, near-dup recall ≥
// 0.95 at precision ≥ 0.99, boilerplate lines gone, nothing lost.
func TestPlantedDuplicates(t *testing.T) {
	needCorpora(t)
	corpus, err := planted.Generate(planted.Config{Dir: corpora, Seed: 7, Originals: 2500, NearCopies: 500, ExactCopies: 300})
	if err != nil {
		t.Fatal(err)
	}
	in, out := t.TempDir(), t.TempDir()
	writeJSONL(t, in, corpus.Docs, 2)
	cfg := Default()
	cfg.Input.Paths = []string{in}
	cfg.Output.Dir = out
	cfg.Stages = []string{StageNormalize, StageExactDedup, StageLineDedup, StageMinHash}
	res, err := Run(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	kept, removed := readOutputs(t, out)
	if got, want := len(kept)+len(removed), len(corpus.Docs); got != want {
		t.Fatalf("%d kept + %d removed != %d input documents", len(kept), len(removed), want)
	}
	byID := map[string]planted.Doc{}
	for _, d := range corpus.Docs {
		byID[strconv.FormatUint(d.ID, 10)] = d
	}
	textByOrdinal := map[int64]string{}
	for _, r := range kept {
		textByOrdinal[r.Ordinal] = r.Text
	}
	for _, r := range removed {
		textByOrdinal[r.Ordinal] = r.Text
	}
	ordOf := map[uint64]int64{} // planted id → ordinal
	for _, r := range kept {
		ordOf[byID[r.ID].ID] = r.Ordinal
	}
	// Dedup removals: removed ordinal → ordinal kept in its place.
	rep := map[int64]int64{}
	var dupRemoved []shard.Removed
	for _, r := range removed {
		ordOf[byID[r.ID].ID] = r.Ordinal
		if !strings.HasPrefix(r.Reason, "exact_dedup/") && !strings.HasPrefix(r.Reason, "minhash/") {
			continue
		}
		var keep int64
		if _, err := fmt.Sscanf(r.Detail, "duplicate of ordinal %d", &keep); err != nil {
			t.Fatalf("removed %s: detail %q: %v", r.ID, r.Detail, err)
		}
		rep[r.Ordinal] = keep
		dupRemoved = append(dupRemoved, r)
	}
	cluster := func(ord int64) int64 {
		for range len(rep) + 1 {
			k, ok := rep[ord]
			if !ok {
				break
			}
			ord = k
		}
		return ord
	}
	// Precision: a removal is right when the document kept in its place
	// is of the same planted group, or (natural duplicates in the corpora)
	// verified similar by exact word 5-gram Jaccard ≥ 0.5.
	wrong := 0
	for _, r := range dupRemoved {
		k := rep[r.Ordinal]
		var kd shard.Removed
		kd.Text = textByOrdinal[k]
		keepID := ""
		for id, o := range ordOf {
			if o == k {
				keepID = strconv.FormatUint(id, 10)
			}
		}
		if byID[r.ID].Group != byID[keepID].Group && jaccard(r.Text, kd.Text) < 0.5 {
			wrong++
			t.Logf("false positive: %s (%s) vs %s (%s): jaccard %.2f", r.ID, byID[r.ID].Source, keepID, byID[keepID].Source, jaccard(r.Text, kd.Text))
		}
	}
	precision := 1 - float64(wrong)/float64(max(len(dupRemoved), 1))
	// Recall: a planted copy is caught when it ends in its original's cluster.
	var exact, exactCaught, near, nearCaught int
	for _, d := range corpus.Docs {
		_, isRemoved := rep[ordOf[d.ID]]
		same := cluster(ordOf[d.ID]) == cluster(ordOf[d.Group])
		switch d.Kind {
		case planted.Exact:
			exact++
			_, origRemoved := rep[ordOf[d.Group]]
			if same && (isRemoved || origRemoved) {
				exactCaught++
			}
		case planted.Near:
			near++
			if same {
				nearCaught++
			}
		}
	}
	recall := float64(nearCaught) / float64(near)
	t.Logf("exact %d/%d caught, near recall %.4f (%d/%d), precision %.4f over %d removals", exactCaught, exact, recall, nearCaught, near, precision, len(dupRemoved))
	if exactCaught != exact {
		t.Errorf("exact copies caught %d of %d", exactCaught, exact)
	}
	if recall < 0.95 {
		t.Errorf("near-dup recall %.4f < 0.95", recall)
	}
	if precision < 0.99 {
		t.Errorf("precision %.4f < 0.99", precision)
	}
	// Boilerplate lines are gone from every kept document; content stays.
	for _, r := range kept {
		for _, line := range strings.Split(r.Text, "\n") {
			for _, bp := range corpus.BoilerplateLines {
				if strings.TrimSpace(line) == bp {
					t.Fatalf("boilerplate line %q left in %s", bp, r.ID)
				}
			}
		}
	}
	ls := res.Stats.Stages[StageLineDedup]
	if ls == nil || ls.Edited.Lines == 0 {
		t.Fatalf("line dedup removed no lines: %+v", ls)
	}
	if ls.Out.Bytes < ls.In.Bytes*8/10 {
		t.Errorf("line dedup removed too much: %d of %d bytes left", ls.Out.Bytes, ls.In.Bytes)
	}
	// stats.json agrees with the files.
	var sj struct {
		Kept struct{ Docs int64 } `json:"kept"`
	}
	b, err := os.ReadFile(filepath.Join(out, "stats.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sj); err != nil || sj.Kept.Docs != int64(len(kept)) {
		t.Fatalf("stats.json kept %d, files %d (%v)", sj.Kept.Docs, len(kept), err)
	}
}
