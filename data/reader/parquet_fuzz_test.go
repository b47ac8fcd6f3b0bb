package reader

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// FuzzParquetInput feeds damaged Parquet files to the curation reader: an
// error or records, never a panic, hang or huge allocation.
//
// The fuzzer damages a valid file by writing patch at offset at and
// cutting cut bytes off the end, instead of mutating whole files: its
// inputs stay a few bytes long, so minimizing an interesting one takes
// milliseconds rather than the whole run.
func FuzzParquetInput(f *testing.F) {
	type row struct {
		ID   string `parquet:"id"`
		Text string `parquet:"text"`
	}
	var buf bytes.Buffer
	if err := parquet.Write(&buf, []row{{"a", "hello world"}, {"b", "second document"}}); err != nil {
		f.Fatal(err)
	}
	good := buf.Bytes()
	f.Add(uint16(0), []byte(nil), uint16(0))
	for _, at := range []int{4, 20, len(good) / 2, len(good) - 12, len(good) - 6, len(good) - 5} {
		f.Add(uint16(at), []byte{good[at] ^ 0xff}, uint16(0))
	}
	f.Add(uint16(0), []byte(nil), uint16(3))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, at uint16, patch []byte, cut uint16) {
		data := bytes.Clone(good)
		copy(data[int(at)%len(data):], patch)
		data = data[:len(data)-int(cut)%len(data)]
		path := filepath.Join(dir, "in.parquet")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := Default()
		cfg.Paths = []string{path}
		units, err := Plan(cfg)
		if err != nil {
			return
		}
		n := 0
		for _, u := range units {
			_ = Read(context.Background(), u, cfg, nil, func(*Record) error {
				if n++; n > 1000 {
					t.Fatalf("%d records from a %d-byte file", n, len(data))
				}
				return nil
			})
		}
	})
}
