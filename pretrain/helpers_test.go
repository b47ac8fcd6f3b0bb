package pretrain

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// writeTokenShard writes rows as a token shard with rowGroup documents per
// row group.
func writeTokenShard(t testing.TB, path string, rows []TokenRow, rowGroup int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[TokenRow](f, parquet.Compression(&zstd.Codec{Level: zstd.SpeedFastest}),
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
// when missing), as `pretrain tokenize` would.
func addToManifest(t testing.TB, path string, rows []TokenRow) {
	t.Helper()
	dir := filepath.Dir(path)
	m, err := ReadManifest(dir)
	if err != nil {
		m = &Manifest{Format: manifestFormat, Tokenizer: TokenizerInfo{Hash: "synthetic", VocabSize: 1, BOS: -1, EOS: -1}, Sources: map[string]Counts{}}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	si := ShardInfo{File: filepath.Base(path), Sources: map[string]Counts{}, Bytes: st.Size()}
	for _, r := range rows {
		c := Counts{Docs: 1, Tokens: int64(len(r.Tokens))}
		si.add(c)
		sc := si.Sources[r.Source]
		sc.add(c)
		si.Sources[r.Source] = sc
		for _, id := range r.Tokens {
			m.Tokenizer.VocabSize = max(m.Tokenizer.VocabSize, int(id)+1)
		}
	}
	m.Shards = slices.DeleteFunc(m.Shards, func(x ShardInfo) bool { return x.File == si.File })
	m.Shards = append(m.Shards, si)
	slices.SortFunc(m.Shards, func(a, b ShardInfo) int { return strings.Compare(a.File, b.File) })
	m.Total = Counts{}
	for _, x := range m.Shards {
		m.Total.add(x.Counts)
	}
	if err := writeManifest(dir, m); err != nil {
		t.Fatal(err)
	}
}

// synthRows makes n documents of a toy language over vocab tokens: each
// document repeats a short random motif with noise, so a model can learn
// it. Token 0 is BOS, 1 is EOS.
func synthRows(name string, n, vocab int, seed uint64, minLen, maxLen int) []TokenRow {
	rng := rand.New(rand.NewPCG(seed, 7))
	rows := make([]TokenRow, n)
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
		rows[i] = TokenRow{ID: fmt.Sprintf("%s-%d", name, i), Source: name, Ordinal: int64(i), Quality: float32(i%10) / 10, Tokens: toks}
	}
	return rows
}

// synthSource writes a source of n documents in files of perFile
// documents, rowGroup documents per row group, and returns its directory.
func synthSource(t testing.TB, dir, name string, n, perFile, rowGroup, vocab int, seed uint64, minLen, maxLen int) string {
	t.Helper()
	rows := synthRows(name, n, vocab, seed, minLen, maxLen)
	d := filepath.Join(dir, name)
	for f := 0; f*perFile < n; f++ {
		writeTokenShard(t, filepath.Join(d, fmt.Sprintf("tokens-%05d.parquet", f)), rows[f*perFile:min(n, (f+1)*perFile)], rowGroup)
	}
	return d
}

// tinyRecipe is a fast recipe over synthetic sources.
func tinyRecipe(out string, sources ...Source) Recipe {
	r := Default()
	r.Out = out
	r.Workers = 2
	r.Model = ModelSpec{VocabSize: 32, HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 2, NumAttentionHeads: 4,
		NumKeyValueHeads: 2, RMSNormEps: 1e-5, RopeTheta: 10000, TieWordEmbeddings: true, InitializerRange: 0.02}
	r.Data.Sources = sources
	r.Data.HeldOut = 0.05
	r.Train = Train{Steps: 12, SeqLen: 32, BatchTokens: 256, MicroBatch: 4, MaxBadSteps: 3, LogEvery: 5}
	r.Optim.Warmup = 2
	r.Eval = Eval{Every: 5, Tokens: 512, Batch: 4, SampleTokens: 8, Temperature: 0.8, TopK: 10}
	r.Checkpoint = CheckpointSpec{Every: 3, Keep: 3}
	return r
}

func weight(w float64) *float64 { return &w }
