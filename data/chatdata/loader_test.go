package chatdata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/model"
)

// TestFormatsIdentical: plain, .gz and .zst JSONL and Parquet give the
// same batches.
func TestFormatsIdentical(t *testing.T) {
	tok := testTokenizer(t)
	for _, kind := range []string{"sft", "pref"} {
		lines := sftLines
		if kind == "pref" {
			lines = prefLines
		}
		var ref any
		if kind == "sft" {
			lines = append(slices.Clone(lines), toolsLine)
		}
		for _, name := range []string{"a.jsonl", "a.jsonl.gz", "a.jsonl.zst", "a.parquet"} {
			dir := t.TempDir()
			var p string
			if strings.HasSuffix(name, ".parquet") {
				p = writeParquet(t, filepath.Join(dir, name), lines)
			} else {
				p = writeFile(t, dir, name, jsonl(lines))
			}
			o := Options{Paths: []string{p}, Tokenizer: tok, Encode: EncodeOptions{SeqLen: 512}, Shuffle: 1, Epochs: 1, Strict: true}
			var got any
			var stats Stats
			if kind == "sft" {
				l, err := NewSFTLoader(SFTOptions{Options: o, Rows: 3}, nil)
				if err != nil {
					t.Fatal(err)
				}
				got = collectSFT(t, l, -1)
				stats = l.Stats()
				l.Close()
			} else {
				l, err := NewPrefLoader(PrefOptions{Options: o, Examples: 2, Ranked: true}, nil)
				if err != nil {
					t.Fatal(err)
				}
				got = collectPref(t, l, -1)
				stats = l.Stats()
				l.Close()
			}
			if stats.Examples != int64(len(lines)) || stats.Rows != int64(len(lines)) {
				t.Fatalf("%s %s: stats %v", kind, name, stats)
			}
			if ref == nil {
				ref = got
				continue
			}
			if !reflect.DeepEqual(got, ref) {
				t.Fatalf("%s: %s gives other batches than a.jsonl", kind, name)
			}
		}
	}
}

// TestBadRows counts a bad row of every reason, with its file:line.
func TestBadRows(t *testing.T) {
	tok := testTokenizer(t)
	long := strings.Repeat("The quick brown fox. ", 30)
	sftBad := []struct{ line, reason string }{
		{sftLines[0], ""},
		{``, ""}, // blank: not a row
		{`{"messages": [{"role": "user"`, ReasonMalformedJSON},
		{`{"text": "hello"}`, ReasonMissingField},
		{`{"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}`, ReasonUnknownRole},
		{`{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "   "}]}`, ReasonEmptyResponse},
		{`{"messages": [{"role": "user", "content": "x"}]}`, ReasonEmptyResponse},
		{`{"prompt": "` + long + `", "completion": "y"}`, ReasonTooLong},
		{`{"messages": [{"role": "user", "content": [1, 2]}, {"role": "assistant", "content": "y"}]}`, ReasonUnrenderable},
		{`{"messages": [{"role": "assistant", "tool_calls": [{"name": "a"}, {"name": "b"}]}]}`, ReasonUnrenderable},
		{`{"prompt": "x", "completion": "` + strings.Repeat("y", 1200) + `"}`, ReasonLineTooLong},
		{`{"prompt": ["x"], "completion": "y"}`, ReasonInvalidField},
		{sftLines[1], ""},
	}
	prefBad := []struct{ line, reason string }{
		{prefLines[0], ""},
		{`{"prompt": "a", "chosen": "b"}`, ReasonMissingField},
		{`{"prompt": "a", "chosen": "", "rejected": "c"}`, ReasonEmptyResponse},
		{`{"prompt": "` + long + `", "chosen": "b", "rejected": "c"}`, ReasonTooLong},
		{`{"prompt": [{"role": "user", "content": {"a": 1}}], "chosen": "b", "rejected": "c"}`, ReasonUnrenderable},
		{`{"prompt": "a", "chosen": [{"role": "critic", "content": "b"}], "rejected": "c"}`, ReasonUnknownRole},
		{`not json`, ReasonMalformedJSON},
		{prefLines[1], ""},
	}
	for _, kind := range []string{"sft", "pref"} {
		var lines, reasons []string
		if kind == "sft" {
			for _, c := range sftBad {
				lines, reasons = append(lines, c.line), append(reasons, c.reason)
			}
		} else {
			for _, c := range prefBad {
				lines, reasons = append(lines, c.line), append(reasons, c.reason)
			}
		}
		for _, format := range []string{"jsonl", "parquet"} {
			dir := t.TempDir()
			var p string
			if format == "parquet" {
				var nonBlank []string
				var rs []string
				for i, l := range lines {
					r := reasons[i]
					if r == ReasonInvalidField {
						// ["x"] is not a list of messages: in Parquet it
						// is the plain text `["x"]`.
						r = ""
					}
					if l != "" && r != ReasonMalformedJSON {
						nonBlank, rs = append(nonBlank, l), append(rs, r)
					}
				}
				lines, reasons = nonBlank, rs
				p = writeParquet(t, filepath.Join(dir, "bad.parquet"), lines)
			} else {
				p = writeFile(t, dir, "bad.jsonl", jsonl(lines))
			}
			o := Options{Paths: []string{p}, Tokenizer: tok, Encode: EncodeOptions{SeqLen: 100}, Shuffle: 4, Epochs: 1, MaxLineBytes: 1000, Samples: 10}
			var st Stats
			if kind == "sft" {
				l, err := NewSFTLoader(SFTOptions{Options: o, Rows: 1}, nil)
				if err != nil {
					t.Fatal(err)
				}
				collectSFT(t, l, -1)
				st = l.Stats()
			} else {
				l, err := NewPrefLoader(PrefOptions{Options: o, Examples: 1}, nil)
				if err != nil {
					t.Fatal(err)
				}
				collectPref(t, l, -1)
				st = l.Stats()
			}
			want := map[string]int64{}
			var wantSamples []string
			good := int64(0)
			rows := int64(0)
			for i, r := range reasons {
				if lines[i] != "" {
					rows++
				}
				if r == "" {
					if lines[i] != "" {
						good++
					}
					continue
				}
				want[r]++
				loc := fmt.Sprintf("%s:%d", p, i+1)
				if format == "parquet" {
					loc = fmt.Sprintf("%s:row%d", p, i+1)
				}
				wantSamples = append(wantSamples, r+" "+loc)
			}
			if !sameCounts(st.Bad, want) || st.Examples != good || st.Rows != rows {
				t.Fatalf("%s %s: stats %+v, want bad %v, %d examples of %d rows", kind, format, st, want, good, rows)
			}
			for _, s := range wantSamples {
				reason, loc, _ := strings.Cut(s, " ")
				if !slices.ContainsFunc(st.Samples[reason], func(x string) bool { return strings.HasPrefix(x, loc+": ") }) {
					t.Errorf("%s %s: no sample %s for %s in %v", kind, format, loc, reason, st.Samples[reason])
				}
			}
			if !strings.Contains(st.String(), "bad (") {
				t.Errorf("summary %q", st.String())
			}

			// Strict: the first bad row is an error naming it.
			o.Strict = true
			first := slices.IndexFunc(reasons, func(r string) bool { return r != "" })
			loc := fmt.Sprintf("%s:%d: %s", p, first+1, reasons[first])
			if format == "parquet" {
				loc = fmt.Sprintf("%s:row%d: %s", p, first+1, reasons[first])
			}
			var err error
			if kind == "sft" {
				l, _ := NewSFTLoader(SFTOptions{Options: o, Rows: 1}, nil)
				_, err = l.Next(context.Background())
			} else {
				l, _ := NewPrefLoader(PrefOptions{Options: o, Examples: 1}, nil)
				_, err = l.Next(context.Background())
			}
			var re *rowError
			if err == nil || !strings.Contains(err.Error(), loc) || !errors.As(err, &re) {
				t.Errorf("%s %s strict: %v, want %q", kind, format, err, loc)
			}
		}
	}
}

func sameCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// examplesInOrder encodes lines directly (file order).
func examplesInOrder(t *testing.T, tok *tokenizer.Tokenizer, o EncodeOptions, lines []string) []SFTExample {
	t.Helper()
	enc, err := NewEncoder(tok, o)
	if err != nil {
		t.Fatal(err)
	}
	var out []SFTExample
	for _, l := range lines {
		r, err := ParseSFT([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		x, err := enc.SFT(r)
		if err != nil {
			continue
		}
		out = append(out, x)
	}
	return out
}

// positions computes the model's positions from DocIDs.
func positions(b *model.Batch) []int {
	pos := make([]int, len(b.Tokens))
	for r := 0; r < b.B; r++ {
		start := 0
		for i := 0; i < b.T; i++ {
			k := r*b.T + i
			if b.DocIDs != nil && i > 0 && b.DocIDs[k] != b.DocIDs[k-1] {
				start = i
			}
			pos[k] = i - start
		}
	}
	return pos
}

// TestPacking: every example appears whole, in order, as its own document
// starting at position 0, targets never cross documents, and a row ends
// only when the next example does not fit.
func TestPacking(t *testing.T) {
	tok := testTokenizer(t)
	var lines []string
	for range 3 {
		lines = append(lines, sftLines...)
	}
	p := writeFile(t, t.TempDir(), "a.jsonl", jsonl(lines))
	eo := EncodeOptions{SeqLen: 160}
	want := examplesInOrder(t, tok, eo, lines)
	if len(want) != len(lines) {
		t.Fatalf("%d examples of %d lines", len(want), len(lines))
	}
	pad := traintest.SpecialID(t, tok, tokenizer.FinetunePad)
	for _, pack := range []bool{true, false} {
		l, err := NewSFTLoader(SFTOptions{Options: Options{Paths: []string{p}, Tokenizer: tok, Encode: eo, Shuffle: 1, Epochs: 1}, Rows: 3, Pack: pack, PadID: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		batches := collectSFT(t, l, -1)
		next := 0
		var weights, wantWeights float64
		for _, x := range want {
			for _, w := range x.Weights {
				wantWeights += float64(w)
			}
		}
		for bi := range batches {
			b := &batches[bi]
			if err := b.Validate(&model.Config{VocabSize: tok.VocabSize(), MaxPositionEmbeddings: b.T}); err != nil {
				t.Fatal(err)
			}
			if (b.DocIDs != nil) != pack {
				t.Fatalf("pack=%v: DocIDs %v", pack, b.DocIDs != nil)
			}
			pos := positions(b)
			for r := 0; r < b.B; r++ {
				i := 0
				doc := int32(0)
				for i < b.T && next < len(want) {
					x := want[next]
					if i+len(x.IDs) > b.T {
						break
					}
					k := r*b.T + i
					if !slices.Equal(b.Tokens[k:k+len(x.IDs)], x.IDs) || !slices.Equal(b.Weights[k:k+len(x.IDs)], x.Weights) {
						t.Fatalf("pack=%v batch %d row %d at %d: example %d differs", pack, bi, r, i, next)
					}
					if !slices.Equal(b.Targets[k:k+len(x.IDs)], x.Targets()) {
						t.Fatalf("pack=%v batch %d row %d: targets of example %d differ", pack, bi, r, next)
					}
					for j := 0; j < len(x.IDs); j++ {
						if pos[k+j] != j || pack && b.DocIDs[k+j] != doc {
							t.Fatalf("pack=%v batch %d row %d: position %d doc %d at example offset %d", pack, bi, r, pos[k+j], b.DocIDs[k+j], j)
						}
					}
					i += len(x.IDs)
					doc++
					next++
					if !pack {
						break
					}
				}
				for j := r*b.T + i; j < (r+1)*b.T; j++ {
					if b.Tokens[j] != pad || b.Targets[j] != -1 || b.Weights[j] != 0 {
						t.Fatalf("pack=%v batch %d row %d: pad position %d is %d/%d/%v", pack, bi, r, j-r*b.T, b.Tokens[j], b.Targets[j], b.Weights[j])
					}
					if pack && i > 0 && b.DocIDs[j] != doc {
						t.Fatalf("pad doc id %d, want %d", b.DocIDs[j], doc)
					}
				}
			}
			for _, w := range b.Weights {
				weights += float64(w)
			}
		}
		if next != len(want) || weights != wantWeights {
			t.Fatalf("pack=%v: %d of %d examples, weight %v of %v", pack, next, len(want), weights, wantWeights)
		}
		if pack && len(batches) >= (len(want)+2)/3 {
			t.Fatalf("packing used %d batches of 3 rows for %d examples", len(batches), len(want))
		}
	}
}

// TestPrefBatchLayout: chosen and rejected of example k in rows 2k and
// 2k+1 (edited in 3k+2 when ranked), weights the shifted scored masks,
// Last the final token.
func TestPrefBatchLayout(t *testing.T) {
	tok := testTokenizer(t)
	p := writeFile(t, t.TempDir(), "p.jsonl", jsonl(prefLines))
	eo := EncodeOptions{SeqLen: 128}
	enc, _ := NewEncoder(tok, eo)
	for _, ranked := range []bool{false, true} {
		l, err := NewPrefLoader(PrefOptions{Options: Options{Paths: []string{p}, Tokenizer: tok, Encode: eo, Shuffle: 1, Epochs: 1}, Examples: 4, Ranked: ranked, PadID: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		batches := collectPref(t, l, -1)
		per := 2
		if ranked {
			per = 3
		}
		if len(batches) != 2 || batches[0].Examples != 4 || batches[1].Examples != 2 || batches[0].B != 4*per {
			t.Fatalf("ranked=%v: %d batches", ranked, len(batches))
		}
		for i, line := range prefLines {
			b := &batches[i/4]
			k := i % 4
			row, _ := ParsePref([]byte(line))
			if !ranked {
				row.Edited = nil
			}
			x, err := enc.Pref(row)
			if err != nil {
				t.Fatal(err)
			}
			check := func(r int, s *Response) {
				T := b.T
				off := r * T
				if s == nil {
					if b.Last[r] != -1 || slices.ContainsFunc(b.Weights[off:off+T], func(w float32) bool { return w != 0 }) {
						t.Fatalf("empty row %d: last %d", r, b.Last[r])
					}
					return
				}
				if !slices.Equal(b.Tokens[off:off+len(s.IDs)], s.IDs) || int(b.Last[r]) != s.Last || int(b.PromptLen[r]) != x.PromptLen {
					t.Fatalf("row %d: tokens/last/prompt differ", r)
				}
				n := int32(0)
				for j := 0; j < T; j++ {
					want := j+1 < len(s.IDs) && s.Scored[j+1]
					if (b.Weights[off+j] == 1) != want || want != (b.Targets[off+j] >= 0) || want && b.Targets[off+j] != s.IDs[j+1] {
						t.Fatalf("row %d position %d: weight %v target %d", r, j, b.Weights[off+j], b.Targets[off+j])
					}
					if want {
						n++
					}
				}
				if n != b.Scored[r] || n == 0 {
					t.Fatalf("row %d: scored %d, want %d", r, b.Scored[r], n)
				}
			}
			check(k*per+RowChosen, &x.Chosen)
			check(k*per+RowRejected, &x.Rejected)
			if ranked {
				check(k*per+RowEdited, x.Edited)
			}
		}
		last := &batches[1]
		for r := 2 * per; r < last.B; r++ {
			if last.Last[r] != -1 {
				t.Fatalf("row %d of the last batch is not empty", r)
			}
		}
	}
}

// resumeInputs writes SFT data over three files of different formats, so
// that resumption crosses files, shuffle windows and epochs.
func resumeInputs(t *testing.T, lines []string) []string {
	dir := t.TempDir()
	n := len(lines)
	writeFile(t, dir, "a.jsonl", jsonl(lines[:n/3]))
	writeFile(t, dir, "b.jsonl.gz", jsonl(lines[n/3:2*n/3]))
	writeParquet(t, filepath.Join(dir, "c.parquet"), lines[2*n/3:])
	return []string{dir}
}

// TestResume: a loader made from the State saved after batch k (through
// JSON) yields exactly the batches an uninterrupted loader yields after
// batch k, and ends with the same Stats.
func TestResume(t *testing.T) {
	tok := testTokenizer(t)
	var lines []string
	for i := range 4 {
		lines = append(lines, sftLines...)
		lines = append(lines, `{"prompt": "bad`+fmt.Sprint(i)+`"}`)
	}
	o := Options{Paths: resumeInputs(t, lines), Tokenizer: tok, Encode: EncodeOptions{SeqLen: 120}, Shuffle: 5, Seed: 7, Epochs: 2}
	so := SFTOptions{Options: o, Rows: 2, Pack: true}
	l, err := NewSFTLoader(so, nil)
	if err != nil {
		t.Fatal(err)
	}
	var full []model.Batch
	var states [][]byte
	for {
		b, err := l.Next(context.Background())
		if err != nil {
			break
		}
		full = append(full, cloneBatch(b))
		js, err := json.Marshal(l.State())
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, js)
	}
	endStats := l.Stats()
	if len(full) < 6 || endStats.Dropped() != 8 {
		t.Fatalf("%d batches, stats %v", len(full), endStats)
	}
	for k := range states {
		var st State
		if err := json.Unmarshal(states[k], &st); err != nil {
			t.Fatal(err)
		}
		r, err := NewSFTLoader(so, &st)
		if err != nil {
			t.Fatal(err)
		}
		rest := collectSFT(t, r, -1)
		if !reflect.DeepEqual(rest, full[k+1:]) && !(len(rest) == 0 && k+1 == len(full)) {
			t.Fatalf("resumed after batch %d: %d batches differ from the %d of the uninterrupted run", k, len(rest), len(full)-k-1)
		}
		if got := r.Stats(); !reflect.DeepEqual(got, endStats) {
			t.Fatalf("resumed after batch %d: stats %v, want %v", k, got, endStats)
		}
	}
	// The seed changes the order; a state is refused by other options.
	o2 := so
	o2.Seed = 8
	other := collectSFT(t, must(NewSFTLoader(o2, nil)), -1)
	if reflect.DeepEqual(other, full) {
		t.Error("seed 8 gives the order of seed 7")
	}
	var st State
	json.Unmarshal(states[0], &st)
	if _, err := NewSFTLoader(o2, &st); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("state of another seed: %v", err)
	}

	// Preferences.
	var plines []string
	for range 3 {
		plines = append(plines, prefLines...)
	}
	po := PrefOptions{Options: Options{Paths: resumeInputs(t, plines), Tokenizer: tok, Encode: EncodeOptions{SeqLen: 120}, Shuffle: 4, Seed: 3, Epochs: 2}, Examples: 3, Ranked: true}
	pl := must(NewPrefLoader(po, nil))
	var pfull []PrefBatch
	var pstates []State
	for {
		b, err := pl.Next(context.Background())
		if err != nil {
			break
		}
		pfull = append(pfull, clonePref(b))
		pstates = append(pstates, pl.State())
	}
	for k, st := range pstates {
		rest := collectPref(t, must(NewPrefLoader(po, &st)), -1)
		if !reflect.DeepEqual(rest, pfull[k+1:]) && !(len(rest) == 0 && k+1 == len(pfull)) {
			t.Fatalf("preferences resumed after batch %d differ", k)
		}
	}
}

func must[T any](x T, err error) T {
	if err != nil {
		panic(err)
	}
	return x
}

// TestShuffle: the shuffle window permutes examples within windows of N,
// deterministically by seed; every example is served once per epoch.
func TestShuffle(t *testing.T) {
	tok := testTokenizer(t)
	p := writeFile(t, t.TempDir(), "a.jsonl", jsonl(sftLines))
	first := func(seed uint64, shuffle int) []int32 {
		l := must(NewSFTLoader(SFTOptions{Options: Options{Paths: []string{p}, Tokenizer: tok, Encode: EncodeOptions{SeqLen: 200}, Shuffle: shuffle, Seed: seed, Epochs: 1}, Rows: 1}, nil))
		var lens []int32
		for _, b := range collectSFT(t, l, -1) {
			var s int32
			for _, w := range b.Weights {
				s += int32(w)
			}
			lens = append(lens, int32(len(slices.DeleteFunc(slices.Clone(b.Tokens), func(x int32) bool { return x == traintest.SpecialID(t, tok, tokenizer.FinetunePad) })))*1000+s)
		}
		return lens
	}
	inOrder := first(1, 1)
	a, b, c := first(1, 8), first(1, 8), first(2, 8)
	if len(a) != len(sftLines) || !slices.Equal(a, b) || slices.Equal(a, inOrder) || slices.Equal(a, c) {
		t.Fatalf("orders: file %v, seed 1 %v %v, seed 2 %v", inOrder, a, b, c)
	}
	sa, so := slices.Clone(a), slices.Clone(inOrder)
	slices.Sort(sa)
	slices.Sort(so)
	if !slices.Equal(sa, so) {
		t.Fatal("the shuffled epoch is not a permutation of the data")
	}
	// A window of 4 keeps each half of the file together.
	w := first(1, 4)
	h1, h2 := slices.Clone(inOrder[:4]), slices.Clone(w[:4])
	slices.Sort(h1)
	slices.Sort(h2)
	if !slices.Equal(h1, h2) {
		t.Fatalf("window of 4: first four %v, file's %v", w[:4], inOrder[:4])
	}
}

// TestSteadyStateAllocs: batches served from a filled window allocate
// nothing.
func TestSteadyStateAllocs(t *testing.T) {
	tok := testTokenizer(t)
	p := writeFile(t, t.TempDir(), "a.jsonl", jsonl(sftLines))
	o := Options{Paths: []string{p}, Tokenizer: tok, Encode: EncodeOptions{SeqLen: 256}, Shuffle: 400}
	ctx := context.Background()
	for _, pack := range []bool{false, true} {
		l := must(NewSFTLoader(SFTOptions{Options: o, Rows: 2, Pack: pack}, nil))
		l.Next(ctx)
		if n := testing.AllocsPerRun(20, func() {
			if _, err := l.Next(ctx); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("pack=%v: %v allocations per batch", pack, n)
		}
	}
	pl := must(NewPrefLoader(PrefOptions{Options: Options{Paths: []string{writeFile(t, t.TempDir(), "p.jsonl", jsonl(prefLines))}, Tokenizer: tok, Encode: EncodeOptions{SeqLen: 256}, Shuffle: 300}, Examples: 2}, nil))
	pl.Next(ctx)
	if n := testing.AllocsPerRun(20, func() {
		if _, err := pl.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("preferences: %v allocations per batch", n)
	}
}

func TestLoaderErrors(t *testing.T) {
	tok := testTokenizer(t)
	dir := t.TempDir()
	good := writeFile(t, dir, "a.jsonl", jsonl(sftLines))
	ctx := context.Background()
	base := Options{Tokenizer: tok, Encode: EncodeOptions{SeqLen: 64}}
	cases := []struct {
		name  string
		paths []string
		want  string
	}{
		{"no paths", nil, "no input paths"},
		{"unknown extension", []string{writeFile(t, dir, "x.txt", []byte("hi"))}, "unknown input format"},
		{"missing", []string{filepath.Join(dir, "nope.jsonl")}, "no such file"},
		{"empty dir", []string{t.TempDir()}, "hold no"},
	}
	for _, c := range cases {
		o := base
		o.Paths = c.paths
		if _, err := NewSFTLoader(SFTOptions{Options: o, Rows: 1}, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	o := base
	o.Paths = []string{good}
	if _, err := NewSFTLoader(SFTOptions{Options: o}, nil); err == nil {
		t.Error("0 rows accepted")
	}
	if _, err := NewPrefLoader(PrefOptions{Options: o}, nil); err == nil {
		t.Error("0 examples accepted")
	}

	// Damaged files: errors naming the file, never a panic.
	bad := []struct{ name, data string }{
		{"junk.parquet", "PAR1 this is not parquet at all PAR1"},
		{"short.parquet", "PAR1"},
		{"huge.parquet", "PAR1xxxxxxxx\xff\xff\xff\x7fPAR1"},
		{"x.jsonl.gz", "not gzip"},
	}
	for _, b := range bad {
		p := filepath.Join(t.TempDir(), b.name)
		os.WriteFile(p, []byte(b.data), 0o644)
		o := base
		o.Paths = []string{p}
		l, err := NewSFTLoader(SFTOptions{Options: o, Rows: 1}, nil)
		if err == nil {
			_, err = l.Next(ctx)
		}
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", b.name, err)
		}
	}
	// A truncated real Parquet file.
	pq := writeParquet(t, filepath.Join(t.TempDir(), "t.parquet"), sftLines)
	data, _ := os.ReadFile(pq)
	for _, cut := range []int{len(data) / 2, len(data) - 9} {
		os.WriteFile(pq, data[:cut], 0o644)
		o := base
		o.Paths = []string{pq}
		l, err := NewSFTLoader(SFTOptions{Options: o, Rows: 1}, nil)
		if err == nil {
			_, err = l.Next(ctx)
		}
		if err == nil {
			t.Errorf("parquet cut at %d accepted", cut)
		}
	}
	// Corrupt page data after a valid footer: an error or examples, no panic.
	os.WriteFile(pq, data, 0o644)
	for i := 4; i < len(data)/2; i += 7 {
		d := slices.Clone(data)
		d[i] ^= 0x5a
		os.WriteFile(pq, d, 0o644)
		o := base
		o.Paths = []string{pq}
		o.Epochs = 1
		if l, err := NewSFTLoader(SFTOptions{Options: o, Rows: 4}, nil); err == nil {
			for {
				if _, err := l.Next(ctx); err != nil {
					break
				}
			}
		}
	}

	// Cancellation.
	o = base
	o.Paths = []string{good}
	l := must(NewSFTLoader(SFTOptions{Options: o, Rows: 1}, nil))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Next(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	if _, err := l.Next(ctx); err == nil || !strings.Contains(err.Error(), "from its State") {
		t.Errorf("a loader whose window failed continued: %v", err)
	}
	if _, err := NewSFTLoader(SFTOptions{Options: Options{Paths: []string{good}, Tokenizer: tok, Encode: EncodeOptions{SeqLen: 64}, Shuffle: MaxShuffle + 1}, Rows: 1}, nil); err == nil {
		t.Error("a huge shuffle window accepted")
	}
	// A file without any row in an endless run is an error, not a hang.
	empty := writeFile(t, t.TempDir(), "e.jsonl", []byte("\n\n"))
	o.Paths = []string{empty}
	l = must(NewSFTLoader(SFTOptions{Options: o, Rows: 1}, nil))
	if _, err := l.Next(ctx); err == nil || !strings.Contains(err.Error(), "gave no example") {
		t.Errorf("empty endless input: %v", err)
	}
}

// TestHoldOut: the held-out and training splits partition the rows, by
// content, the same in JSONL and Parquet and whatever the seed.
func TestHoldOut(t *testing.T) {
	tok := testTokenizer(t)
	var lines []string
	for i := range 40 {
		lines = append(lines, fmt.Sprintf(`{"prompt": "Hello %d", "completion": "Fine %d"}`, i, i))
	}
	dir := t.TempDir()
	js := writeFile(t, dir, "a.jsonl", jsonl(lines))
	pq := writeParquet(t, filepath.Join(dir, "b.parquet"), lines)
	texts := func(path string, held bool, seed uint64) []string {
		l := must(NewSFTLoader(SFTOptions{Options: Options{Paths: []string{path}, Tokenizer: tok, Encode: EncodeOptions{SeqLen: 64}, Seed: seed, Epochs: 1, HoldOut: 0.3, HeldOut: held}, Rows: 1}, nil))
		var out []string
		for _, b := range collectSFT(t, l, -1) {
			d, _ := tok.Decode(b.Tokens)
			out = append(out, string(d))
		}
		st := l.Stats()
		if st.Rows+st.OtherSplit != 40 || st.Rows != int64(len(out)) {
			t.Fatalf("stats %+v", st)
		}
		slices.Sort(out)
		return out
	}
	train, held := texts(js, false, 1), texts(js, true, 1)
	if len(held) < 4 || len(held) > 20 || len(train)+len(held) != 40 {
		t.Fatalf("%d held out, %d train", len(held), len(train))
	}
	for _, h := range held {
		if slices.Contains(train, h) {
			t.Fatalf("%q in both splits", h)
		}
	}
	if !slices.Equal(texts(pq, true, 5), held) || !slices.Equal(texts(js, false, 9), train) {
		t.Fatal("the split depends on the format or the seed")
	}
	if _, err := NewSFTLoader(SFTOptions{Options: Options{Paths: []string{js}, Tokenizer: tok, Encode: EncodeOptions{SeqLen: 64}, HoldOut: 1}, Rows: 1}, nil); err == nil {
		t.Error("HoldOut 1 accepted")
	}
}

// TestPackTruncateLeft: examples longer than T are cut from the left
// (counted in Stats) and packed whole, never split across rows.
func TestPackTruncateLeft(t *testing.T) {
	tok := testTokenizer(t)
	var lines []string
	for i := range 6 {
		lines = append(lines, fmt.Sprintf(`{"prompt": "%s", "completion": "Fine %d"}`, strings.Repeat("The quick brown fox. ", 3+4*i), i))
	}
	p := writeFile(t, t.TempDir(), "a.jsonl", jsonl(lines))
	const T = 48
	l := must(NewSFTLoader(SFTOptions{Options: Options{Paths: []string{p}, Tokenizer: tok, Encode: EncodeOptions{SeqLen: T, Truncation: TruncateLeft}, Shuffle: 1, Epochs: 1, Strict: true}, Rows: 2, Pack: true}, nil))
	batches := collectSFT(t, l, -1)
	st := l.Stats()
	if st.Examples != 6 || st.Truncated < 3 || st.TruncatedTokens == 0 {
		t.Fatalf("stats %+v", st)
	}
	bos, eot := traintest.SpecialID(t, tok, tokenizer.BeginOfText), traintest.SpecialID(t, tok, tokenizer.EOT)
	docs := 0
	for _, b := range batches {
		for r := 0; r < b.B; r++ {
			row := b.Tokens[r*T : (r+1)*T]
			ids := b.DocIDs[r*T : (r+1)*T]
			for i := range row {
				if i == 0 || ids[i] != ids[i-1] {
					if row[i] == bos {
						docs++
					}
				}
				// Every document that starts with BOS ends with its reply's <|eot_id|>.
				if row[i] == bos && i > 0 && ids[i] == ids[i-1] {
					t.Fatal("BOS inside a document")
				}
			}
			last := -1
			for i := range row {
				if b.Weights[r*T+i] > 0 {
					last = i
				}
			}
			if last >= 0 && row[last+1] != eot {
				t.Fatalf("the last target of row %d is not <|eot_id|>", r)
			}
		}
	}
	if docs != 6 {
		t.Fatalf("%d documents packed, want 6", docs)
	}
}
