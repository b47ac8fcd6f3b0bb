package curate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/herdml/herd/data/reader"
)

// TestGenerateSynthetic writes a small synthetic corpus twice with one seed
// (identical bytes) and reads it back with the pipeline's reader.
func TestGenerateSynthetic(t *testing.T) {
	needCorpora(t)
	cfg := SyntheticConfig{Corpora: corpora, Out: t.TempDir(), Bytes: 2e6, Files: 2, Seed: 4}
	st, err := GenerateSynthetic(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 2 || st.Bytes < 2e6 || st.Bytes > 2e6+1e6 || st.ExactCopies == 0 || st.NearCopies == 0 || st.WithBoilerplate == 0 {
		t.Fatalf("stats %+v", st)
	}
	again := cfg
	again.Out = t.TempDir()
	if _, err := GenerateSynthetic(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"part-00000.jsonl.zst", "part-00001.jsonl.zst"} {
		a, _ := os.ReadFile(filepath.Join(cfg.Out, name))
		b, _ := os.ReadFile(filepath.Join(again.Out, name))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Fatalf("%s differs between two runs with one seed", name)
		}
	}
	rc := reader.Default()
	rc.Paths = []string{cfg.Out}
	units, err := reader.Plan(rc)
	if err != nil {
		t.Fatal(err)
	}
	var docs, bad int64
	for _, u := range units {
		err := reader.Read(context.Background(), u, rc, nil, func(r *reader.Record) error {
			docs++
			if r.Problem != "" || r.Doc.Text == "" || r.Doc.URL == "" || r.Doc.Date == "" {
				bad++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if docs != st.Docs || bad != 0 {
		t.Fatalf("read %d documents (%d bad), generator wrote %d", docs, bad, st.Docs)
	}
}
