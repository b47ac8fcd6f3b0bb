package tokenizer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// oraclePattern is Pattern for .NET-style regexp2. The only change is the
// contraction group: regexp2's IgnoreCase does not fold 'ſ' (U+017F) to 's'
// the way Rust's regex (tiktoken), Oniguruma (HF tokenizers) and the
// scanner do, so the case-insensitive group is spelled out with explicit
// Unicode simple case folding classes.
const oraclePattern = `'[sSſ]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

func oraclePieces(t testing.TB, re *regexp2.Regexp, s string) []string {
	t.Helper()
	var out []string
	m, err := re.FindStringMatch(s)
	for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
		out = append(out, m.String())
	}
	if err != nil {
		t.Fatalf("regexp2: %v", err)
	}
	return out
}

func comparePieces(t testing.TB, re *regexp2.Regexp, s string) {
	t.Helper()
	want := oraclePieces(t, re, s)
	var got []string
	for _, p := range pieces(nil, []byte(s)) {
		got = append(got, string(p))
	}
	if strings.Join(want, "") != s {
		t.Fatalf("oracle pieces do not cover %q: %q", s, want)
	}
	for i := 0; i < len(got) || i < len(want); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Fatalf("text %q: piece %d = %q, regex gives %q\n got: %q\nwant: %q", s, i, g, w, got, want)
		}
	}
}

func newOracle(t testing.TB) *regexp2.Regexp {
	re, err := regexp2.Compile(oraclePattern, regexp2.None)
	if err != nil {
		t.Fatal(err)
	}
	return re
}

func TestPiecesTable(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"Hello world", []string{"Hello", " world"}},
		{"I'm you'RE they'll we'VE he'D it'S don't", []string{"I", "'m", " you", "'RE", " they", "'ll", " we", "'VE", " he", "'D", " it", "'S", " don", "'t"}},
		{"'ſt", []string{"'ſ", "t"}},
		{"12345 1.5", []string{"123", "45", " ", "1", ".", "5"}},
		{"a  b", []string{"a", " ", " b"}},
		{"a   \n\n  b", []string{"a", "   \n\n", " ", " b"}},
		{"x.\r\n\r\ny", []string{"x", ".\r\n\r\n", "y"}},
		{"end  ", []string{"end", "  "}},
		{" \n \n", []string{" \n \n"}},
		{"\tfoo", []string{"\tfoo"}},
		{" !!", []string{" !!"}},
		{"  !!", []string{" ", " !!"}},
		{"e\u0301", []string{"e", "\u0301"}},
		{"\xff\xfeabc", []string{"\xff\xfe", "abc"}},
		{"\xff\xe2abc", []string{"\xff\xe2", "abc"}},
		{"東京の人口は？", []string{"東京の人口は", "？"}},
	}
	re := newOracle(t)
	for _, c := range cases {
		var got []string
		for _, p := range pieces(nil, []byte(c.in)) {
			got = append(got, string(p))
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") || len(got) != len(c.want) {
			t.Errorf("pieces(%q) = %q, want %q", c.in, got, c.want)
		}
		if utf8.ValidString(c.in) {
			comparePieces(t, re, c.in)
		}
	}
}

// alphabet holds characters from every class the scanner distinguishes,
// with the edge cases of the pattern: CR/LF, Unicode spaces, letters and
// numbers outside ASCII, combining marks, apostrophes and contraction letters.
var alphabet = []rune{
	' ', ' ', ' ', '\n', '\r', '\t', '\v', '\f', 0x85, 0xA0, 0x1680, 0x2000, 0x2028, 0x2029, 0x202F, 0x3000,
	'a', 'b', 's', 'S', 't', 'T', 'r', 'e', 'E', 'v', 'l', 'L', 'm', 'd', 'D', 'ſ', 'K', 'é', 'ß', 'ж', 'λ', '東', 'ا', 'ก', 0x01C5,
	'0', '7', '²', '½', 'Ⅻ', '٣', '৪', '𝟘',
	'\'', '\'', '\'', '’', '.', ',', '!', '?', '-', '_', '"', '(', '{', '<', '|', '>', 0x301, 0x200D, 0xFE0F, 0x1F600, 0xFFFD, 0, 0x1F, 0x1C,
}

func randomText(rng *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		b.WriteRune(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}

func TestPiecesMatchRegexRandom(t *testing.T) {
	re := newOracle(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		comparePieces(t, re, randomText(rng, rng.IntN(40)))
	}
}

// TestPiecesMatchRegexCorpora compares the scanner with the regex on real
// text: the reference encode cases and slices of the corpora.
func TestPiecesMatchRegexCorpora(t *testing.T) {
	re := newOracle(t)
	n := 0
	for _, c := range loadEncodeCases(t) {
		comparePieces(t, re, c.Text)
		n++
	}
	dir := filepath.Join(testdata, "corpora")
	for _, name := range []string{"jargon.txt", "debian-reference.en.txt", "fortunes.txt"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+4096 <= len(data); off += len(data) / 8 {
			chunk := strings.ToValidUTF8(string(data[off:off+4096]), "\uFFFD")
			comparePieces(t, re, chunk)
			n++
		}
	}
	t.Logf("%d texts agree with the regex", n)
}

func FuzzPieces(f *testing.F) {
	for _, s := range []string{"Hello world", "I'M here\r\n\r\n  x", "  \t\n", "'ſ", "12345", "\xff\xc5", "a\u0301b"} {
		f.Add(s)
	}
	re := newOracle(f)
	f.Fuzz(func(t *testing.T, s string) {
		ps := pieces(nil, []byte(s))
		var b strings.Builder
		for _, p := range ps {
			if len(p) == 0 {
				t.Fatalf("empty piece in %q", s)
			}
			b.Write(p)
		}
		if b.String() != s {
			t.Fatalf("pieces of %q concatenate to %q", s, b.String())
		}
		if utf8.ValidString(s) {
			comparePieces(t, re, s)
		}
	})
}
