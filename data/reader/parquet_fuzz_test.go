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
	f.Add(good)
	for _, at := range []int{4, 20, len(good) / 2, len(good) - 12, len(good) - 6, len(good) - 5} {
		bad := bytes.Clone(good)
		bad[at] ^= 0xff
		f.Add(bad)
	}
	f.Add(good[:len(good)-3])
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
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
