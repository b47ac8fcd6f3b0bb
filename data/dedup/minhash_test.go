package dedup

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/data/dedup/planted"
)

func TestMinHashConfig(t *testing.T) {
	mh, err := NewMinHasher(MinHashConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if c := mh.Config(); c.NGram != 5 || c.Bands != 14 || c.Rows != 8 || mh.Size() != 112 || c.Threshold != 0.5 {
		t.Errorf("defaults %+v size %d", c, mh.Size())
	}
	for _, bad := range []MinHashConfig{{NGram: -1}, {NGram: 65}, {Bands: -2}, {Bands: 100, Rows: 100}, {Threshold: 1.5}, {Threshold: math.NaN()}, {MaxCompare: -1}} {
		if _, err := NewMinHasher(bad); err == nil {
			t.Errorf("NewMinHasher(%+v) accepted", bad)
		}
	}
}

func TestSignatureBasics(t *testing.T) {
	mh, _ := NewMinHasher(MinHashConfig{Seed: 3})
	sig, n := mh.Signature("", nil)
	if n != 0 || sig[0] != emptySig || signatureSimilarity(sig, sig) != 0 {
		t.Errorf("empty text: %d shingles, sig[0] %x, self-similarity %v", n, sig[0], signatureSimilarity(sig, sig))
	}
	if _, n := mh.Signature("three short words", nil); n != 1 {
		t.Errorf("short text: %d shingles, want 1", n)
	}
	if _, n := mh.Signature("one two three four five six seven", nil); n != 3 {
		t.Errorf("7 words: %d shingles, want 3", n)
	}
	a, _ := mh.Signature("The quick brown fox jumps over the lazy dog again and again", nil)
	a = slices.Clone(a)
	b, _ := mh.Signature("the QUICK brown fox,  jumps over the lazy dog... again and again!", nil)
	if signatureSimilarity(a, b) != 1 {
		t.Errorf("case/punctuation variant similarity %v, want 1", signatureSimilarity(a, b))
	}
	other, _ := NewMinHasher(MinHashConfig{Seed: 4})
	c, _ := other.Signature("The quick brown fox jumps over the lazy dog again and again", nil)
	if slices.Equal(a, c) {
		t.Error("different seeds give the same signature")
	}
	ch, _ := NewMinHasher(MinHashConfig{CharShingles: true})
	x, n := ch.Signature("abcdefg", nil)
	x = slices.Clone(x)
	y, _ := ch.Signature("ABCDEFG  ", nil)
	if n != 3 || signatureSimilarity(x, y) != 1 {
		t.Errorf("char shingles: %d shingles, similarity %v", n, signatureSimilarity(x, y))
	}
}

// TestSimilarityEstimatesJaccard compares the signature estimate with the
// true Jaccard similarity of independently built shingle sets.
func TestSimilarityEstimatesJaccard(t *testing.T) {
	c := loadPlanted(t)
	mh, _ := NewMinHasher(MinHashConfig{})
	var sumErr float64
	pairs := 0
	for _, d := range c.Docs {
		if d.Kind != planted.Near || pairs >= 150 {
			continue
		}
		for _, other := range []uint64{d.Group, (d.ID + 1) % uint64(len(c.Docs))} {
			a, _ := mh.Signature(d.Text, nil)
			b, _ := mh.Signature(c.Docs[other].Text, nil)
			j := trueJaccard(wordShingleSet(d.Text, 5), wordShingleSet(c.Docs[other].Text, 5))
			est := signatureSimilarity(a, b)
			sd := math.Sqrt(j * (1 - j) / 112)
			if math.Abs(est-j) > 5*sd+0.02 {
				t.Errorf("docs %d,%d: estimate %.3f, true Jaccard %.3f", d.ID, other, est, j)
			}
			sumErr += math.Abs(est - j)
			pairs++
		}
	}
	if mean := sumErr / float64(pairs); mean > 0.03 {
		t.Errorf("mean |estimate − Jaccard| = %.4f over %d pairs", mean, pairs)
	}
}

// runStaged runs the four file-based stages with the given number of
// signature workers and band workers, with tiny spill buffers.
func runStaged(t *testing.T, docs []Doc, cfg MinHashConfig, sigWorkers, bandWorkers int) ([]Removal, ClusterStats) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	spill := SpillConfig{TempDir: dir, MemoryBytes: 16 << 10} // runs of ~100 records per band
	var sigFiles []string
	for w := range sigWorkers {
		p := filepath.Join(dir, fmt.Sprintf("sig-%d.bin", w))
		sw, err := NewSignatureWriter(p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := w; i < len(docs); i += sigWorkers {
			if err := addText(sw, docs[i].ID, docs[i].Text); err != nil {
				t.Fatal(err)
			}
		}
		if err := sw.Commit(); err != nil {
			t.Fatal(err)
		}
		sigFiles = append(sigFiles, p)
	}
	out := filepath.Join(dir, "near-removed.bin")
	var st ClusterStats
	var err error
	if bandWorkers == 1 { // the one-process convenience
		st, err = NearDuplicateFiles(ctx, sigFiles, t.TempDir(), out, cfg, spill)
	} else { // partitions of bands, then one clustering step
		var edgeFiles []string
		for w := range bandWorkers {
			files, _, err := FindBandEdges(ctx, sigFiles, dir, w, bandWorkers, cfg, spill)
			if err != nil {
				t.Fatal(err)
			}
			edgeFiles = append(edgeFiles, files...)
		}
		st, err = ClusterEdges(ctx, edgeFiles, out)
	}
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ReadRemovals(out)
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "herd-dedup-run-*")); len(left) > 0 {
		t.Errorf("spill runs left behind: %v", left)
	}
	return rs, st
}

// TestStagedMatchesInMemory: the distributed stages and NearDuplicates
// give identical removals, with and without verification.
func TestStagedMatchesInMemory(t *testing.T) {
	c := loadPlanted(t)
	var docs []Doc
	for _, d := range c.Docs[:1200] {
		docs = append(docs, Doc{d.ID * 3, d.Text}) // sparse ids
	}
	for _, cfg := range []MinHashConfig{{}, {Threshold: -1}, {Threshold: 0.8, MaxCompare: 2}} {
		mem, err := NearDuplicates(context.Background(), docs, cfg)
		if err != nil {
			t.Fatal(err)
		}
		staged, st := runStaged(t, docs, cfg, 3, 2)
		if !slices.Equal(mem, staged) {
			t.Errorf("%+v: in-memory %d removals, staged %d", cfg, len(mem), len(staged))
		}
		one, _ := runStaged(t, docs, cfg, 1, 1)
		if !slices.Equal(one, staged) {
			t.Errorf("%+v: 1 worker %d removals, 3×2 workers %d", cfg, len(one), len(staged))
		}
		if st.Removed != int64(len(staged)) || st.Clusters < 1 || len(mem) == 0 {
			t.Errorf("%+v: stats %+v for %d removals", cfg, st, len(staged))
		}
		for _, r := range mem {
			if r.Keep >= r.ID {
				t.Errorf("removal %v keeps a later document", r)
			}
		}
	}
	if _, err := NearDuplicates(context.Background(), []Doc{{1, "a"}, {1, "b"}}, MinHashConfig{}); err == nil {
		t.Error("duplicate ids accepted")
	}
}

func TestUnionFindSmallestRoot(t *testing.T) {
	u := &unionFind{parent: map[uint64]uint64{}}
	for _, e := range []pairEdge{{9, 7}, {7, 5}, {12, 9}, {4, 3}, {20, 12}, {30, 31}} {
		u.union(e.A, e.B)
	}
	want := []Removal{{4, 3}, {7, 5}, {9, 5}, {12, 5}, {20, 5}, {31, 30}}
	if got := u.removals(); !slices.Equal(got, want) {
		t.Errorf("removals %v, want %v", got, want)
	}
}

func TestSignatureWriterErrors(t *testing.T) {
	dir := t.TempDir()
	sw, err := NewSignatureWriter(filepath.Join(dir, "s.bin"), MinHashConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Abort()
	if err := addText(sw, 5, "x y z"); err != nil {
		t.Fatal(err)
	}
	if err := addText(sw, 5, "x y z"); err == nil || !strings.Contains(err.Error(), "strictly increase") {
		t.Errorf("repeated id: %v", err)
	}
	if err := sw.Add(6, []uint64{1, 2}); err == nil {
		t.Error("short signature accepted")
	}
	if _, err := FindEdges(context.Background(), filepath.Join(dir, "none.bin"), nil, filepath.Join(dir, "e.bin"), MinHashConfig{}); err == nil || !strings.Contains(err.Error(), "SignatureIndex") {
		t.Errorf("verification without an index: %v", err)
	}
}

// TestPermutationArithmetic checks the fast (a·x + b) mod (2⁶¹−1) against
// math/big, and the 4-wide signature loop against a plain minimum.
func TestPermutationArithmetic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	p := new(big.Int).SetUint64(mersenne61)
	edge := []uint64{0, 1, mersenne61 - 1, mersenne61 - 2, 1 << 60}
	for i := range 2000 {
		a, b, x := rng.Uint64()%mersenne61, rng.Uint64()%mersenne61, rng.Uint64()%mersenne61
		if i < len(edge)*len(edge) {
			a, x = edge[i%len(edge)], edge[i/len(edge)]
			b = edge[(i+1)%len(edge)]
		}
		want := new(big.Int).Mul(new(big.Int).SetUint64(a), new(big.Int).SetUint64(x))
		want.Add(want, new(big.Int).SetUint64(b)).Mod(want, p)
		if got := perm61(a, b, x); got != want.Uint64() {
			t.Fatalf("perm61(%d, %d, %d) = %d, want %d", a, b, x, got, want.Uint64())
		}
	}
	for _, cfg := range []MinHashConfig{{}, {Bands: 3, Rows: 3}} {
		mh, _ := NewMinHasher(cfg)
		text := "one two three four five six seven eight nine ten eleven"
		sig, _ := mh.Signature(text, nil)
		xs := slices.Clone(mh.xs)
		for i := range sig {
			want := uint64(emptySig)
			for _, x := range xs {
				want = min(want, perm61(mh.a[i], mh.b[i], x))
			}
			if sig[i] != want {
				t.Fatalf("%+v: sig[%d] = %d, want %d", cfg, i, sig[i], want)
			}
		}
	}
}
