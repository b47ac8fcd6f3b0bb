package dedup

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		in   string
		cfg  ExactConfig
		want string
	}{
		{"  Hello\t\tWORLD \n", ExactConfig{}, "hello world"},
		{"Ünïcode\u00a0SPACE", ExactConfig{}, "ünïcode space"},
		{"A  b", ExactConfig{KeepCase: true}, "A b"},
		{" A  b ", ExactConfig{KeepWhitespace: true}, " a  b "},
		{" A  b ", ExactConfig{KeepCase: true, KeepWhitespace: true}, " A  b "},
		{"bad \xff byte", ExactConfig{}, "bad \xff byte"},
		{"", ExactConfig{}, ""},
	}
	for _, tc := range tests {
		if got := Normalize(tc.in, tc.cfg); got != tc.want {
			t.Errorf("Normalize(%q, %+v) = %q, want %q", tc.in, tc.cfg, got, tc.want)
		}
		h := NewExactHasher(tc.cfg)
		if a, b := h.Key(tc.in), HashText(tc.in, tc.cfg); a != b || a != HashText(tc.want, ExactConfig{KeepCase: true, KeepWhitespace: true, Hash64: tc.cfg.Hash64}) {
			t.Errorf("%q: ExactHasher %v, HashText %v disagree or differ from the hash of the normalized text", tc.in, a, b)
		}
	}
	if k := HashText("x", ExactConfig{Hash64: true}); k.Hi != 0 {
		t.Errorf("64-bit key has Hi %x", k.Hi)
	}
	long := strings.Repeat("Word ", 2000)
	if HashText(long, ExactConfig{}) != NewExactHasher(ExactConfig{}).Key(long) {
		t.Error("long text hashes differ")
	}
}

// randomDocs makes n documents drawn from a small pool so many repeat,
// some only up to case and whitespace.
func randomDocs(n int, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, 5))
	pool := make([]string, n/3+1)
	for i := range pool {
		pool[i] = fmt.Sprintf("document %d about %d things", i, rng.IntN(1000))
	}
	out := make([]string, n)
	for i := range out {
		s := pool[rng.IntN(len(pool))]
		if rng.IntN(3) == 0 {
			s = strings.ToUpper(s[:1]) + s[1:] + "  \n"
		}
		out[i] = s
	}
	return out
}

// TestKeyFilesMatchExactSet splits documents across 3 workers whose key
// files spill many runs, merges them, and compares with the in-memory set
// and with a brute-force map of normalized strings.
func TestKeyFilesMatchExactSet(t *testing.T) {
	ctx := context.Background()
	docs := randomDocs(3000, 1)
	dir := t.TempDir()
	cfg := SpillConfig{TempDir: dir, MemoryBytes: 64 << 10} // ~1600 records per run
	var files []string
	for w := range 3 {
		p := filepath.Join(dir, fmt.Sprintf("keys-%d.bin", w))
		kw := NewKeyWriter(p, cfg)
		for i := w; i < len(docs); i += 3 {
			if err := kw.Add(KeyRecord{Key: HashText(docs[i], ExactConfig{}), Order: uint64(i), ID: uint64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := kw.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	out := filepath.Join(dir, "removed.bin")
	st, err := MergeKeyFiles(ctx, out, files, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadRemovals(out)
	if err != nil {
		t.Fatal(err)
	}
	set := NewExactSet(ExactConfig{})
	first := map[string]uint64{}
	var want, fromSet []Removal
	for i, d := range docs {
		n := strings.ToLower(strings.Join(strings.Fields(d), " "))
		if f, ok := first[n]; ok {
			want = append(want, Removal{uint64(i), f})
		} else {
			first[n] = uint64(i)
		}
		if k, dup := set.Add(uint64(i), d); dup {
			fromSet = append(fromSet, Removal{uint64(i), k})
		}
	}
	if !slices.Equal(got, want) || !slices.Equal(fromSet, want) {
		t.Errorf("merged %d removals, set %d, brute force %d", len(got), len(fromSet), len(want))
	}
	if st.Records != int64(len(docs)) || st.Distinct != int64(len(first)) || st.Removed != int64(len(want)) {
		t.Errorf("stats %+v, want %d records, %d distinct", st, len(docs), len(first))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "herd-dedup-run-*")); len(left) > 0 {
		t.Errorf("spill runs left behind: %v", left)
	}
}

func TestRecencyOrder(t *testing.T) {
	ts := []int64{-5, 0, 3, 1 << 40, -1 << 40}
	for _, a := range ts {
		for _, b := range ts {
			if (a > b) != (RecencyOrder(a) < RecencyOrder(b)) {
				t.Errorf("RecencyOrder(%d)=%d vs RecencyOrder(%d)=%d", a, RecencyOrder(a), b, RecencyOrder(b))
			}
		}
	}
}
