package curate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herdml/herd/data/classify"
	"github.com/herdml/herd/data/dedup/planted"
	"github.com/herdml/herd/data/htmltext"
	"github.com/herdml/herd/data/shard"
	"github.com/herdml/herd/data/textnorm"
)

// jsonDoc is one input record of the tests below.
type jsonDoc struct {
	ID   string `json:"id"`
	URL  string `json:"url,omitempty"`
	Text string `json:"text"`
}

func writeDocs(t *testing.T, path string, docs []jsonDoc) {
	t.Helper()
	var b bytes.Buffer
	for _, d := range docs {
		line, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sentences makes n documents of random sentences over a vocabulary.
func sentences(rng *rand.Rand, vocab []string, n, words int) []string {
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for w := range words {
			if w > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(vocab[rng.IntN(len(vocab))])
			if w%9 == 8 {
				b.WriteByte('.')
			}
		}
		out[i] = b.String()
	}
	return out
}

// TestClassifierStagesInRun trains a quality and a domain model, runs them
// as pipeline stages, and checks every output row against the models
// scoring the normalized text directly: quality scores and domain labels
// are recorded, and documents under quality.min_score are removed.
func TestClassifierStagesInRun(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	prose := strings.Fields("the river ran past an old mill where farmers brought grain each autumn and children watched the wheel turn slowly in the cold water")
	spam := strings.Fields("buy cheap pills now click here free offer winner casino bonus limited deal act fast credit")
	code := strings.Fields("func main() { return err if != nil := x, y for range i++ var int string } package import fmt.Println")
	hq, lq, src := sentences(rng, prose, 60, 80), sentences(rng, spam, 60, 80), sentences(rng, code, 60, 80)
	var qEx, dEx []classify.Example
	for i := 0; i < 40; i++ {
		qEx = append(qEx, classify.Example{Text: hq[i], Label: "hq"}, classify.Example{Text: lq[i], Label: "lq"})
		dEx = append(dEx, classify.Example{Text: hq[i], Label: "general"}, classify.Example{Text: src[i], Label: "code"})
	}
	dir := t.TempDir()
	train := func(ex []classify.Example, name string) (*classify.Model, string) {
		m, _, err := classify.Train(context.Background(), ex, classify.Config{Buckets: 1 << 14, Dim: 8, Epochs: 5, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := m.SaveFile(path); err != nil {
			t.Fatal(err)
		}
		return m, path
	}
	qm, qPath := train(qEx, "quality.model")
	dm, dPath := train(dEx, "domain.model")
	// Held-out documents of all three kinds.
	var docs []jsonDoc
	for i := 40; i < 60; i++ {
		docs = append(docs, jsonDoc{ID: fmt.Sprintf("hq%d", i), Text: hq[i]}, jsonDoc{ID: fmt.Sprintf("lq%d", i), Text: lq[i]},
			jsonDoc{ID: fmt.Sprintf("code%d", i), Text: src[i]})
	}
	in := t.TempDir()
	writeDocs(t, filepath.Join(in, "docs.jsonl"), docs)
	cfg := Default()
	cfg.Input.Paths = []string{in}
	cfg.Output.Dir = t.TempDir()
	cfg.Stages = []string{StageNormalize, StageQuality, StageDomain}
	cfg.Quality = Classifier{Model: qPath, Label: "hq", MinScore: 0.5}
	cfg.Domain = Classifier{Model: dPath}
	if _, err := Run(context.Background(), cfg, Options{Logger: quietLogger()}); err != nil {
		t.Fatal(err)
	}
	kept, removed := readOutputs(t, cfg.Output.Dir)
	if len(kept)+len(removed) != len(docs) {
		t.Fatalf("%d kept + %d removed != %d", len(kept), len(removed), len(docs))
	}
	norm := textnorm.New(cfg.Normalize)
	keptHQ, keptCode := 0, 0
	for _, r := range kept {
		text := norm.Normalize(r.Text)
		if want := qm.Prob(text, "hq"); math.Abs(float64(r.Quality)-want) > 1e-6 || want < 0.5 {
			t.Errorf("%s: quality %.6f, model says %.6f (min 0.5)", r.ID, r.Quality, want)
		}
		label, p := dm.Predict(text)
		if r.Domain != label || math.Abs(float64(r.DomainScore)-p) > 1e-6 {
			t.Errorf("%s: domain %s %.4f, model says %s %.4f", r.ID, r.Domain, r.DomainScore, label, p)
		}
		switch {
		case strings.HasPrefix(r.ID, "hq"):
			keptHQ++
			if r.Domain != "general" {
				t.Errorf("%s: prose tagged %s", r.ID, r.Domain)
			}
		case strings.HasPrefix(r.ID, "code"):
			keptCode++
		case strings.HasPrefix(r.ID, "lq"):
			t.Errorf("spam document %s kept with quality %.3f", r.ID, r.Quality)
		}
	}
	for _, r := range removed {
		if r.Reason != "quality/low_score" {
			t.Errorf("%s removed by %s", r.ID, r.Reason)
		}
		if want := qm.Prob(r.Text, "hq"); want >= 0.5 {
			t.Errorf("%s removed with quality %.3f ≥ 0.5", r.ID, want)
		}
	}
	if keptHQ < 18 {
		t.Errorf("only %d of 20 held-out prose documents kept", keptHQ)
	}
	t.Logf("kept %d prose, %d code; removed %d", keptHQ, keptCode, len(removed))
}

// TestURLBlockListInRun runs the url_filter stage with a block list file.
func TestURLBlockListInRun(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "block.txt")
	if err := os.WriteFile(list, []byte("# adult and people-search sites\nbad.example\n*.tracker.test\n\nwww.people-finder.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	text := "A perfectly ordinary document."
	cases := []struct {
		url, blockedHost string
	}{
		{"https://bad.example/page", "bad.example"},
		{"http://video.bad.example:8080/x?y=1", "video.bad.example"},
		{"https://a.b.tracker.test/", "a.b.tracker.test"},
		{"https://PEOPLE-FINDER.test/search", "people-finder.test"},
		{"https://notbad.example/", ""},
		{"https://bad.example.org/", ""},
		{"", ""},
		{"not a url at all", ""},
	}
	var docs []jsonDoc
	for i, c := range cases {
		docs = append(docs, jsonDoc{ID: fmt.Sprint(i), URL: c.url, Text: text})
	}
	in := t.TempDir()
	writeDocs(t, filepath.Join(in, "docs.jsonl"), docs)
	cfg := Default()
	cfg.Input.Paths = []string{in}
	cfg.Output.Dir = t.TempDir()
	cfg.Stages = []string{StageURLFilter}
	cfg.URLFilter.BlockLists = []string{list}
	res, err := Run(context.Background(), cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	kept, removed := readOutputs(t, cfg.Output.Dir)
	why := map[string]shard.Removed{}
	for _, r := range removed {
		why[r.ID] = r
	}
	for i, c := range cases {
		r, gone := why[fmt.Sprint(i)]
		if gone != (c.blockedHost != "") {
			t.Errorf("%q: removed = %v, want %v", c.url, gone, c.blockedHost != "")
			continue
		}
		if want := "host " + c.blockedHost + " is blocked by " + cfg.URLFilter.BlockLists[0]; gone && (r.Reason != "url_filter/blocked_domain" || r.Detail != want+" (url_filter.block_lists)") {
			t.Errorf("%q: reason %q detail %q, want url_filter/blocked_domain %q", c.url, r.Reason, r.Detail, want)
		}
	}
	if got := res.Stats.Stages[StageURLFilter].Removed["blocked_domain"].Docs; got != 4 || len(kept) != 4 {
		t.Errorf("funnel says %d blocked, %d kept; want 4 and 4", got, len(kept))
	}
}

// htmlPage is a news page with navigation, a cookie banner, a sidebar and a
// footer around the article.
const htmlPage = `<!DOCTYPE html>
<html><head><title>Harbour reopens after storm repairs</title></head>
<body>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience. Accept all cookies or manage preferences.</div>
<header><nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li><li><a href="/sport">Sport</a></li><li><a href="/contact">Contact us</a></li></ul></nav></header>
<main><article>
<h1>Harbour reopens after storm repairs</h1>
<p>The old harbour reopened on Monday after three months of repairs to the sea wall, which was badly damaged during the winter storms that struck the coast in January.</p>
<p>Engineers replaced more than two hundred metres of stonework and raised the height of the wall by half a metre, so that future storm surges are less likely to flood the quay and the fish market behind it.</p>
<p>Fishing crews said the closure had cost them dearly, but most welcomed the stronger defences and hoped the work would protect the town for decades to come.</p>
</article></main>
<aside class="sidebar"><h3>Most read</h3><ul><li><a href="/a">Ten gardening tips for spring</a></li><li><a href="/b">Local team wins cup</a></li></ul></aside>
<footer><p>Copyright 2024 Coastal Gazette. All rights reserved.</p><p><a href="/privacy">Privacy policy</a> | <a href="/terms">Terms of use</a></p></footer>
</body></html>`

// TestHTMLExtraction reads an HTML page through the pipeline: the main
// text (title and article paragraphs) stays, the navigation, cookie banner,
// sidebar and footer go.
func TestHTMLExtraction(t *testing.T) {
	in := t.TempDir()
	if err := os.WriteFile(filepath.Join(in, "page.html"), []byte(htmlPage), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Input.Paths = []string{in}
	cfg.Output.Dir = t.TempDir()
	cfg.Stages = []string{StageNormalize}
	if _, err := Run(context.Background(), cfg, Options{Logger: quietLogger(), HTML: htmltext.Extractor{}}); err != nil {
		t.Fatal(err)
	}
	kept, removed := readOutputs(t, cfg.Output.Dir)
	if len(kept) != 1 || len(removed) != 0 {
		t.Fatalf("kept %d, removed %d (%v)", len(kept), len(removed), removed)
	}
	text := kept[0].Text
	for _, want := range []string{"The old harbour reopened on Monday", "raised the height of the wall", "protect the town for decades"} {
		if !strings.Contains(text, want) {
			t.Errorf("main text lost %q:\n%s", want, text)
		}
	}
	for _, bad := range []string{"We use cookies", "Contact us", "Most read", "gardening tips", "All rights reserved", "Privacy policy"} {
		if strings.Contains(text, bad) {
			t.Errorf("boilerplate %q kept:\n%s", bad, text)
		}
	}
	// Without an extractor the page is reported, not dropped silently.
	cfg.Output.Dir = t.TempDir()
	if _, err := Run(context.Background(), cfg, Options{Logger: quietLogger()}); !errors.Is(err, ErrNothingKept) {
		t.Fatalf("nothing kept: got %v, want ErrNothingKept", err)
	}
	if _, removed := readOutputs(t, cfg.Output.Dir); len(removed) != 1 || removed[0].Reason != "input/html_extract" {
		t.Fatalf("without an extractor: removed %+v", removed)
	}
}

// TestMultiRankSameOutputs runs a recipe with every kind of global stage
// as two ranks (goroutines sharing the output folder) and as one, and
// compares the output files byte for byte.
func TestMultiRankSameOutputs(t *testing.T) {
	needCorpora(t)
	corpus, err := planted.Generate(planted.Config{Dir: corpora, Seed: 11, Originals: 300})
	if err != nil {
		t.Fatal(err)
	}
	in := t.TempDir()
	writeJSONL(t, in, corpus.Docs, 5)
	base := Default()
	base.Input.Paths = []string{in}
	base.Stages = []string{StageNormalize, StageExactDedup, StageLineDedup, StageGopher, StageTokenKL, StageMinHash}
	base.LineDedup.BucketDocs = 50 // buckets straddle units and ranks
	run := func(world int) string {
		cfg := base
		cfg.Output.Dir = t.TempDir()
		var wg sync.WaitGroup
		errs := make([]error, world)
		for rank := range world {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := cfg
				c.Workers = 1 + rank // worker counts do not change outputs
				_, errs[rank] = Run(context.Background(), c, Options{Rank: rank, World: world, Poll: 10 * time.Millisecond, Logger: quietLogger()})
			}()
		}
		wg.Wait()
		for rank, err := range errs {
			if err != nil {
				t.Fatalf("world %d rank %d: %v", world, rank, err)
			}
		}
		return cfg.Output.Dir
	}
	one, two := run(1), run(2)
	files := func(dir string) []string {
		var out []string
		for _, pat := range []string{"docs-*.parquet", "removed/removed-*.parquet", "stats.json", "recipe.yaml"} {
			m, _ := filepath.Glob(filepath.Join(dir, pat))
			for _, f := range m {
				rel, _ := filepath.Rel(dir, f)
				out = append(out, rel)
			}
		}
		return out
	}
	f1, f2 := files(one), files(two)
	if len(f1) != 5+5+2 || strings.Join(f1, " ") != strings.Join(f2, " ") {
		t.Fatalf("world 1 wrote %v, world 2 wrote %v", f1, f2)
	}
	for _, f := range f1 {
		a, _ := os.ReadFile(filepath.Join(one, f))
		b, _ := os.ReadFile(filepath.Join(two, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between world size 1 and 2", f)
		}
	}
	kept, removed := readOutputs(t, one)
	reasons := map[string]int{}
	for _, r := range removed {
		reasons[strings.SplitN(r.Reason, "/", 2)[0]]++
	}
	if reasons[StageExactDedup] == 0 || reasons[StageMinHash] == 0 {
		t.Errorf("the corpus exercises too little: removals by stage %v", reasons)
	}
	t.Logf("%d kept, removals by stage %v", len(kept), reasons)
}

// TestInvalidUTF8Policy feeds JSONL and text files with invalid UTF-8
// (raw bytes, an unpaired surrogate escape) through both policies: repair
// keeps and counts them, drop removes them with the reason and count.
func TestInvalidUTF8Policy(t *testing.T) {
	in := t.TempDir()
	lines := "{\"id\":\"raw\",\"text\":\"caf\xe9 au lait\"}\n" +
		`{"id":"surrogate","text":"emoji \ud83d broken"}` + "\n" +
		`{"id":"clean","text":"all fine \ud83d\ude00"}` + "\n"
	if err := os.WriteFile(filepath.Join(in, "a.jsonl"), []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in, "b.txt"), []byte("latin-1 na\xefve text"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, policy := range []string{"repair", "drop"} {
		t.Run(policy, func(t *testing.T) {
			cfg := Default()
			cfg.Input.Paths = []string{in}
			cfg.Output.Dir = t.TempDir()
			cfg.Stages = []string{StageNormalize}
			cfg.Limits.InvalidUTF8 = policy
			res, err := Run(context.Background(), cfg, Options{Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			kept, removed := readOutputs(t, cfg.Output.Dir)
			input := res.Stats.Stages["input"]
			if policy == "repair" {
				if len(kept) != 4 || len(removed) != 0 || input.Repaired.Docs != 3 {
					t.Fatalf("kept %d, removed %d, repaired %d; want 4, 0, 3", len(kept), len(removed), input.Repaired.Docs)
				}
				for _, k := range kept {
					if k.ID != "clean" && !strings.Contains(k.Text, "\uFFFD") {
						t.Errorf("%s: no replacement character in %q", k.ID, k.Text)
					}
				}
				return
			}
			if len(kept) != 1 || kept[0].ID != "clean" || len(removed) != 3 {
				t.Fatalf("kept %v, removed %d; want only the clean document", kept, len(removed))
			}
			for _, r := range removed {
				if r.Reason != "input/invalid_utf8" || !strings.Contains(r.Detail, "1 invalid UTF-8 sequences") {
					t.Errorf("%s: reason %q detail %q", r.ID, r.Reason, r.Detail)
				}
			}
		})
	}
}
