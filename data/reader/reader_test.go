package reader

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
)

const jsonl = `{"id": "a", "text": "first doc", "url": "https://x.test/1", "date": "2024-01-02"}
{"text": "no id here"}
{broken json
{"id": "c", "body": "wrong field"}

{"id": "d", "text": "last"}`

func readAll(t *testing.T, cfg Config) []*Record {
	t.Helper()
	units, err := Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []*Record
	for _, u := range units {
		err := Read(context.Background(), u, cfg, nil, func(r *Record) error {
			out = append(out, r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestJSONLVariants(t *testing.T) {
	dir := t.TempDir()
	var gz, zs bytes.Buffer
	g := gzip.NewWriter(&gz)
	g.Write([]byte(jsonl))
	g.Close()
	z, _ := zstd.NewWriter(&zs)
	z.Write([]byte(jsonl))
	z.Close()
	files := map[string][]byte{"a.jsonl": []byte(jsonl), "b.jsonl.gz": gz.Bytes(), "c.jsonl.zst": zs.Bytes()}
	for name, data := range files {
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	cfg := Default()
	cfg.Paths = []string{dir}
	recs := readAll(t, cfg)
	if len(recs) != 15 {
		t.Fatalf("%d records, want 15", len(recs))
	}
	for f := range 3 {
		r := recs[f*5:]
		if r[0].Doc.ID != "a" || r[0].Doc.URL != "https://x.test/1" || r[0].Doc.Date != "2024-01-02" || r[0].Problem != "" {
			t.Fatalf("record 0: %+v", r[0])
		}
		if !strings.HasSuffix(r[1].Doc.ID, ":2") || r[1].Doc.Text != "no id here" {
			t.Fatalf("record 1 id %q", r[1].Doc.ID)
		}
		if r[2].Problem != "malformed_json" || !strings.HasSuffix(r[2].Doc.Origin, ":3") {
			t.Fatalf("record 2: %+v", r[2])
		}
		if r[3].Problem != "missing_text" {
			t.Fatalf("record 3: %+v", r[3])
		}
		if r[4].Doc.ID != "d" || !strings.HasSuffix(r[4].Doc.Origin, ":6") || r[4].Doc.Ordinal != uint64(f)<<32|4 {
			t.Fatalf("record 4: %+v", r[4].Doc)
		}
	}
}

func TestTextDirAndUnits(t *testing.T) {
	dir := t.TempDir()
	for i, name := range []string{"b.txt", "a.txt", "skip.md", "sub/c.txt", "testdata/x.txt"} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(strings.Repeat("x", i+1)), 0o644)
	}
	cfg := Default()
	cfg.Paths = []string{dir}
	cfg.Extensions = []string{".txt"}
	cfg.Exclude = []string{"testdata"}
	cfg.FilesPerUnit = 2
	units, err := Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 2 || len(units[0].Files) != 2 || filepath.Base(units[0].Files[0]) != "a.txt" {
		t.Fatalf("units %+v", units)
	}
	recs := readAll(t, cfg)
	if len(recs) != 3 || recs[0].Doc.Text != "xx" || recs[2].Doc.Ordinal != 1<<32 {
		t.Fatalf("records %+v", recs)
	}
	if _, err := Plan(Config{Paths: []string{filepath.Join(dir, "nope")}}); err == nil {
		t.Fatal("missing path accepted")
	}
}

func TestParquetInput(t *testing.T) {
	type row struct {
		ID   string `parquet:"id"`
		Body string `parquet:"body"`
	}
	p := filepath.Join(t.TempDir(), "in.parquet")
	f, _ := os.Create(p)
	w := parquet.NewGenericWriter[row](f)
	w.Write([]row{{"r1", "hello"}, {"r2", "world"}})
	w.Close()
	f.Close()
	cfg := Default()
	cfg.Paths = []string{p}
	cfg.TextField = "body"
	recs := readAll(t, cfg)
	if len(recs) != 2 || recs[1].Doc.ID != "r2" || recs[1].Doc.Text != "world" {
		t.Fatalf("%+v", recs)
	}
	cfg.TextField = "text"
	units, _ := Plan(cfg)
	err := Read(context.Background(), units[0], cfg, nil, func(*Record) error { return nil })
	if err == nil || !strings.Contains(err.Error(), `no column "text"`) {
		t.Fatalf("want missing column error, got %v", err)
	}
}

// FuzzJSONL reads arbitrary JSONL files. The seeds are single short lines
// (the multi-line jsonl document is a unit test), and the file is
// rewritten in one directory, so that each execution, and minimizing an
// interesting input, stays fast.
func FuzzJSONL(f *testing.F) {
	for _, line := range strings.Split(jsonl, "\n") {
		f.Add([]byte(line + "\n"))
	}
	f.Add([]byte("{\"text\": \"\\ud800\"}\n\n\n"))
	f.Add([]byte("\xff\xfe{\"text\":1}"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "f.jsonl")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := Default()
		cfg.Paths = []string{p}
		cfg.MaxLineBytes = 1 << 10
		units, err := Plan(cfg)
		if err != nil {
			t.Fatal(err)
		}
		lines := 0
		err = Read(context.Background(), units[0], cfg, nil, func(r *Record) error {
			lines++
			if r.Doc.Origin == "" || r.Doc.ID == "" {
				t.Fatalf("record without origin/id: %+v", r)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if lines > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d records from %d lines", lines, bytes.Count(data, []byte("\n"))+1)
		}
	})
}
