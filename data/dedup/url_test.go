package dedup

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

func TestNormalizeURL(t *testing.T) {
	tests := []struct {
		in   string
		cfg  URLConfig
		want string
	}{
		{"HTTP://Example.COM:80/a/b/?x=1#frag", URLConfig{}, "http://example.com/a/b?x=1"},
		{"https://example.com:443", URLConfig{}, "https://example.com/"},
		{"https://example.com:8443/", URLConfig{}, "https://example.com:8443/"},
		{"https://example.com/a/./b/../c/", URLConfig{}, "https://example.com/a/c"},
		{"https://example.com/p?utm_source=x&b=2&a=1&fbclid=z", URLConfig{}, "https://example.com/p?a=1&b=2"},
		{"https://example.com/p?utm_source=x", URLConfig{KeepTrackingParams: true}, "https://example.com/p?utm_source=x"},
		{"https://example.com/p?b=2&a=1", URLConfig{KeepQueryOrder: true}, "https://example.com/p?b=2&a=1"},
		{"https://example.com/p?sid=9&a=1", URLConfig{ExtraTrackingParams: []string{"SID"}}, "https://example.com/p?a=1"},
		{"https://www.example.com/", URLConfig{StripWWW: true}, "https://example.com/"},
		{"https://example.com./x", URLConfig{}, "https://example.com/x"},
		{"http://[::1]:80/x", URLConfig{}, "http://[::1]/x"},
		{"https://example.com/a%20b", URLConfig{}, "https://example.com/a%20b"},
		{"https://example.com/?", URLConfig{}, "https://example.com/"},
	}
	for _, tc := range tests {
		got, err := NormalizeURL(tc.in, tc.cfg)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "example.com/x", "/relative", "http://%zz", "mailto:x@y"} {
		if got, err := NormalizeURL(bad, URLConfig{}); err == nil {
			t.Errorf("NormalizeURL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestURLDedup(t *testing.T) {
	type rec struct {
		url string
		ts  int64
	}
	recs := []rec{
		{"http://a.com/x", 10},            // 0: older
		{"HTTP://A.com/x/", 20},           // 1: newest of a.com/x → kept
		{"http://a.com/x#top", 15},        // 2
		{"http://b.com/?utm_medium=m", 5}, // 3: tie at 5 with 4 → smaller id kept
		{"http://b.com", 5},               // 4
		{"http://c.com/only", 1},          // 5: unique
	}
	want := []Removal{{0, 1}, {2, 1}, {4, 3}}
	s := NewURLSet(URLConfig{})
	for i, r := range recs {
		if err := s.Add(uint64(i), r.url, r.ts); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Removals(); !slices.Equal(got, want) {
		t.Errorf("URLSet removals %v, want %v", got, want)
	}
	// The file path: two workers, merged.
	ctx := context.Background()
	dir := t.TempDir()
	var files []string
	for w := range 2 {
		p := filepath.Join(dir, fmt.Sprintf("urls-%d.bin", w))
		kw := NewKeyWriter(p, SpillConfig{TempDir: dir})
		for i := w; i < len(recs); i += 2 {
			n, err := NormalizeURL(recs[i].url, URLConfig{})
			if err != nil {
				t.Fatal(err)
			}
			kw.Add(URLRecord(uint64(i), n, recs[i].ts))
		}
		if err := kw.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	out := filepath.Join(dir, "url-removed.bin")
	if _, err := MergeKeyFiles(ctx, out, files, SpillConfig{TempDir: dir}); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadRemovals(out); err != nil || !slices.Equal(got, want) {
		t.Errorf("merged removals %v, %v; want %v", got, err, want)
	}
}
