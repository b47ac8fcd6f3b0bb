package tokenizer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// streamIDs encodes r with encodeStream and returns all ids.
func streamIDs(t *testing.T, tok *Tokenizer, r io.Reader, o StreamOptions, chunk int) ([]int32, error) {
	t.Helper()
	var all []int32
	err := tok.encodeStream(context.Background(), r, o, chunk, func(ids []int32) error {
		all = append(all, ids...)
		return nil
	})
	return all, err
}

// TestEncodeStreamMatchesWhole: streaming in chunks of any size, with or
// without special tokens, gives the ids of encoding the whole text, for
// real text, random text from every character class, and special tokens
// (overlapping ones included) placed around the cuts.
func TestEncodeStreamMatchesWhole(t *testing.T) {
	tok := loadRef(t)
	jargon, err := os.ReadFile(filepath.Join(testdata, "corpora", "jargon.txt"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var random strings.Builder
	for range 300 {
		random.WriteString(randomText(rng, 30))
		if rng.IntN(4) == 0 {
			random.WriteString([]string{"<|eot_id|>", "<|begin_of_text|>", "<|eot_id", "<|", "x<|eom_id|>y"}[rng.IntN(5)])
		}
	}
	specialsDense := strings.Repeat("ab<|eot_id|>cd, <|start_header_id|>user<|end_header_id|>\n\nHi.", 200)
	texts := map[string][]byte{
		"jargon":   jargon[:200_000],
		"random":   []byte(random.String()),
		"specials": []byte(specialsDense),
		"empty":    nil,
		"no cuts":  bytes.Repeat([]byte("ab"), 5000),
		"one line": bytes.ReplaceAll(jargon[:100_000], []byte("\n"), []byte(" ")),
	}
	for name, text := range texts {
		for _, special := range []bool{false, true} {
			want := tok.AppendEncode(nil, text, special)
			for _, chunk := range []int{1, 7, 64, 4096} {
				for _, workers := range []int{1, 3} {
					got, err := streamIDs(t, tok, iotest.HalfReader(bytes.NewReader(text)), StreamOptions{AllowSpecial: special, Workers: workers}, chunk)
					if err != nil {
						t.Fatalf("%s special=%v chunk=%d: %v", name, special, chunk, err)
					}
					if !slices.Equal(got, want) {
						t.Fatalf("%s special=%v chunk=%d workers=%d: %d ids, want %d", name, special, chunk, workers, len(got), len(want))
					}
				}
			}
		}
	}

	// Specials that overlap: the cut must follow the token the encoder finds.
	b, err := build(spec{tokens: byteTokens(), specials: []specialToken{{256, "ab."}, {257, "b.c"}, {258, ".cd"}}})
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		var sb strings.Builder
		for range 200 {
			sb.WriteString([]string{"a", "b", ".", "c", "d", " ", "\n", "ab.cd", "xb.cd"}[rng.IntN(9)])
		}
		text := []byte(sb.String())
		want := b.AppendEncode(nil, text, true)
		for _, chunk := range []int{1, 5, 16} {
			got, err := streamIDs(t, b, bytes.NewReader(text), StreamOptions{AllowSpecial: true, Workers: 2}, chunk)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("overlapping specials, chunk %d, %q: %v (%d ids, want %d)", chunk, text, err, len(got), len(want))
			}
		}
	}
}

// byteTokens is the 256 single bytes, a vocabulary without merges.
func byteTokens() [][]byte {
	tokens := make([][]byte, 256)
	for i := range tokens {
		tokens[i] = []byte{byte(i)}
	}
	return tokens
}

// TestEncodeStreamLimits: a run without a safe cut point longer than
// MaxSegment is an error naming the offsets and the limit; out-of-range
// settings and read errors are errors; emit's error stops the stream.
func TestEncodeStreamLimits(t *testing.T) {
	tok := loadRef(t)
	text := "Hello, world. " + strings.Repeat("a", 5000) + " end"
	_, err := streamIDs(t, tok, strings.NewReader(text), StreamOptions{MaxSegment: 1000}, 100)
	if !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), "limit 1000") || !strings.Contains(err.Error(), "between bytes 12 and") {
		t.Fatalf("long run: %v", err)
	}
	if got, err := streamIDs(t, tok, strings.NewReader(text), StreamOptions{MaxSegment: 6000}, 100); err != nil || !slices.Equal(got, tok.Encode([]byte(text))) {
		t.Fatalf("long run under a larger limit: %v", err)
	}
	for _, o := range []StreamOptions{{Workers: -1}, {Workers: MaxWorkers + 1}, {MaxSegment: -1}, {MaxSegment: MaxLimit + 1}} {
		if _, err := streamIDs(t, tok, strings.NewReader("x"), o, 100); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := streamIDs(t, tok, iotest.TimeoutReader(strings.NewReader(strings.Repeat("word ", 100))), StreamOptions{}, 100); !errors.Is(err, iotest.ErrTimeout) {
		t.Errorf("read error: %v", err)
	}
	stop := errors.New("stop")
	if err := tok.EncodeStream(context.Background(), strings.NewReader("a b c"), StreamOptions{}, func([]int32) error { return stop }); err != stop {
		t.Errorf("emit error: %v", err)
	}
}

// TestEncodeStreamMemory streams a 32 MiB single line: the live heap stays
// bounded by a few chunks, independent of the input size.
func TestEncodeStreamMemory(t *testing.T) {
	tok := loadRef(t)
	if testing.Short() {
		t.Skip("encodes 32 MiB")
	}
	data, err := os.ReadFile(filepath.Join(testdata, "corpora", "dict-devil.txt"))
	if err != nil {
		t.Fatal(err)
	}
	line := bytes.ReplaceAll(data, []byte("\n"), []byte(" "))
	const n = 32 << 20
	r := io.LimitReader(&repeatReader{src: line}, n)
	live := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	base, peak := live(), int64(0)
	var ids, calls int
	err = tok.EncodeStream(context.Background(), r, StreamOptions{Workers: 2}, func(x []int32) error {
		ids += len(x)
		if calls++; calls%2 == 0 {
			peak = max(peak, live()-base)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d ids in %d pieces; live heap grew by at most %.1f MiB", ids, calls, float64(peak)/(1<<20))
	if calls < 4 || peak > 8<<20 {
		t.Fatalf("live heap grew by %d bytes for an input of %d bytes in %d pieces; want bounded memory", peak, n, calls)
	}
}

// repeatReader yields src over and over.
type repeatReader struct {
	src []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.src[r.off]
		r.off = (r.off + 1) % len(r.src)
	}
	return len(p), nil
}
