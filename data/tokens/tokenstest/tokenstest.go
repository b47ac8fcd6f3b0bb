// Package tokenstest makes token shards, document shards and tokenizers
// for tests.
package tokenstest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/herdml/herd/data/shard"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/data/tokens"
)

// WriteShard writes rows as a token shard with rowGroup documents per
// row group.
func WriteShard(t testing.TB, path string, rows []tokens.TokenRow, rowGroup int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[tokens.TokenRow](f, parquet.Compression(&zstd.Codec{Level: zstd.SpeedFastest}),
		parquet.MaxRowsPerRowGroup(int64(rowGroup)))
	for i := range rows {
		rows[i].NumTokens = int32(len(rows[i].Tokens))
	}
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	addToManifest(t, path, rows)
}

// addToManifest lists a token shard in the manifest.json beside it (made
// when missing), as a tokenize run would.
func addToManifest(t testing.TB, path string, rows []tokens.TokenRow) {
	t.Helper()
	dir := filepath.Dir(path)
	m, err := tokens.ReadManifest(dir)
	if err != nil {
		m = &tokens.Manifest{Format: tokens.ManifestFormat, Tokenizer: tokens.TokenizerInfo{Hash: "synthetic", VocabSize: 1, BOS: -1, EOS: -1}, Sources: map[string]tokens.Counts{}}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	si := tokens.ShardInfo{File: filepath.Base(path), Sources: map[string]tokens.Counts{}, Bytes: st.Size()}
	for _, r := range rows {
		c := tokens.Counts{Docs: 1, Tokens: int64(len(r.Tokens))}
		si.Add(c)
		sc := si.Sources[r.Source]
		sc.Add(c)
		si.Sources[r.Source] = sc
		for _, id := range r.Tokens {
			m.Tokenizer.VocabSize = max(m.Tokenizer.VocabSize, int(id)+1)
		}
	}
	m.Shards = slices.DeleteFunc(m.Shards, func(x tokens.ShardInfo) bool { return x.File == si.File })
	m.Shards = append(m.Shards, si)
	slices.SortFunc(m.Shards, func(a, b tokens.ShardInfo) int { return strings.Compare(a.File, b.File) })
	m.Total = tokens.Counts{}
	for _, x := range m.Shards {
		m.Total.Add(x.Counts)
	}
	if err := tokens.WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
}

// SynthRows makes n documents of a toy language over vocab tokens: each
// document repeats a short random motif with noise, so a model can learn
// it. Token 0 is BOS, 1 is EOS.
func SynthRows(name string, n, vocab int, seed uint64, minLen, maxLen int) []tokens.TokenRow {
	rng := rand.New(rand.NewPCG(seed, 7))
	rows := make([]tokens.TokenRow, n)
	for i := range rows {
		l := minLen + rng.IntN(maxLen-minLen+1)
		motif := make([]int32, 2+rng.IntN(4))
		for j := range motif {
			motif[j] = int32(2 + rng.IntN(vocab-2))
		}
		toks := []int32{0}
		for len(toks) < l-1 {
			v := motif[len(toks)%len(motif)]
			if rng.IntN(10) == 0 {
				v = int32(2 + rng.IntN(vocab-2))
			}
			toks = append(toks, v)
		}
		toks = append(toks, 1)
		rows[i] = tokens.TokenRow{ID: fmt.Sprintf("%s-%d", name, i), Source: name, Ordinal: int64(i), Quality: float32(i%10) / 10, Tokens: toks}
	}
	return rows
}

// WriteDocs writes curated document shards docs-00000.parquet, … with
// perFile documents each.
func WriteDocs(t testing.TB, dir string, rows []shard.Row, perFile int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f := 0; f*perFile < len(rows); f++ {
		w, err := shard.Create[shard.Row](filepath.Join(dir, fmt.Sprintf("docs-%05d.parquet", f)), 64)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(rows[f*perFile : min(len(rows), (f+1)*perFile)]...); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// TrainTokenizer trains a small BPE vocabulary on texts and writes it to dir.
func TrainTokenizer(t testing.TB, dir string, texts []string, vocab int) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Train(context.Background(), []tokenizer.Corpus{tokenizer.ReaderCorpus("docs", strings.NewReader(strings.Join(texts, "\n")))},
		tokenizer.TrainOptions{VocabSize: vocab})
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.WriteHF(dir); err != nil {
		t.Fatal(err)
	}
	return tok
}
