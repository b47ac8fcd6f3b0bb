package pretrain

import (
	"encoding/json"
	"github.com/herdml/herd/data/tokens"
	"github.com/herdml/herd/data/tokens/tokenstest"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

func twoSources(t *testing.T) []Source {
	dir := t.TempDir()
	a := synthSource(t, dir, "web", 120, 50, 16, 32, 1, 5, 90)
	b := synthSource(t, dir, "code", 24, 24, 8, 32, 2, 20, 200)
	return []Source{{Name: "web", Paths: []string{a}, Weight: weight(3)}, {Name: "code", Paths: []string{b}, Weight: weight(1)}}
}

// TestStreamPacking checks the packed rows against the documents: every
// token comes from one document, in order, targets are the next token of
// the same document, and the mixture follows the weights in tokens.
func TestStreamPacking(t *testing.T) {
	srcs := twoSources(t)
	s, err := newPackedStream(srcs, packedStreamOptions{SeqLen: 64, Seed: 3, Vocab: 32, HeldOut: 0.1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok, tgt, ids := make([]int32, 64), make([]int32, 64), make([]int32, 64)
	var all []int32 // concatenated stream
	var bounds []bool
	for range 200 {
		n, err := s.Next(tok, tgt, ids)
		if err != nil {
			t.Fatal(err)
		}
		count := 0
		for i := range tok {
			if ids[i] < 0 || i > 0 && ids[i] < ids[i-1] || i > 0 && ids[i] > ids[i-1]+1 {
				t.Fatalf("document ids not consecutive: %v", ids)
			}
			if i+1 < len(tok) {
				want := int32(-1)
				if ids[i+1] == ids[i] {
					want = tok[i+1]
				}
				if tgt[i] != want {
					t.Fatalf("target %d = %d, want %d", i, tgt[i], want)
				}
			}
			if tgt[i] >= 0 {
				count++
			}
			bounds = append(bounds, i > 0 && ids[i] != ids[i-1])
		}
		if count != n {
			t.Fatalf("Next counted %d targets, the row has %d", n, count)
		}
		all = append(all, tok...)
	}
	// Every document starts with BOS (0) and ends with EOS (1): a new
	// document id inside a row starts exactly at a BOS.
	for i, b := range bounds {
		if b != (all[i] == 0 && i > 0 && all[i-1] == 1) && b {
			t.Fatalf("document boundary at %d does not follow EOS / precede BOS", i)
		}
	}
	st := s.State()
	web, code := float64(s.p.state.Mix["web"]), float64(s.p.state.Mix["code"])
	if frac := web / (web + code); math.Abs(frac-0.75) > 0.02 {
		t.Fatalf("web share %.3f of tokens, want 0.75 (weights 3:1)", frac)
	}
	if int(web+code) != 256*64 || st.Window != 0 || st.Index != 200 {
		t.Fatalf("mix counts %v+%v tokens, one window holds %d; state %+v", web, code, 256*64, st)
	}
	if s.p.state.Sources["code"].Epoch == 0 {
		t.Fatalf("the small code source should have wrapped into a new epoch: %+v", s.p.state.Sources["code"])
	}
}

// globalBatches returns, for world workers, the concatenation of every
// worker's rows of each step and the stream states after each step.
func globalBatches(t *testing.T, srcs []Source, world, steps, seqs, micro int, from *packedStreamState) ([][]int32, []string) {
	t.Helper()
	out := make([][]int32, steps)
	var states []string
	for rank := range world {
		s, err := newPackedStream(srcs, packedStreamOptions{SeqLen: 32, Seed: 9, Vocab: 32, HeldOut: 0.05, Window: 5}, from)
		if err != nil {
			t.Fatal(err)
		}
		l, err := newBatchLoader(s, seqs, micro, rank, world)
		if err != nil {
			t.Fatal(err)
		}
		pf := prefetch(l, 0, steps, 2)
		for step := range steps {
			sb, err := pf.Next()
			if err != nil {
				t.Fatal(err)
			}
			if sb.Step != step {
				t.Fatalf("batch for step %d, want %d", sb.Step, step)
			}
			for _, mb := range sb.Micro {
				if mb.Denominator != float64(sb.Targets) {
					t.Fatalf("denominator %v, global targets %d", mb.Denominator, sb.Targets)
				}
				out[step] = append(out[step], mb.Tokens...)
				out[step] = append(out[step], mb.Targets...)
				out[step] = append(out[step], mb.DocIDs...)
			}
			js, _ := json.Marshal(sb.State)
			if rank == 0 {
				states = append(states, string(js))
			} else if states[step] != string(js) {
				t.Fatalf("rank %d has a different stream state after step %d", rank, step)
			}
			pf.Release(sb)
		}
		pf.Close()
		s.Close()
	}
	return out, states
}

// TestWorldSizes: the data of each global batch, and the stream state
// after it, are identical for 1, 2 and 4 workers; a stream resumed from a
// saved state continues exactly.
func TestWorldSizes(t *testing.T) {
	srcs := twoSources(t)
	const steps, seqs = 6, 8
	want, wantStates := globalBatches(t, srcs, 1, steps, seqs, 2, nil)
	for _, w := range []int{2, 4} {
		got, states := globalBatches(t, srcs, w, steps, seqs, 2, nil)
		for s := range steps {
			// Rows are laid out rank by rank, micro-batch by micro-batch;
			// compare them as row multisets in the global order.
			if !reflect.DeepEqual(rowsOf(got[s]), rowsOf(want[s])) {
				t.Fatalf("world %d: step %d differs from world 1", w, s)
			}
		}
		if !slices.Equal(states, wantStates) {
			t.Fatalf("world %d: stream states differ", w)
		}
	}
	// Resume after step 3 from the saved state on 2 workers.
	var st packedStreamState
	if err := json.Unmarshal([]byte(wantStates[2]), &st); err != nil {
		t.Fatal(err)
	}
	got, _ := globalBatches(t, srcs, 2, steps-3, seqs, 2, &st)
	for s := range steps - 3 {
		if !reflect.DeepEqual(rowsOf(got[s]), rowsOf(want[s+3])) {
			t.Fatalf("resumed stream differs at step %d", s+3)
		}
	}
}

// rowsOf splits a step's concatenated micro-batches (tokens, targets, doc
// ids per micro-batch of 2 rows of 32) into global rows in order; the
// layout is the same for any number of workers.
func rowsOf(flat []int32) [][]int32 {
	const T, micro = 32, 2
	var rows [][]int32
	for mb := 0; mb*3*micro*T < len(flat); mb++ {
		base := flat[mb*3*micro*T:]
		for r := range micro {
			row := append([]int32(nil), base[r*T:(r+1)*T]...)
			row = append(row, base[micro*T+r*T:micro*T+(r+1)*T]...)
			row = append(row, base[2*micro*T+r*T:2*micro*T+(r+1)*T]...)
			rows = append(rows, row)
		}
	}
	return rows
}

// TestHeldOutDisjoint: the held-out set and the training stream never
// share a document.
func TestHeldOutDisjoint(t *testing.T) {
	srcs := twoSources(t)
	s, err := newPackedStream(srcs, packedStreamOptions{SeqLen: 64, Seed: 1, Vocab: 32, HeldOut: 0.2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seen := map[string]bool{}
	tok, tgt, ids := make([]int32, 64), make([]int32, 64), make([]int32, 64)
	for range 300 {
		if _, err := s.Next(tok, tgt, ids); err != nil {
			t.Fatal(err)
		}
		for _, src := range s.p.srcs {
			if src.loadedGroup >= 0 {
				for _, r := range src.rows {
					if src.eligible(&r) {
						seen[r.ID] = true
					}
				}
			}
		}
	}
	held, train := 0, 0
	for id := range seen {
		if float64(holdoutKey(id)) < 0.2*math.Exp2(64) {
			held++
		} else {
			train++
		}
	}
	if held != 0 || train == 0 {
		t.Fatalf("training saw %d held-out documents (and %d others)", held, train)
	}
}

// TestMinQuality: a source with min_quality yields only documents scored at
// least that high.
func TestMinQuality(t *testing.T) {
	dir := t.TempDir()
	var rows []tokens.TokenRow
	for i := range 40 {
		q := i % 10 // the document's tokens name its quality
		rows = append(rows, tokens.TokenRow{ID: string(rune('a' + i)), Quality: float32(q) / 10, Tokens: []int32{0, int32(2 + q), int32(2 + q), 1}})
	}
	tokenstest.WriteShard(t, filepath.Join(dir, "tokens-00000.parquet"), rows, 8)
	s, err := newPackedStream([]Source{{Name: "hq", Paths: []string{dir}, MinQuality: 0.65}}, packedStreamOptions{SeqLen: 16, Seed: 1, Vocab: 16}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok, tgt, ids := make([]int32, 16), make([]int32, 16), make([]int32, 16)
	seen := map[int32]bool{}
	for range 50 {
		if _, err := s.Next(tok, tgt, ids); err != nil {
			t.Fatal(err)
		}
		for _, v := range tok {
			if v >= 2 {
				seen[v-2] = true
			}
		}
	}
	if len(seen) != 3 || !seen[7] || !seen[8] || !seen[9] {
		t.Fatalf("qualities seen ×10: %v, want 7, 8, 9", seen)
	}
}

// TestMaxDocTokens: long documents are cut into pieces packed as separate
// documents.
func TestMaxDocTokens(t *testing.T) {
	srcs := twoSources(t)
	s, err := newPackedStream(srcs, packedStreamOptions{SeqLen: 64, Seed: 3, Vocab: 32, MaxDocTokens: 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok, tgt, ids := make([]int32, 64), make([]int32, 64), make([]int32, 64)
	long := 0
	for range 100 {
		if _, err := s.Next(tok, tgt, ids); err != nil {
			t.Fatal(err)
		}
		run := 1
		for i := 1; i <= len(ids); i++ {
			if i < len(ids) && ids[i] == ids[i-1] {
				run++
				continue
			}
			if run > 30 {
				t.Fatalf("a document segment of %d tokens with max_doc_tokens 30: %v", run, ids)
			}
			if run == 30 {
				long++
			}
			run = 1
		}
	}
	if long == 0 {
		t.Fatal("no full 30-token pieces seen")
	}
}
