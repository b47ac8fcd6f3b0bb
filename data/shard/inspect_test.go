package shard

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/data/document"
)

// tokenRow has a repeated column, as token shards do.
type tokenRow struct {
	ID     string  `parquet:"id"`
	Tokens []int32 `parquet:"tokens,list"`
}

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	docs := filepath.Join(dir, "docs-00000.parquet")
	w, err := Create[Row](docs, 2, "herd.recipe", "abc123")
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 200) // 400 bytes: cut on a rune boundary
	for i, text := range []string{"first document", long, "third"} {
		if err := w.Write(FromDoc(&document.Doc{ID: "d" + string(rune('0'+i)), Text: text, Source: "web", Ordinal: uint64(i)})); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Inspect(&out, docs, InspectOptions{Rows: 2, Width: 21}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"rows:       3 in 2 row groups",
		"created_by: herd curate version ",
		"metadata:   herd.recipe = abc123",
		"message Row {",
		"required binary text (STRING);",
		"row 1:\n  id            \"d0\"\n  text          \"first document\"\n  source        \"web\"",
		`text          "` + strings.Repeat("é", 10) + `" … (400 bytes)`,
		"  ordinal       1\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "row 3:") {
		t.Errorf("printed more than 2 rows:\n%s", s)
	}

	toks := filepath.Join(dir, "tokens-00000.parquet")
	tw, err := Create[tokenRow](toks, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Write(tokenRow{ID: "a", Tokens: []int32{5, 6, 7}}, tokenRow{ID: "b", Tokens: make([]int32, 40)}, tokenRow{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Commit(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := Inspect(&out, toks, InspectOptions{Rows: 5}); err != nil {
		t.Fatal(err)
	}
	s = out.String()
	for _, want := range []string{"tokens.list.element  [5 6 7]", "[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 … 40 values]", "tokens.list.element  []"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}

	bad := filepath.Join(dir, "docs.jsonl")
	os.WriteFile(bad, []byte(`{"text":"not parquet"}`+"\n"), 0o644)
	if err := Inspect(&out, bad, InspectOptions{}); err == nil || !strings.Contains(err.Error(), "not a Parquet file") {
		t.Fatalf("a JSONL file: %v", err)
	}
}

// FuzzInspect: damaged files give an error or output, never a panic or a
// huge allocation.
func FuzzInspect(f *testing.F) {
	p := filepath.Join(f.TempDir(), "seed.parquet")
	w, err := Create[Row](p, 2)
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		w.Write(FromDoc(&document.Doc{ID: "d", Text: strings.Repeat("text ", i+1), Ordinal: uint64(i)}))
	}
	if err := w.Commit(); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("PAR1PAR1PAR1"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "f.parquet")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		Inspect(&out, path, InspectOptions{Rows: 3})
	})
}
