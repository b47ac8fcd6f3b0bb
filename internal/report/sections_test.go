package report

import (
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/internal/testenv"
)

const statsJSON = `{"recipe":"abc","funnel":{"order":["input","gopher"],"stages":{
"input":{"in":{"docs":10,"bytes":3000000},"out":{"docs":9,"bytes":2500000},"removed":{"too_long":{"docs":1,"bytes":500000}},"lines_removed":7},
"gopher":{"in":{"docs":9,"bytes":2500000},"out":{"docs":8,"bytes":2000000},"removed":{"min_words":{"docs":1,"bytes":500000}}}}},
"kept":{"docs":8,"bytes":2000000}}`

// TestCuration: the funnel's rows, removals and counters the section does
// not know by name (a stage's new counters show without a change here).
func TestCuration(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, curationStats), []byte(statsJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteCuration(dir); err != nil {
		t.Fatal(err)
	}
	s, err := Curation(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"input", "10", "9", "3.00", "2.50", "too_long 1, 0.50", "lines_removed 7"},
		{"gopher", "9", "8", "2.50", "2.00", "min_words 1, 0.50", ""},
	}
	if !slices.EqualFunc(s.Table.Rows, want, slices.Equal) {
		t.Fatalf("rows %q, want %q", s.Table.Rows, want)
	}
	html, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil || !strings.Contains(string(html), "min_words 1, 0.50") {
		t.Fatalf("report.html: %v\n%s", err, html)
	}
	// The page renders: the table's header blue-grey and its text show.
	shot := testenv.Screenshot(t, filepath.Join(dir, File), 1000, 500)
	if hdr := testenv.Pixels(shot, color.RGBA{0xe8, 0xee, 0xf6, 255}, 3); hdr < 2000 {
		t.Errorf("%d pixels of the table header's colour: the funnel table did not render", hdr)
	}
	for _, bad := range []string{`{"funnel":{"order":[]}}`, `{"funnel":`, `[]`} {
		os.WriteFile(filepath.Join(dir, curationStats), []byte(bad), 0o644)
		if _, err := Curation(dir); err == nil || !strings.Contains(err.Error(), curationStats) {
			t.Errorf("%s: error %v does not name the file", bad, err)
		}
	}
}

// TestTraining: facts from metrics.jsonl and the plots found in the run
// directory.
func TestTraining(t *testing.T) {
	dir := t.TempDir()
	lines := `{"kind":"train","step":1,"stage":"main","tokens":64,"loss":5,"lr":0.001,"grad_norm":1,"tokens_per_s":100,"gflop_per_s":2,"mfu":0.01}
{"kind":"train","step":2,"stage":"anneal","tokens":128,"skipped":true,"loss":"NaN","lr":0.001,"grad_norm":"NaN"}
{"kind":"eval","step":2,"stage":"anneal","tokens":128,"eval_loss":4.5}
`
	os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(lines), 0o644)
	os.WriteFile(filepath.Join(dir, "loss.png"), solidPNG(t, 2, 2, plotRed), 0o644)
	s, err := Training(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range s.Facts {
		got[f.Name] = f.Value
	}
	for k, v := range map[string]string{"steps": "2 (stages: main → anneal)", "training tokens": "128",
		"last held-out loss": "4.5000 nats/token (step 2)", "MFU (last step)": "1.00% of the stated peak"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(s.Images) != 1 || len(s.Notes) != 1 {
		t.Errorf("%d images (want loss.png only), notes %q", len(s.Images), s.Notes)
	}
	if s, err := Training(t.TempDir()); err != nil || s.Text == "" {
		t.Errorf("a run without metrics: %+v %v", s, err)
	}
}

// FuzzCuration: any stats.json gives a section or an error, never a panic.
func FuzzCuration(f *testing.F) {
	f.Add([]byte(statsJSON))
	f.Add([]byte(`{"funnel":{"order":["x"],"stages":{"x":{"in":3}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, curationStats), data, 0o644); err != nil {
			t.Fatal(err)
		}
		Curation(dir)
	})
}
