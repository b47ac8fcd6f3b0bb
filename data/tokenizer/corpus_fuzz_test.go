package tokenizer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParquetCorpus feeds damaged Parquet files to the training reader:
// it must return an error or the texts, never panic or hang.
//
// The fuzzer damages valid files (base picks one: string, INT64 and
// repeated "text" columns) by writing patch at offset at and cutting cut
// bytes off the end, instead of mutating whole files: its inputs stay a
// few bytes long, so minimizing an interesting one takes milliseconds
// rather than the whole run.
func FuzzParquetCorpus(f *testing.F) {
	type doc struct {
		Text string `parquet:"text"`
	}
	type intDoc struct {
		Text int64 `parquet:"text"`
	}
	type listDoc struct {
		Text []string `parquet:"text"`
	}
	bases := [][]byte{
		parquetBytes(f, []doc{{"package main"}, {"func f() {}"}, {""}}),
		// An INT64 "text" column used to be read as bytes and panic.
		parquetBytes(f, []intDoc{{1}, {1 << 40}}),
		parquetBytes(f, []listDoc{{[]string{"a", "b"}}, {nil}}),
	}
	good := bases[0]
	f.Add(uint8(0), uint16(0), []byte(nil), uint16(0))
	f.Add(uint8(1), uint16(0), []byte(nil), uint16(0))
	f.Add(uint8(2), uint16(0), []byte(nil), uint16(0))
	for _, at := range []int{4, len(good) / 3, len(good) / 2, len(good) - 12, len(good) - 6} {
		f.Add(uint8(0), uint16(at), []byte{good[at] ^ 0xff}, uint16(0))
	}
	f.Add(uint8(0), uint16(0), []byte(nil), uint16(len(good)/2))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, base uint8, at uint16, patch []byte, cut uint16) {
		data := damage(bases[int(base)%len(bases)], int(at), patch, int(cut))
		path := filepath.Join(dir, "docs-00000.parquet")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		total := 0
		_ = parquetFile(path).Each(context.Background(), func(b []byte) error {
			total += len(b)
			if total > 1<<20 {
				t.Fatalf("read %d bytes from a %d-byte file", total, len(data))
			}
			return nil
		})
	})
}

// damage returns a copy of file with patch written at offset at (modulo
// the file length, clipped at its end) and cut bytes (modulo the length)
// removed from its end.
func damage(file []byte, at int, patch []byte, cut int) []byte {
	data := bytes.Clone(file)
	if len(data) == 0 {
		return data
	}
	copy(data[at%len(data):], patch)
	return data[:len(data)-cut%len(data)]
}
