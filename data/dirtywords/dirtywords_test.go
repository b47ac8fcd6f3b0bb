package dirtywords

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCount(t *testing.T) {
	m := newMatcher("en", []string{"badword", "Two Words", "three word phrase"})
	cases := []struct {
		text        string
		hits, words int
	}{
		{"a clean sentence", 0, 3},
		{"BadWord, and badword!", 2, 3},
		{"two words here; two, words", 2, 5},
		{"a three word phrase", 1, 4},
		{"badwords is not badword", 1, 4},
		{"", 0, 0},
	}
	for _, c := range cases {
		if h, w := m.Count(c.text); h != c.hits || w != c.words {
			t.Errorf("Count(%q) = %d, %d; want %d, %d", c.text, h, w, c.hits, c.words)
		}
	}
	if text := "badword clean clean clean"; m.RatioWords(text, strings.Fields(text)) != 0.25 {
		t.Errorf("RatioWords(%q) = %v, want 0.25", text, m.RatioWords(text, strings.Fields(text)))
	}
	if r := m.RatioWords("", nil); r != 0 {
		t.Errorf("RatioWords of an empty text = %v, want 0", r)
	}
}

func TestShippedLists(t *testing.T) {
	langs := Languages()
	if len(langs) < 20 {
		t.Fatalf("only %d shipped lists: %v", len(langs), langs)
	}
	en, err := Load("en")
	if err != nil {
		t.Fatal(err)
	}
	// "2 girls 1 cup" is a multi-word entry of the English list.
	if h, _ := en.Count("He mentioned 2 girls 1 cup and left."); h != 1 {
		t.Fatalf("phrase from shipped list not found: %d", h)
	}
	if h, _ := en.Count("The quick brown fox jumps over the lazy dog."); h != 0 {
		t.Fatalf("clean pangram has %d hits", h)
	}
	if _, err := Load("xx"); err == nil {
		t.Fatal("no error for a missing list")
	}
	zh, err := Load("zh")
	if err != nil || !zh.substring {
		t.Fatalf("zh: %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	txt := filepath.Join(dir, "words.txt")
	os.WriteFile(txt, []byte("# comment\nfoo\n\nbar baz\n"), 0o644)
	m, err := LoadFile("en", txt)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := m.Count("foo and bar baz"); h != 2 {
		t.Fatalf("hits %d", h)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"not": "a list"}`), 0o644)
	if _, err := LoadFile("en", bad); err == nil {
		t.Fatal("no error for a malformed JSON list")
	}
}

// TestCountWordsAgreesWithCount checks that counting pre-split words (as
// the pipeline does) gives what Count gives on the text, with ASCII and
// Unicode white space, punctuation around terms, phrases across lines,
// and the bit-set prefilter in front of the maps.
func TestCountWordsAgreesWithCount(t *testing.T) {
	m, err := Load("en")
	if err != nil {
		t.Fatal(err)
	}
	extra := newMatcher("en", []string{"badword", "Two Words", "three word phrase", "ünïcode wörd"})
	rng := rand.New(rand.NewPCG(1, 1))
	vocab := []string{"badword", "two", "words", "three", "word", "phrase", "ünïcode", "wörd", "clean", "text", "(badword)", "BADWORD!", "fuck", "shit,", "blow", "job", "a"}
	seps := []string{" ", "\n", "\t", "\u00a0", "\u3000", " \n\n ", "  "}
	hits := 0
	for range 2000 {
		var b strings.Builder
		for range rng.IntN(40) {
			b.WriteString(vocab[rng.IntN(len(vocab))])
			b.WriteString(seps[rng.IntN(len(seps))])
		}
		text := b.String()
		words := strings.Fields(text)
		for _, mm := range []*Matcher{m, extra} {
			h1, w1 := mm.Count(text)
			h2, w2 := mm.CountWords(text, words)
			if h1 != h2 || w1 != w2 {
				t.Fatalf("%q: Count = %d/%d, CountWords = %d/%d", text, h1, w1, h2, w2)
			}
			hits += h1
		}
	}
	if hits < 1000 {
		t.Fatalf("only %d hits: the test texts exercise too little", hits)
	}
}
