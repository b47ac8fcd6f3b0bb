package tokenizer

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// naiveTrain is BPE training written the slow, obvious way: recount every
// pair over every word before each merge. It is the oracle for trainCounts.
func naiveTrain(counts *wordCounts, vocabSize int, minFreq int64) ([]Merge, [][]byte) {
	var words [][]int32
	var wc []int64
	for k, p := range counts.pieces {
		w := make([]int32, len(p))
		for i := range len(p) {
			w[i] = int32(p[i])
		}
		words = append(words, w)
		wc = append(wc, counts.counts[k])
	}
	tokens := make([][]byte, 256)
	for b := range 256 {
		tokens[b] = []byte{byte(b)}
	}
	var merges []Merge
	for len(tokens) < vocabSize-NumSpecial {
		pc := map[Merge]int64{}
		for w, syms := range words {
			for i := 0; i+1 < len(syms); i++ {
				pc[Merge{syms[i], syms[i+1]}] += wc[w]
			}
		}
		var best Merge
		var bc int64 = -1
		for p, c := range pc {
			if c > bc || c == bc && (p.Left < best.Left || p.Left == best.Left && p.Right < best.Right) {
				best, bc = p, c
			}
		}
		if bc < minFreq {
			break
		}
		cat := append(append([]byte{}, tokens[best.Left]...), tokens[best.Right]...)
		id := int32(-1)
		for i, t := range tokens {
			if bytes.Equal(t, cat) {
				id = int32(i)
			}
		}
		if id < 0 {
			id = int32(len(tokens))
			tokens = append(tokens, cat)
		}
		merges = append(merges, best)
		for w, syms := range words {
			var out []int32
			for i := 0; i < len(syms); i++ {
				if i+1 < len(syms) && syms[i] == best.Left && syms[i+1] == best.Right {
					out = append(out, id)
					i++
				} else {
					out = append(out, syms[i])
				}
			}
			words[w] = out
		}
	}
	return merges, tokens
}

func countsOf(texts ...string) *wordCounts {
	c := newWordCounts()
	for _, t := range texts {
		c.Add([]byte(t))
	}
	return c
}

// TestTrainMatchesNaive compares the incremental trainer with the naive one
// on random texts over a small alphabet (many ties, repeated symbols such
// as "aaaa", and merges that reach an existing token by another split) and
// on real prose.
func TestTrainMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var inputs []*wordCounts
	for range 20 {
		var b strings.Builder
		for range 400 {
			b.WriteByte("aab b\nc'"[rng.IntN(8)])
		}
		inputs = append(inputs, countsOf(b.String()))
	}
	if _, err := os.Stat(testdata); err == nil {
		data, err := os.ReadFile(filepath.Join(testdata, "corpora", "dict-devil.txt"))
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, countsOf(string(data[:20000])))
	}
	for i, c := range inputs {
		for _, vs := range []int{520, 600} {
			wantMerges, wantTokens := naiveTrain(c, vs, 2)
			tok, err := trainCounts(context.Background(), c, TrainOptions{VocabSize: vs, MinFrequency: 2})
			if err != nil {
				t.Fatal(err)
			}
			got := tok.Merges()
			if len(got) != len(wantMerges) {
				t.Fatalf("input %d, vocab %d: %d merges, naive %d", i, vs, len(got), len(wantMerges))
			}
			for k := range got {
				if got[k] != wantMerges[k] {
					t.Fatalf("input %d, vocab %d: merge %d = %v, naive %v", i, vs, k, got[k], wantMerges[k])
				}
			}
			if tok.NumBPE() != len(wantTokens) {
				t.Fatalf("input %d: %d tokens, naive %d", i, tok.NumBPE(), len(wantTokens))
			}
		}
	}
}

// TestCutPoint checks that a chunk boundary chosen by cutPoint is always a
// pre-token boundary of the whole text.
func TestCutPoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 3000 {
		text := []byte(randomText(rng, 60))
		bounds := map[int]bool{}
		off := 0
		for _, p := range pieces(nil, text) {
			off += len(p)
			bounds[off] = true
		}
		for k := 1; k < len(text); k++ {
			if p := cutPoint(text[:k]); p >= 0 && !bounds[p] {
				t.Fatalf("cutPoint(%q) = %d, not a piece boundary of %q", text[:k], p, text)
			}
		}
	}
}

// TestCountCorpusChunked streams a corpus larger than one chunk and gets
// the counts of the whole text.
func TestCountCorpusChunked(t *testing.T) {
	needRef(t)
	path := filepath.Join(testdata, "corpora", "jargon.txt")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := countCorpus(context.Background(), []Corpus{textFile(path)}, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := countsOf(string(data))
	if n != int64(len(data)) || got.Len() != want.Len() {
		t.Fatalf("%d bytes, %d distinct; want %d, %d", n, got.Len(), len(data), want.Len())
	}
	for k, p := range want.pieces {
		if got.Count(p) != want.counts[k] {
			t.Fatalf("piece %q: %d, want %d", p, got.Count(p), want.counts[k])
		}
	}
}

type doc struct {
	ID   int64  `parquet:"id"`
	Text string `parquet:"text"`
}

// TestTrainParquetDeterministic trains from a Parquet shard and from the
// same documents as text streams: same counts, same vocabulary, whatever
// the number of workers.
func TestTrainParquetDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var docs []doc
	for i := range 300 {
		docs = append(docs, doc{ID: int64(i), Text: "Doc " + randomText(rng, 80) + " the end.\n"})
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "docs-00000.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := parquet.Write(f, docs); err != nil {
		t.Fatal(err)
	}
	f.Close()
	corpora, err := OpenCorpus([]string{dir}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	opts := TrainOptions{VocabSize: 700, Workers: 1}
	a, err := Train(context.Background(), corpora, opts)
	if err != nil {
		t.Fatal(err)
	}
	var streams []Corpus
	for _, d := range docs {
		streams = append(streams, ReaderCorpus("doc", strings.NewReader(d.Text)))
	}
	opts.Workers = 3
	b, err := Train(context.Background(), streams, opts)
	if err != nil {
		t.Fatal(err)
	}
	assertSameTokenizer(t, a, b)
	if a.VocabSize() != 700 || a.NumBPE() != 700-NumSpecial {
		t.Fatalf("vocab %d, bpe %d", a.VocabSize(), a.NumBPE())
	}
	for i, name := range LlamaSpecials() {
		if id, ok := a.SpecialID(name); !ok || int(id) != a.NumBPE()+i {
			t.Fatalf("special %s at %d, want %d", name, id, a.NumBPE()+i)
		}
	}
}

// TestTrainedTokenizer trains on prose, writes tokenizer.json, reads it
// back, and checks round trips and the chat format.
func TestTrainedTokenizer(t *testing.T) {
	needRef(t)
	path := filepath.Join(testdata, "corpora", "dict-devil.txt")
	tok, err := Train(context.Background(), []Corpus{textFile(path)}, TrainOptions{VocabSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := tok.WriteHF(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	assertSameTokenizer(t, tok, back)
	data, _ := os.ReadFile(path)
	ids := back.Encode(data)
	if dec, _ := back.Decode(ids); !bytes.Equal(dec, data) {
		t.Fatal("round trip failed")
	}
	if ratio := float64(len(data)) / float64(len(ids)); ratio < 2.0 {
		t.Fatalf("compression %.2f bytes/token is implausibly low for a 1024-token vocabulary on its training text", ratio)
	}
	c, err := back.RenderChat([]Message{{Role: "user", Content: "Define cynic."}, {Role: "assistant", Content: "A blackguard."}}, ChatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sp := back.EncodeSpecial([]byte(c.Text)); !slices.Equal(sp, c.IDs) {
		t.Fatalf("chat ids %v differ from EncodeSpecial(text) %v", c.IDs, sp)
	}
}

func TestTrainErrors(t *testing.T) {
	if _, err := trainCounts(context.Background(), countsOf("abc"), TrainOptions{VocabSize: 300}); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("small vocab: %v", err)
	}
	if _, err := OpenCorpus([]string{filepath.Join(t.TempDir(), "none*.txt")}, nil, ""); err == nil {
		t.Error("empty glob accepted")
	}
	bad := filepath.Join(t.TempDir(), "docs-1.parquet")
	os.WriteFile(bad, []byte("not parquet"), 0o644)
	if _, err := Train(context.Background(), []Corpus{parquetFile(bad)}, TrainOptions{VocabSize: 600}); err == nil || !strings.Contains(err.Error(), "Parquet") {
		t.Errorf("garbled parquet: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Train(ctx, []Corpus{ReaderCorpus("x", strings.NewReader(strings.Repeat("abc ", 1<<19)))}, TrainOptions{VocabSize: 600}); err == nil {
		t.Error("cancelled training succeeded")
	}
}

// failCorpus fails the test if it is read: options must be checked before
// the corpus is counted.
type failCorpus struct{ t *testing.T }

func (c failCorpus) Each(context.Context, func([]byte) error) error {
	c.t.Error("corpus read before the options were checked")
	return errors.New("read")
}

// TestTrainOptionsChecked: every out-of-range option is an error naming
// the option and its range, before any input is read and before any
// allocation sized by the option.
func TestTrainOptionsChecked(t *testing.T) {
	cases := []struct {
		name string
		o    TrainOptions
		want []string
	}{
		{"vocab huge", TrainOptions{VocabSize: 1_000_000_000}, []string{"VocabSize 1000000000", "513", "1048576"}},
		{"vocab bytes and specials only", TrainOptions{VocabSize: 512}, []string{"VocabSize 512", "513", "no merge"}},
		{"vocab tiny", TrainOptions{VocabSize: 300}, []string{"VocabSize 300", "513"}},
		{"vocab negative", TrainOptions{VocabSize: -5}, []string{"VocabSize -5"}},
		{"min frequency negative", TrainOptions{VocabSize: 600, MinFrequency: -5}, []string{"MinFrequency -5"}},
		{"workers negative", TrainOptions{VocabSize: 600, Workers: -1}, []string{"Workers -1", "1024"}},
		{"workers huge", TrainOptions{VocabSize: 600, Workers: 1 << 30}, []string{"Workers", "1024"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Train(context.Background(), []Corpus{failCorpus{t}}, tc.o)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, err := trainCounts(context.Background(), countsOf("abc abc"), tc.o); err == nil {
				t.Error("TrainCounts accepted the options")
			}
		})
	}
	// The smallest vocabulary learns its one merge.
	tok, err := trainCounts(context.Background(), countsOf("abab abab"), TrainOptions{VocabSize: MinVocabSize})
	if err != nil || len(tok.Merges()) != 1 {
		t.Fatalf("VocabSize %d: %v", MinVocabSize, err)
	}
}

// TestTrainNoMergeWarns: training that learns no merge at all (no pair
// occurs MinFrequency times) says so plainly.
func TestTrainNoMergeWarns(t *testing.T) {
	var log bytes.Buffer
	tok, err := trainCounts(context.Background(), countsOf("abc xyz"), TrainOptions{VocabSize: 600, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.Merges()) != 0 || !strings.Contains(log.String(), "learned no merge") || !strings.Contains(log.String(), "level=WARN") {
		t.Fatalf("%d merges, log:\n%s", len(tok.Merges()), log.String())
	}
}
