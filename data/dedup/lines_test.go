package dedup

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestNormalizeLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  Copyright © 2024 Example, Inc.  ", "copyright 0000 example inc"},
		{"Home | About | Contact", "home about contact"},
		{"-----", ""},
		{"", ""},
		{"Ça  coûte 12€\r", "ça coûte 00"},
		{"\tTabbed\tline\t", "tabbed line"},
	}
	for _, tc := range tests {
		if got := NormalizeLine(tc.in); got != tc.want {
			t.Errorf("NormalizeLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
		h, ok := hashLine(tc.in)
		h2, ok2 := hashLine(tc.want)
		if ok != (tc.want != "") || ok2 != ok || h != h2 {
			t.Errorf("LineHash(%q) = %x,%v; of normalized form %x,%v", tc.in, h, ok, h2, ok2)
		}
	}
}

func TestLineDedupBuckets(t *testing.T) {
	// 20 docs, buckets of 10: "banner" appears in 7 docs of bucket 0 (removed)
	// and 6 of bucket 1 (kept); "menu" appears 7 times inside doc 0 alone.
	var texts []string
	for i := range 20 {
		var b strings.Builder
		if i < 7 || (i >= 10 && i < 16) {
			b.WriteString("Accept COOKIES now!\n")
		}
		fmt.Fprintf(&b, "unique line %c%c of doc\n\n", 'a'+i, 'a'+i/2)
		if i == 0 {
			b.WriteString(strings.Repeat("menu\n", 7))
		}
		b.WriteString("---\nlast line without newline " + string(rune('A'+i)))
		texts = append(texts, b.String())
	}
	out, st, err := DedupLines(context.Background(), texts, LineConfig{BucketDocs: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		hasBanner := strings.Contains(out[i], "Accept COOKIES")
		if wantBanner := i >= 10 && i < 16; hasBanner != wantBanner {
			t.Errorf("doc %d: banner kept = %v, want %v", i, hasBanner, wantBanner)
		}
		if !strings.Contains(out[i], "unique line") || !strings.Contains(out[i], "---\n") || !strings.HasSuffix(out[i], "newline "+string(rune('A'+i))) {
			t.Errorf("doc %d: content lost: %q", i, out[i])
		}
		if len(texts[i])-len(out[i]) != st[i].BytesRemoved || st[i].Bytes != len(texts[i]) {
			t.Errorf("doc %d: stats %+v but %d bytes removed", i, st[i], len(texts[i])-len(out[i]))
		}
	}
	if strings.Contains(out[0], "menu") || st[0].LinesRemoved != 8 || st[0].Lines != 12 {
		t.Errorf("doc 0: %q, stats %+v; want 8 of 12 lines removed", out[0], st[0])
	}
	if out[0] != "unique line aa of doc\n\n---\nlast line without newline A" {
		t.Errorf("doc 0 filtered to %q", out[0])
	}
}

// TestLineDedupBloomAgrees runs the bloom-prefiltered mode on the planted
// corpus and compares with exact counting.
func TestLineDedupBloomAgrees(t *testing.T) {
	c := loadPlanted(t)
	texts := make([]string, len(c.Docs))
	for i, d := range c.Docs {
		texts[i] = d.Text
	}
	exact, _, err := DedupLines(context.Background(), texts, LineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	bl, _, err := DedupLines(context.Background(), texts, LineConfig{BloomLines: 200_000, BloomFalsePositive: 1e-4})
	if err != nil {
		t.Fatal(err)
	}
	diff := 0
	for i := range exact {
		if exact[i] != bl[i] {
			diff++
		}
	}
	// A false positive can only add one to a line's count; with 10⁻⁴ and
	// ~100k distinct lines at most a handful of documents may differ.
	if diff > 3 {
		t.Errorf("bloom mode differs from exact counting in %d documents", diff)
	}
	d := NewLineDedup(LineConfig{BloomLines: 1000})
	for range 7 {
		d.Count("same line")
	}
	if got, _ := d.Filter("same line\nother"); got != "other" {
		t.Errorf("bloom mode kept a 7× line: %q", got)
	}
	d.Reset()
	d.Count("same line")
	if got, _ := d.Filter("same line"); got != "same line" || d.Docs() != 1 || d.Full() {
		t.Errorf("after Reset: %q, docs %d", got, d.Docs())
	}
}

func TestDedupLinesCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := DedupLines(ctx, []string{"a"}, LineConfig{}); err == nil {
		t.Error("no error from a cancelled context")
	}
}

// TestFilterLinesAgreesWithBucket checks that counting AppendLineHashes
// outside the package and filtering with FilterLines gives what LineDedup
// gives for the same bucket.
func TestFilterLinesAgreesWithBucket(t *testing.T) {
	texts := []string{
		"Accept cookies\nfirst real line\n\nMenu | Home",
		"accept  COOKIES!\nsecond real line\nMenu Home",
		"Accept cookies\nthird line 42\nMenu | Home",
		"Accept cookies\nthird line 17\n",
	}
	cfg := LineConfig{MaxRepeats: 2, BucketDocs: 10}
	want, wantStats, err := DedupLines(context.Background(), texts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[uint64]int{}
	var hs []uint64
	var buf []byte
	for _, tx := range texts {
		hs, buf = AppendLineHashes(hs[:0], tx, buf)
		for _, h := range hs {
			counts[h]++
		}
	}
	for i, tx := range texts {
		got, st := FilterLines(tx, func(h uint64) bool { return counts[h] > cfg.MaxRepeats })
		if got != want[i] || st != wantStats[i] {
			t.Errorf("doc %d: FilterLines = %q %+v, LineDedup = %q %+v", i, got, st, want[i], wantStats[i])
		}
	}
	if want[0] == texts[0] {
		t.Fatal("test corpus removes nothing")
	}
}
