package heuristics

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/herdml/herd/internal/testenv"
)

// prose is ordinary English text that every default filter keeps.
const prose = `The history of the printing press is a story of slow change and sudden leaps.
Before movable type, books were copied by hand, and a single volume could take a scribe many months to finish.
Johannes Gutenberg combined several existing techniques with a new metal alloy that was easy to cast.
His workshop in Mainz printed indulgences, calendars and, most famously, a large Latin Bible.
Within fifty years presses were working in more than two hundred cities across Europe.
Prices fell, literacy spread, and scholars could compare identical copies of the same text.
Historians still argue about how much of the Reformation and the scientific revolution followed from that.
What is clear is that the cost of sharing an idea dropped by an order of magnitude, and it has kept dropping ever since.`

func analyse(s string) *Analysis { return new(Analysis).Of(s) }

func TestGopherQuality(t *testing.T) {
	g := DefaultGopherQuality()
	cases := []struct{ name, text, want string }{
		{"prose kept", prose, ""},
		{"too short", "The cat and the dog sat with the owl.", "min_words"},
		{"long words", strings.Repeat("antidisestablishmentarianism the and ", 30), "max_avg_word_length"},
		{"short words", strings.Repeat("a b c d e f g h i j the and ", 10), "min_avg_word_length"},
		{"hashtags", strings.Repeat("# the word and more text here ", 20), "max_symbol_word_ratio"},
		{"bullets", strings.Repeat("- the item and another thing for you\n", 20), "max_bullet_lines"},
		{"ellipsis", strings.Repeat("the story goes on and on with the king and the queen of the land and then...\n", 20), "max_ellipsis_lines"},
		{"numbers", strings.Repeat("123 456 789 1011 the and 1213 1415 ", 20), "min_alpha_words"},
		{"no stop words", strings.Repeat("green apples fall quickly downward ", 20), "min_stop_words"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := g.Check(analyse(c.text)); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestGopherRepetition(t *testing.T) {
	g := DefaultGopherRepetition()
	repeatedLine := prose + "\n" + strings.Repeat("Click here to subscribe to our newsletter today.\n", 6)
	repeatedPara := prose + "\n\n" + prose + "\n\n" + prose
	ngram := prose + " " + strings.Repeat("buy cheap watches now ", 40)
	cases := []struct{ name, text, want string }{
		{"prose kept", prose, ""},
		{"repeated paragraphs", repeatedPara, "dup_para_frac"},
		{"repeated lines", repeatedLine, "dup_line_frac"},
		{"top 2-gram", ngram, "top_2gram_char_frac"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := g.Check(analyse(c.text)); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	// Duplicated 5-gram coverage, computed by hand: the 7-word phrase
	// occurs twice; the second occurrence covers one repeated 5-gram
	// (5 words) and the scan resumes after it.
	a := analyse("alpha beta gamma delta epsilon zeta eta x alpha beta gamma delta epsilon zeta eta")
	if got, want := dupNGramChars(a, 5), len("alphabetagammadeltaepsilon"); got != want {
		t.Fatalf("dupNGramChars = %d, want %d", got, want)
	}
	if got := dupNGramChars(analyse(prose), 5); got != 0 {
		t.Fatalf("prose has %d duplicated 5-gram chars", got)
	}
	// Top 2-gram: "b c" occurs 3 times, 2 chars each time.
	if got := topNGramChars(analyse("a b c b c x b c"), 2); got != 6 {
		t.Fatalf("topNGramChars = %d, want 6", got)
	}
}

func TestC4(t *testing.T) {
	c := DefaultC4()
	boiler := prose + "\nThis site uses cookies to improve your experience.\nHome | About | Contact\nPlease enable JavaScript to view the comments."
	text, rule, removed := c.Apply(analyse(boiler))
	if rule != "" || removed != 3 || text != prose {
		t.Fatalf("boilerplate: rule %q removed %d\n%s", rule, removed, text)
	}
	for _, tc := range []struct{ text, want string }{
		{prose + "\nLorem ipsum dolor sit amet.", "lorem_ipsum"},
		{prose + "\nfunc main() { return }.", "curly_bracket"},
		{"One short sentence here. And another one here.", "min_sentences"},
		{"no punctuation at all\nnone here either", "no_lines_left"},
		{prose + " " + strings.Repeat("x", 1001) + ".", "max_word_length"},
	} {
		if _, rule, _ := c.Apply(analyse(tc.text)); rule != tc.want {
			t.Errorf("%.30q: got %q, want %q", tc.text, rule, tc.want)
		}
	}
}

func TestFineWeb(t *testing.T) {
	f := DefaultFineWeb()
	cases := []struct{ name, text, want string }{
		{"prose kept", prose, ""},
		{"no punctuation", strings.ReplaceAll(prose, ".", ""), "line_punct"},
		{"short lines", strings.Repeat("Menu item one.\nAnother item.\n", 10) + prose, "short_lines"},
		{"duplicated lines", prose + "\n" + strings.Split(prose, "\n")[0], "dup_line_chars"},
		{"newline heavy", newlineHeavy(), "newline_to_word"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := f.Check(analyse(c.text)); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestTokenKLByHand checks KL(P‖Q) against a direct computation.
func TestTokenKLByHand(t *testing.T) {
	k := TokenKL{MaxKL: 1, MinTokens: 1, Buckets: 1 << 16}
	corpus := k.NewHistogram()
	docs := []string{"the cat sat on the mat", "the dog ate the cat food", "zebra"}
	for _, d := range docs {
		corpus.Add(analyse(d))
	}
	s := k.NewScorer(corpus)
	got, n, ok := s.Score(analyse(docs[0]))
	if !ok || n != 6 {
		t.Fatalf("Score: n=%d ok=%v", n, ok)
	}
	// p: the 2/6, cat mat sat on 1/6 each. q = (count+1)/(13+65536).
	den := 13.0 + 65536
	q := map[string]float64{"the": 5 / den, "cat": 3 / den, "sat": 2 / den, "on": 2 / den, "mat": 2 / den}
	p := map[string]float64{"the": 2.0 / 6, "cat": 1.0 / 6, "sat": 1.0 / 6, "on": 1.0 / 6, "mat": 1.0 / 6}
	want := 0.0
	for w, pw := range p {
		want += pw * math.Log(pw/q[w])
	}
	if math.Abs(got-want) > 1e-9 {
		t.Fatalf("KL = %v, want %v", got, want)
	}
}

// TestTokenKLOnCorpora: ordinary texts of the reference corpora score
// below the default threshold, a base64 payload above it.
func TestTokenKLOnCorpora(t *testing.T) {
	dir := "../../../shared/testdata/corpora"
	testenv.Testdata(t, dir)
	k := DefaultTokenKL()
	corpus := k.NewHistogram()
	var chunks []string
	for _, name := range []string{"kjv.txt", "jargon.txt", "debian-reference.en.txt", "fortunes.txt"} {
		b, err := os.ReadFile(dir + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		paras := strings.Split(string(b), "\n\n")
		for i := 0; i < len(paras); i += 20 {
			chunk := strings.Join(paras[i:min(i+20, len(paras))], "\n\n")
			chunks = append(chunks, chunk)
			corpus.Add(analyse(chunk))
		}
	}
	s := k.NewScorer(corpus)
	high := 0
	for _, c := range chunks {
		if s.Check(analyse(c)) != "" {
			high++
		}
	}
	if frac := float64(high) / float64(len(chunks)); frac > 0.005 {
		t.Fatalf("%.1f%% of %d corpus chunks flagged as outliers", 100*frac, len(chunks))
	}
	var b strings.Builder
	for i := range 200 {
		b.WriteString("TWFueSBoYW5kcyBtYWtlIGxpZ2h0IHdvcms" + string(rune('A'+i%26)) + string(rune('a'+i*7%26)) + " ")
	}
	if kl, _, _ := s.Score(analyse(b.String())); kl <= k.MaxKL {
		t.Fatalf("base64 payload KL %.2f not above %.2f", kl, k.MaxKL)
	}
}

// newlineHeavy has 3 long words per line: 10 newlines / 30 words > 0.3.
func newlineHeavy() string {
	var b strings.Builder
	for i := range 10 {
		b.WriteString("Extraordinarily comprehensive documentation" + strings.Repeat("s", i) + ".\n")
	}
	return b.String()
}
