package tokenizer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// FuzzParquetCorpus feeds damaged Parquet files to the training reader:
// it must return an error or the texts, never panic or hang.
func FuzzParquetCorpus(f *testing.F) {
	type doc struct {
		Text string `parquet:"text"`
	}
	var buf bytes.Buffer
	if err := parquet.Write(&buf, []doc{{"package main"}, {"func f() {}"}, {""}}); err != nil {
		f.Fatal(err)
	}
	good := buf.Bytes()
	f.Add(good)
	for _, at := range []int{4, len(good) / 3, len(good) / 2, len(good) - 12, len(good) - 6} {
		bad := bytes.Clone(good)
		bad[at] ^= 0xff
		f.Add(bad)
	}
	f.Add(good[:len(good)/2])
	// Well-formed files whose "text" column is not one string per row: an
	// INT64 column used to be reinterpreted as bytes and panic.
	type intDoc struct {
		Text int64 `parquet:"text"`
	}
	type listDoc struct {
		Text []string `parquet:"text"`
	}
	f.Add(parquetBytes(f, []intDoc{{1}, {1 << 40}}))
	f.Add(parquetBytes(f, []listDoc{{[]string{"a", "b"}}, {nil}}))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "docs-00000.parquet")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		total := 0
		_ = ParquetFile(path).Each(context.Background(), func(b []byte) error {
			total += len(b)
			if total > 1<<20 {
				t.Fatalf("read %d bytes from a %d-byte file", total, len(data))
			}
			return nil
		})
	})
}
