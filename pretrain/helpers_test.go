package pretrain

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/herdml/herd/data/tokens/tokenstest"
)

// synthSource writes a source of n documents in files of perFile
// documents, rowGroup documents per row group, and returns its directory.
func synthSource(t testing.TB, dir, name string, n, perFile, rowGroup, vocab int, seed uint64, minLen, maxLen int) string {
	t.Helper()
	rows := tokenstest.SynthRows(name, n, vocab, seed, minLen, maxLen)
	d := filepath.Join(dir, name)
	for f := 0; f*perFile < n; f++ {
		tokenstest.WriteShard(t, filepath.Join(d, fmt.Sprintf("tokens-%05d.parquet", f)), rows[f*perFile:min(n, (f+1)*perFile)], rowGroup)
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

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
