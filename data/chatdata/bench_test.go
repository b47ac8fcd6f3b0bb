package chatdata

import (
	"context"
	"testing"
)

// BenchmarkSFTLoader measures the whole SFT pipeline, amortized: reading,
// parsing, rendering and tokenizing rows, shuffling and packing them into
// 8×512 batches. (Serving batches from a filled window allocates nothing:
// TestSteadyStateAllocs.)
func BenchmarkSFTLoader(b *testing.B) {
	tok := testTokenizer(b)
	p := writeFile(b, b.TempDir(), "a.jsonl", jsonl(sftLines))
	l := must(NewSFTLoader(SFTOptions{Options: Options{Paths: []string{p}, Tokenizer: tok, Encode: EncodeOptions{SeqLen: 512}, Shuffle: 256}, Rows: 8, Pack: true}, nil))
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := l.Next(ctx); err != nil {
			b.Fatal(err)
		}
		n += l.Examples()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "examples/s")
}
