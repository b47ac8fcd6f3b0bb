package tokenizer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"

	"github.com/herdml/herd/internal/benchutil"
)

// benchProse returns up to n bytes of English prose from the corpora.
func benchProse(b *testing.B, n int) []byte {
	needRef(b)
	var out []byte
	for _, name := range []string{"jargon.txt", "fortunes.txt", "kjv.txt"} {
		data, err := os.ReadFile(filepath.Join(testdata, "corpora", name))
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, data...)
		if len(out) >= n {
			return out[:n]
		}
	}
	return out
}

// goSource returns up to n bytes of Go source from the Go distribution.
func goSource(tb testing.TB, n int) []byte {
	dir := filepath.Join(runtime.GOROOT(), "src", "net", "http")
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	more, _ := filepath.Glob(filepath.Join(runtime.GOROOT(), "src", "runtime", "*.go"))
	files = append(files, more...)
	sort.Strings(files)
	var out []byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		out = append(out, data...)
		if len(out) >= n {
			return out[:n]
		}
	}
	if len(out) == 0 {
		tb.Skip("no Go source found under GOROOT")
	}
	return out
}

func benchEncode(b *testing.B, text []byte) {
	tok := loadRef(b)
	b.SetBytes(int64(len(text)))
	var ids []int32
	cpu0 := benchutil.CPUSeconds()
	for b.Loop() {
		ids = tok.AppendEncode(ids[:0], text, false)
	}
	reportCPU(b, cpu0, len(text))
	b.ReportMetric(float64(len(text))/float64(len(ids)), "bytes/token")
}

func BenchmarkEncodeProse(b *testing.B)    { benchEncode(b, benchProse(b, 4<<20)) }
func BenchmarkEncodeGoSource(b *testing.B) { benchEncode(b, goSource(b, 4<<20)) }

// BenchmarkEncodeLongPiece encodes one 1 MiB pre-token (a run of letters
// from prose with its spaces and punctuation removed): the heap merge of
// pathological input.
func BenchmarkEncodeLongPiece(b *testing.B) {
	var run []byte
	for _, c := range benchProse(b, 2<<20) {
		if c|0x20 >= 'a' && c|0x20 <= 'z' {
			run = append(run, c)
		}
	}
	b.ReportAllocs()
	benchEncode(b, run[:1<<20])
}

// reportCPU reports MB per CPU second since cpu0 for b.N runs over n bytes.
func reportCPU(b *testing.B, cpu0 float64, n int) {
	benchutil.ReportMBPerCPUSecond(b, cpu0, int64(n))
}

// BenchmarkTrain8192 trains an 8,192-id vocabulary on 20 MB of mixed
// English prose and Go source.
func BenchmarkTrain8192(b *testing.B) {
	text := append(benchProse(b, 14<<20), goSource(b, 6<<20)...)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok, err := Train(context.Background(), []Corpus{ReaderCorpus("bench", bytes.NewReader(text))}, TrainOptions{VocabSize: 8192})
		if err != nil {
			b.Fatal(err)
		}
		if tok.VocabSize() != 8192 {
			b.Fatalf("vocab %d", tok.VocabSize())
		}
	}
}

// BenchmarkLoadRef reads the 9 MB reference tokenizer.json.
func BenchmarkLoadRef(b *testing.B) {
	needRef(b)
	for b.Loop() {
		if _, err := Load(refDir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPretokenize measures the pre-tokenizer alone on English prose.
func BenchmarkPretokenize(b *testing.B) {
	text := benchProse(b, 4<<20)
	b.SetBytes(int64(len(text)))
	n := 0
	for b.Loop() {
		n = 0
		for i := 0; i < len(text); n++ {
			i = nextPiece(text, i)
		}
	}
	b.ReportMetric(float64(n), "pieces")
}
