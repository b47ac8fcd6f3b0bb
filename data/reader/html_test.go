package reader

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type panicky struct{}

func (panicky) Extract(page, _ string) (string, error) {
	if strings.Contains(page, "boom") {
		panic("boom")
	}
	return "main text", nil
}

// TestHTMLBounds reads HTML from a JSONL field: pages beyond the bounds
// are problems with their own reasons, the extractor's panic is a problem
// of its page, and other pages are extracted.
func TestHTMLBounds(t *testing.T) {
	pages := []string{
		"<p>fine</p>",
		strings.Repeat("<div>", 300),
		strings.Repeat("<br>", 45),
		"<p>boom</p>",
		strings.Repeat("x", 200),
	}
	var b strings.Builder
	for _, p := range pages {
		line, _ := json.Marshal(map[string]string{"html": p})
		b.Write(append(line, '\n'))
	}
	path := filepath.Join(t.TempDir(), "pages.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Paths = []string{path}
	cfg.HTMLField = "html"
	cfg.HTMLMaxElements = 40
	cfg.HTMLMaxBytes = 180
	units, err := Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = Read(t.Context(), units[0], cfg, panicky{}, func(r *Record) error {
		got = append(got, r.Problem+":"+r.Doc.Text[:min(len(r.Doc.Text), 9)])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{":main text", "html_too_large:<div><div", "html_too_many_elements:<br><br><", "html_extract:<p>boom</", "html_too_large:xxxxxxxxx"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	cfg.HTMLMaxBytes, cfg.HTMLMaxElements = 2000, 1000
	got = nil
	err = Read(t.Context(), units[0], cfg, panicky{}, func(r *Record) error {
		got = append(got, r.Problem)
		return nil
	})
	if err != nil || got[1] != "html_too_deep" {
		t.Fatalf("with room for 300 divs: %v %v", got, err)
	}
}
