package dedup

import (
	"context"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/herdml/herd/data/dedup/planted"
	"github.com/herdml/herd/internal/testenv"
)

const corporaDir = "../../../shared/testdata/corpora"

// plantedCorpus generates the shared test corpus once per test binary.
var plantedCorpus = sync.OnceValues(func() (*planted.Corpus, error) {
	return planted.Generate(planted.Config{Dir: corporaDir, Seed: 7, Originals: 2500, NearCopies: 500, ExactCopies: 300})
})

func loadPlanted(t testing.TB) *planted.Corpus {
	t.Helper()
	testenv.Testdata(t, corporaDir)
	c, err := plantedCorpus()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wordShingleSet is an independent shingling (string sets, no hashing) used
// to compute true Jaccard similarities.
func wordShingleSet(text string, n int) map[string]bool {
	w := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r)
	})
	s := map[string]bool{}
	if len(w) > 0 && len(w) < n {
		s[strings.Join(w, " ")] = true
	}
	for i := 0; i+n <= len(w); i++ {
		s[strings.Join(w[i:i+n], " ")] = true
	}
	return s
}

func trueJaccard(a, b map[string]bool) float64 {
	in := 0
	for k := range a {
		if b[k] {
			in++
		}
	}
	if u := len(a) + len(b) - in; u > 0 {
		return float64(in) / float64(u)
	}
	return 0
}

// TestPlantedPipeline runs exact dedup, line dedup and MinHash in the
// curation order on the planted corpus and checks the figures issue 4 asks
// for. Definitions:
//   - exact: every planted exact copy (byte-identical or whitespace/case
//     variant) is removed by exact dedup in favour of a member of its group,
//     and nothing else is.
//   - near-dup recall: fraction of planted near copies that end up in the
//     same cluster as their original (following exact-dedup removals too).
//   - near-dup precision: fraction of MinHash removals (ID, Keep) where ID
//     and Keep are in the same planted group or are natural near duplicates
//     in the source corpora (true word-5-gram Jaccard ≥ 0.5, computed
//     independently with string sets).
//   - boilerplate: every planted boilerplate line is gone after line dedup,
//     and every content line that occurs at most 6 times in its bucket stays.
func TestPlantedPipeline(t *testing.T) {
	c := loadPlanted(t)
	ctx := context.Background()
	docs := c.Docs

	// Exact dedup.
	ex := NewExactSet(ExactConfig{})
	exactKeep := map[uint64]uint64{}
	for _, d := range docs {
		if k, dup := ex.Add(d.ID, d.Text); dup {
			exactKeep[d.ID] = k
		}
	}
	// Per group, the originals and exact copies must collapse to one
	// survivor; a removal must point into the removed doc's group.
	survivors := map[uint64]int{}
	wantExact := 0
	for _, d := range docs {
		k, removed := exactKeep[d.ID]
		if d.Kind == planted.Exact {
			wantExact++
		}
		if removed && docs[k].Group != d.Group {
			t.Errorf("doc %d (%s) removed as exact dup of unrelated %d (%s)", d.ID, d.Source, k, docs[k].Source)
		}
		if !removed && d.Kind != planted.Near {
			survivors[d.Group]++
		}
	}
	for g, n := range survivors {
		if n != 1 {
			t.Errorf("group %d (%s): %d of its original and exact copies survive exact dedup, want 1", g, docs[g].Source, n)
		}
	}
	if len(exactKeep) < wantExact {
		t.Errorf("exact dedup removed %d docs, planted %d exact copies", len(exactKeep), wantExact)
	}
	// Line dedup over the survivors (one bucket: 3300 docs < 10,000).
	var kept []planted.Doc
	for _, d := range docs {
		if _, removed := exactKeep[d.ID]; !removed {
			kept = append(kept, d)
		}
	}
	texts := make([]string, len(kept))
	for i, d := range kept {
		texts[i] = d.Text
	}
	filtered, stats, err := DedupLines(ctx, texts, LineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	checkBoilerplate(t, c, kept, texts, filtered, stats)

	// MinHash near dedup on the line-deduped text.
	in := make([]Doc, len(kept))
	for i, d := range kept {
		in[i] = Doc{d.ID, filtered[i]}
	}
	rs, err := NearDuplicates(ctx, in, MinHashConfig{})
	if err != nil {
		t.Fatal(err)
	}
	text := map[uint64]string{}
	for i, d := range kept {
		text[d.ID] = filtered[i]
	}
	rep := map[uint64]uint64{}
	for _, r := range rs {
		rep[r.ID] = r.Keep
	}
	cluster := func(id uint64) uint64 {
		if k, ok := exactKeep[id]; ok {
			id = k
		}
		if k, ok := rep[id]; ok {
			return k
		}
		return id
	}
	near, found := 0, 0
	for _, d := range docs {
		if d.Kind != planted.Near {
			continue
		}
		near++
		if cluster(d.ID) == cluster(d.Group) {
			found++
		}
	}
	correct, natural := 0, 0
	for _, r := range rs {
		switch {
		case docs[r.ID].Group == docs[r.Keep].Group:
			correct++
		case trueJaccard(wordShingleSet(text[r.ID], 5), wordShingleSet(text[r.Keep], 5)) >= 0.5:
			correct++
			natural++
		default:
			t.Logf("false positive: %d (%s) kept %d (%s)", r.ID, docs[r.ID].Source, r.Keep, docs[r.Keep].Source)
		}
	}
	recall := float64(found) / float64(near)
	precision := float64(correct) / float64(len(rs))
	t.Logf("docs %d, exact copies %d caught %d; near copies %d found %d: recall %.4f; MinHash removals %d, correct %d (%d natural dups in the sources): precision %.4f",
		len(docs), wantExact, len(exactKeep), near, found, recall, len(rs), correct, natural, precision)
	if recall < 0.95 {
		t.Errorf("near-dup recall %.4f < 0.95", recall)
	}
	if precision < 0.99 {
		t.Errorf("near-dup precision %.4f < 0.99", precision)
	}
}

func checkBoilerplate(t *testing.T, c *planted.Corpus, kept []planted.Doc, texts, filtered []string, stats []LineStats) {
	t.Helper()
	isBoiler := map[string]bool{}
	for _, l := range c.BoilerplateLines {
		isBoiler[l] = true
	}
	// Independent count of normalized lines over the bucket (strings, not hashes).
	count := map[string]int{}
	for _, tx := range texts {
		for _, l := range strings.Split(tx, "\n") {
			if n := NormalizeLine(l); n != "" {
				count[n]++
			}
		}
	}
	boiler, boilerRemoved, content, contentKept := 0, 0, 0, 0
	for i := range kept {
		// Filtering only deletes lines: match the output as a subsequence.
		out := strings.Split(filtered[i], "\n")
		in := strings.Split(texts[i], "\n")
		j, removed := 0, 0
		for _, l := range in {
			gone := true
			if j < len(out) && out[j] == l {
				gone = false
				j++
			}
			n := NormalizeLine(l)
			if want := n != "" && count[n] > 6; want != gone {
				t.Errorf("doc %d: line %q (normalized count %d) removed=%v, want %v", kept[i].ID, l, count[n], gone, want)
			}
			if gone {
				removed++
			}
			if isBoiler[l] {
				boiler++
				if gone {
					boilerRemoved++
				}
			} else {
				content++
				if !gone {
					contentKept++
				}
			}
		}
		if j != len(out) && !(j == len(out)-1 && out[j] == "") {
			t.Errorf("doc %d: filtered text is not a subsequence of the input lines", kept[i].ID)
		}
		lines := strings.Count(texts[i], "\n")
		if !strings.HasSuffix(texts[i], "\n") && texts[i] != "" {
			lines++ // a final newline does not start another line
		}
		if stats[i].LinesRemoved != removed || stats[i].Lines != lines || stats[i].BytesRemoved != len(texts[i])-len(filtered[i]) {
			t.Errorf("doc %d: stats %+v, want %d of %d lines and %d bytes removed", kept[i].ID, stats[i], removed, lines, len(texts[i])-len(filtered[i]))
		}
	}
	if boilerRemoved != boiler {
		t.Errorf("boilerplate: %d of %d planted lines removed", boilerRemoved, boiler)
	}
	t.Logf("boilerplate lines removed %d/%d; other lines kept %d/%d (%.4f; the rest repeat > 6 times in the bucket: HTML tags, list footers)",
		boilerRemoved, boiler, contentKept, content, float64(contentKept)/float64(content))
}
