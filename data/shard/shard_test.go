package shard

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/herdml/herd/data/document"
)

// TestRemovedColumns checks that a removed-documents file has the Row
// columns flat at the top level, then reason and detail, and round-trips.
func TestRemovedColumns(t *testing.T) {
	p := filepath.Join(t.TempDir(), "removed-00000.parquet")
	w, err := Create[Removed](p, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := RemovedFromDoc(&document.Doc{ID: "d1", Text: "two words", Source: "s"}, "gopher/min_words", "2 < 50")
	if err := w.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	rows, err := ReadAll[Removed](p)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || !reflect.DeepEqual(rows[0], want) {
		t.Fatalf("read %+v, wrote %+v", rows, want)
	}
	var names []string
	for _, f := range reflect.VisibleFields(reflect.TypeOf(Row{})) {
		names = append(names, f.Tag.Get("parquet"))
	}
	names = append(names, "reason", "detail")
	if got := schemaColumns(t, p); !reflect.DeepEqual(got, names) {
		t.Fatalf("columns %v, want %v", got, names)
	}
}

func schemaColumns(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range pf.Schema().Columns() {
		cols = append(cols, c[0])
	}
	return cols
}
