package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/testenv"
)

const refDir = "../../../shared/testdata/tokenizer/llama3"

func needRef(t *testing.T) {
	testenv.Testdata(t, refDir)
}

func runCmd(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), err
}

func TestEncodeDecodeReference(t *testing.T) {
	needRef(t)
	out, err := runCmd(t, "Hello world<|eot_id|>", "encode", "-tokenizer", refDir, "-special")
	if err != nil {
		t.Fatal(err)
	}
	// BOS first, as Hugging Face's tokenizer(text) gives it.
	if strings.TrimSpace(out) != "[128000,9906,1917,128009]" {
		t.Fatalf("encode = %s", out)
	}
	dec, err := runCmd(t, out, "decode", "-tokenizer", refDir)
	if err != nil || dec != "<|begin_of_text|>Hello world<|eot_id|>" {
		t.Fatalf("decode = %q, %v", dec, err)
	}
	out, err = runCmd(t, "Hello world<|eot_id|>", "encode", "-tokenizer", refDir, "-special", "-add-bos=false")
	if err != nil || strings.TrimSpace(out) != "[9906,1917,128009]" {
		t.Fatalf("encode -add-bos=false = %s, %v", out, err)
	}
	out, err = runCmd(t, "Hello world<|eot_id|>", "encode", "-tokenizer", refDir)
	if err != nil || strings.Contains(out, "128009") {
		t.Fatalf("encode without -special = %s, %v", out, err)
	}
}

func TestJSONLCommands(t *testing.T) {
	needRef(t)
	out, err := runCmd(t, "{\"text\": \"Hello world\"}\n{\"text\": \"\"}\n", "encode", "-tokenizer", refDir, "-jsonl", "-")
	if err != nil || out != "{\"ids\":[128000,9906,1917]}\n{\"ids\":[128000]}\n" {
		t.Fatalf("encode -jsonl = %q, %v", out, err)
	}
	out, err = runCmd(t, "{\"text\": \"Hello world\"}\n{\"text\": \"\"}\n", "encode", "-tokenizer", refDir, "-jsonl", "-", "-add-bos=false")
	if err != nil || out != "{\"ids\":[9906,1917]}\n{\"ids\":[]}\n" {
		t.Fatalf("encode -jsonl -add-bos=false = %q, %v", out, err)
	}
	out, err = runCmd(t, "", "chat", "-tokenizer", refDir, "-jsonl", filepath.Join(refDir, "chat_cases.jsonl"), "-masks")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	data, _ := os.ReadFile(filepath.Join(refDir, "chat_cases.jsonl"))
	want := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d chat lines, want %d", len(lines), len(want))
	}
	for i := range lines {
		var g, w struct{ IDs []int32 }
		json.Unmarshal([]byte(lines[i]), &g)
		json.Unmarshal([]byte(want[i]), &w)
		if len(g.IDs) == 0 || !slices.Equal(g.IDs, w.IDs) {
			t.Fatalf("chat line %d differs", i+1)
		}
	}
}

func TestTrainCommand(t *testing.T) {
	needRef(t)
	dir := t.TempDir()
	text := strings.Repeat("the quick brown fox jumps over the lazy dog\n", 200)
	if _, err := runCmd(t, text, "train", "-input", "-", "-vocab-size", "600", "-out", dir,
		"-chat-template", filepath.Join(refDir, "tokenizer_config.json")); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, "the lazy dog", "encode", "-tokenizer", dir, "-add-bos=false")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int32
	if err := json.Unmarshal([]byte(out), &ids); err != nil || len(ids) == 0 || len(ids) > 3 {
		t.Fatalf("trained encode = %s, %v", out, err)
	}
	// Training stops early on this tiny text (no pair occurs twice any
	// more), so the specials start right after the BPE tokens it found.
	bos, err := runCmd(t, "<|begin_of_text|>", "encode", "-special", "-add-bos=false", "-tokenizer", dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err = runCmd(t, `{"messages": [{"role": "user", "content": "fox"}], "add_generation_prompt": true}`+"\n", "chat", "-tokenizer", dir, "-jsonl", "-")
	if err != nil || !strings.HasPrefix(out, `{"ids":[`+strings.Trim(strings.TrimSpace(bos), "[]")+",") {
		t.Fatalf("chat with trained tokenizer = %q, %v (BOS %s)", out, err, bos)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"encode"}, {"train", "-input", "x"}, {"chat", "-tokenizer", "x"}, {"encode", "-bogus"}} {
		_, err := runCmd(t, "", args...)
		if _, ok := err.(usageError); !ok {
			t.Errorf("%q: error %v, want a usage error", args, err)
		}
	}
	if _, err := runCmd(t, "", "encode", "-tokenizer", t.TempDir()); err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Errorf("missing tokenizer: %v", err)
	}
}

// TestFlagRanges checks every numeric flag of every subcommand: a value
// outside its range is a usage error naming the flag and the range, found
// before any input is read (the -input and -tokenizer paths below do not
// exist), and flags of other subcommands are refused.
func TestFlagRanges(t *testing.T) {
	none := filepath.Join(t.TempDir(), "absent")
	train := func(extra ...string) []string {
		return append([]string{"train", "-input", none, "-out", t.TempDir(), "-vocab-size", "1000"}, extra...)
	}
	cases := []struct {
		name string
		args []string
		want []string // substrings of the error
	}{
		{"vocab too large", train("-vocab-size", "1000000000"), []string{"-vocab-size", "1000000000", "513", "1048576"}},
		{"vocab only bytes and specials", train("-vocab-size", "512"), []string{"-vocab-size", "512", "513"}},
		{"vocab below bytes", train("-vocab-size", "300"), []string{"-vocab-size", "513"}},
		{"vocab negative", train("-vocab-size", "-5"), []string{"-vocab-size", "513"}},
		{"min frequency negative", train("-min-frequency", "-5"), []string{"-min-frequency", "-5", "at least 1"}},
		{"min frequency zero", train("-min-frequency", "0"), []string{"-min-frequency", "at least 1"}},
		{"train workers negative", train("-workers", "-1"), []string{"-workers", "-1", "0 (all cores)", "1024"}},
		{"train workers huge", train("-workers", "100000000"), []string{"-workers", "1024"}},
		{"encode workers negative", []string{"encode", "-tokenizer", none, "-workers", "-2"}, []string{"-workers", "-2"}},
		{"encode max line", []string{"encode", "-tokenizer", none, "-jsonl", "-", "-max-line", "0"}, []string{"-max-line", "0"}},
		{"encode max segment", []string{"encode", "-tokenizer", none, "-max-segment", "-1"}, []string{"-max-segment", "-1"}},
		{"encode max line huge", []string{"encode", "-tokenizer", none, "-max-line", "2000000000"}, []string{"-max-line", "1073741824"}},
		{"chat workers negative", []string{"chat", "-tokenizer", none, "-jsonl", "-", "-workers", "-1"}, []string{"-workers"}},
		{"chat max line", []string{"chat", "-tokenizer", none, "-jsonl", "-", "-max-line", "-3"}, []string{"-max-line"}},
		{"decode workers negative", []string{"decode", "-tokenizer", none, "-workers", "-1"}, []string{"-workers"}},
		{"decode max line", []string{"decode", "-tokenizer", none, "-jsonl", "-", "-max-line", "0"}, []string{"-max-line"}},
		{"train refuses -max-line", train("-max-line", "5"), []string{"-max-line"}},
		{"train empty -text-field", train("-text-field", ""), []string{"-text-field"}},
		{"train refuses -tokenizer", train("-tokenizer", "x"), []string{"-tokenizer"}},
		{"convert refuses -workers", []string{"convert", "-tiktoken", none, "-out", none, "-workers", "2"}, []string{"-workers"}},
		{"decode refuses -special", []string{"decode", "-tokenizer", none, "-special"}, []string{"-special"}},
		{"encode -max-line without -jsonl", []string{"encode", "-tokenizer", none, "-max-line", "5"}, []string{"-max-line", "-jsonl"}},
		{"encode -max-segment with -jsonl", []string{"encode", "-tokenizer", none, "-jsonl", "-", "-max-segment", "5"}, []string{"-max-segment", "-jsonl"}},
		{"chat refuses -max-segment", []string{"chat", "-tokenizer", none, "-jsonl", "-", "-max-segment", "5"}, []string{"-max-segment"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCmd(t, "", tc.args...)
			if _, ok := err.(usageError); !ok {
				t.Fatalf("error %v (%T), want a usage error", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// proseReader yields n bytes of prose as one line (the reference corpus
// with its line breaks turned into spaces, repeated), generated on the fly
// so that the test's own input takes no memory; every 2 MiB it calls tick.
type proseReader struct {
	src  []byte
	n    int
	off  int
	tick func()
	next int
}

func newProseReader(t *testing.T, n int, tick func()) *proseReader {
	data, err := os.ReadFile(filepath.Join(refDir, "../../corpora/dict-devil.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return &proseReader{src: bytes.ReplaceAll(data, []byte("\n"), []byte(" ")), n: n, tick: tick}
}

func (r *proseReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	if r.tick != nil && r.off >= r.next {
		r.tick()
		r.next += 2 << 20
	}
	p = p[:min(len(p), r.n-r.off)]
	for i := range p {
		p[i] = r.src[(r.off+i)%len(r.src)]
	}
	r.off += len(p)
	return len(p), nil
}

// liveHeap returns the bytes of live heap objects after two collections
// (the second frees what sync.Pools kept as victims through the first).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestEncodeLongLineBoundedMemory encodes a 24 MB single line from
// standard input: the live heap stays far below the input size (the text
// is read and encoded in bounded pieces cut at pre-token boundaries), and
// the output equals the JSON of the ids of the whole text.
func TestEncodeLongLineBoundedMemory(t *testing.T) {
	needRef(t)
	if testing.Short() {
		t.Skip("encodes 24 MB")
	}
	const n = 24 << 20
	// run loads its own copy of the tokenizer (~30 MiB for Llama 3's
	// 128K vocabulary); that fixed cost is not growth with the input.
	before := liveHeap()
	loaded, err := tokenizer.Load(refDir)
	if err != nil {
		t.Fatal(err)
	}
	tokSize := int64(liveHeap()) - int64(before)
	runtime.KeepAlive(loaded)
	loaded = nil
	base := liveHeap()
	var peak uint64
	sample := func() { peak = max(peak, liveHeap()) }
	h := sha256.New()
	out := &sampledWriter{w: h, tick: sample}
	err = run(context.Background(), []string{"encode", "-tokenizer", refDir, "-workers", "2", "-add-bos=false"}, newProseReader(t, n, sample), out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sample()
	growth := int64(peak) - int64(base) - tokSize
	t.Logf("live heap grew by at most %.1f MiB beyond the tokenizer's %.1f MiB while encoding %d MiB", float64(growth)/(1<<20), float64(tokSize)/(1<<20), n>>20)
	if growth > 16<<20 {
		t.Errorf("live heap grew by %d bytes encoding a %d-byte line; want bounded memory (under 16 MiB)", growth, n)
	}
	// The same ids as encoding the whole text at once.
	text, _ := io.ReadAll(newProseReader(t, n, nil))
	tok, err := tokenizer.Load(refDir)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(tok.Encode(text))
	wh := sha256.Sum256(append(want, '\n'))
	if !bytes.Equal(h.Sum(nil), wh[:]) {
		t.Fatal("streamed output differs from the JSON of the ids of the whole text")
	}
}

// sampledWriter passes writes on to w, calling tick every 4 MiB.
type sampledWriter struct {
	w    io.Writer
	tick func()
	n    int
	next int
}

func (s *sampledWriter) Write(p []byte) (int, error) {
	s.n += len(p)
	if s.n >= s.next {
		s.tick()
		s.next += 4 << 20
	}
	return s.w.Write(p)
}

// TestJSONLMaxLine: a -jsonl line longer than -max-line is an error naming
// the line, its length, the limit and the flag; the lines before it are
// written.
func TestJSONLMaxLine(t *testing.T) {
	needRef(t)
	long := `{"text": "` + strings.Repeat("word ", 400) + `"}`
	first := map[string]string{
		"encode": `{"text": "Hello world"}`,
		"chat":   `{"messages": [{"role": "user", "content": "Hello"}]}`,
		"decode": `{"ids": [9906]}`,
	}
	for _, cmd := range []string{"encode", "chat", "decode"} {
		in := first[cmd] + "\n" + long + "\n" + first[cmd] + "\n"
		out, err := runCmd(t, in, cmd, "-tokenizer", refDir, "-jsonl", "-", "-max-line", "1000")
		if err == nil {
			t.Fatalf("%s: no error", cmd)
		}
		for _, w := range []string{"line 2", fmt.Sprint(len(long)), "1000", "-max-line"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", cmd, err, w)
			}
		}
		if cmd == "encode" && out != "{\"ids\":[128000,9906,1917]}\n" {
			t.Errorf("encode: output before the long line = %q", out)
		}
	}
	in := first["encode"] + "\n" + long + "\n" + first["encode"] + "\n"
	out, err := runCmd(t, in, "encode", "-tokenizer", refDir, "-jsonl", "-", "-max-line", "3000")
	if err != nil || strings.Count(out, "\n") != 3 {
		t.Fatalf("with a larger -max-line: %q, %v", out, err)
	}
}

// TestTrainJSONL: training on a JSONL file reads its text field, so the
// tokenizer equals one trained on the same texts as plain text files (one
// per document) and learns nothing of the JSON syntax; -jsonl reads any
// file name, -text-field picks the field, and a line without it is an
// error naming the file and line.
func TestTrainJSONL(t *testing.T) {
	dir := t.TempDir()
	docs := []string{
		"the quick brown fox jumps over the lazy dog",
		"a \"quoted\" word, a backslash \\ and a line\nbreak",
		strings.Repeat("pack my box with five dozen liquor jugs ", 20),
	}
	var jsonl, other bytes.Buffer
	var txts []string
	for i, d := range docs {
		line, _ := json.Marshal(map[string]any{"id": i, "text": d})
		jsonl.Write(append(line, '\n'))
		line, _ = json.Marshal(map[string]any{"body": d})
		other.Write(append(line, '\n'))
		p := filepath.Join(dir, fmt.Sprintf("doc%d.txt", i))
		if err := os.WriteFile(p, []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
		txts = append(txts, p)
	}
	in := filepath.Join(dir, "docs.jsonl")
	odd := filepath.Join(dir, "docs.data")
	if err := os.WriteFile(in, jsonl.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(odd, other.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	train := func(args ...string) string {
		t.Helper()
		out := t.TempDir()
		if _, err := runCmd(t, "", append([]string{"train", "-vocab-size", "700", "-min-frequency", "1", "-out", out}, args...)...); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, tokenizer.TokenizerFile))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	want := train("-input", strings.Join(txts, ","))
	if got := train("-input", in); got != want {
		t.Fatal("-input FILE.jsonl trained another tokenizer than the same texts as text files")
	}
	if got := train("-jsonl", odd, "-text-field", "body"); got != want {
		t.Fatal("-jsonl with -text-field trained another tokenizer than the same texts as text files")
	}
	if got := train("-input", odd); got == want { // read as text: the JSON syntax is learned too
		t.Fatal("a JSONL file read as text trained the same tokenizer: the comparison cannot tell")
	}
	_, err := runCmd(t, "", "train", "-jsonl", odd, "-vocab-size", "700", "-out", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), odd+`:1: no string field "text"`) || !strings.Contains(err.Error(), "-text-field") {
		t.Fatalf("missing field: %v", err)
	}
}
