package tokenizer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tinySpec is a small valid vocabulary: the 256 bytes, a few merges and the
// Llama specials.
func tinySpec() spec {
	var s spec
	for b := 0; b < 256; b++ {
		s.tokens = append(s.tokens, []byte{byte(b)})
	}
	add := func(l, r string) {
		var li, ri int32 = -1, -1
		for id, tok := range s.tokens {
			if string(tok) == l {
				li = int32(id)
			}
			if string(tok) == r {
				ri = int32(id)
			}
		}
		s.tokens = append(s.tokens, []byte(l+r))
		s.merges = append(s.merges, Merge{li, ri})
	}
	add("t", "h")
	add("th", "e")
	add(" ", "th")
	add(" th", "e")
	add("<", "|")
	s.ignoreMerges = true
	for i, name := range LlamaSpecials() {
		s.specials = append(s.specials, specialToken{id: int32(len(s.tokens) + i), content: name})
	}
	s.cfg = Config{BOS: BeginOfText, EOS: EOT, AddBOS: true}
	return s
}

func tinyTokenizer(t testing.TB) *Tokenizer {
	tok, err := build(tinySpec())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTinyEncode(t *testing.T) {
	tok := tinyTokenizer(t)
	got := tok.Encode([]byte("the theme"))
	want := []int32{257, 32, 257, 'm', 'e'} // (t,h) then (th,e) fire before (" ",th)
	if !slices.Equal(got, want) {
		t.Fatalf("Encode = %v, want %v", got, want)
	}
}

// TestWriteReadReference writes the reference tokenizer and reads it back:
// same vocabulary, merges, specials, config, and the same ids on every case.
func TestWriteReadReference(t *testing.T) {
	ref := loadRef(t)
	dir := t.TempDir()
	if err := ref.WriteHF(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	assertSameTokenizer(t, ref, back)
	for i, c := range loadEncodeCases(t) {
		if got := back.Encode([]byte(c.Text)); !slices.Equal(got, c.IDs) {
			t.Fatalf("case %d differs after write/read", i)
		}
	}
}

func assertSameTokenizer(t *testing.T, a, b *Tokenizer) {
	t.Helper()
	if a.VocabSize() != b.VocabSize() || a.NumBPE() != b.NumBPE() {
		t.Fatalf("sizes %d/%d vs %d/%d", a.VocabSize(), a.NumBPE(), b.VocabSize(), b.NumBPE())
	}
	for id := range a.VocabSize() {
		if !bytes.Equal(a.Token(int32(id)), b.Token(int32(id))) || a.IsSpecial(int32(id)) != b.IsSpecial(int32(id)) {
			t.Fatalf("token %d: %q vs %q", id, a.Token(int32(id)), b.Token(int32(id)))
		}
	}
	if len(a.Merges()) != len(b.Merges()) {
		t.Fatalf("%d vs %d merges", len(a.Merges()), len(b.Merges()))
	}
	for i := range a.Merges() {
		if a.Merges()[i] != b.Merges()[i] {
			t.Fatalf("merge %d: %v vs %v", i, a.Merges()[i], b.Merges()[i])
		}
	}
	if a.Config() != b.Config() {
		t.Fatalf("config %+v vs %+v", a.Config(), b.Config())
	}
}

func TestHFToken(t *testing.T) {
	tok := loadRef(t)
	for id, want := range map[int32]string{279: "Ġthe", 198: "Ċ", 128009: EOT, 0: "!", -1: "", 128256: ""} {
		if got := tok.HFToken(id); got != want {
			t.Errorf("HFToken(%d) = %q, want %q", id, got, want)
		}
	}
}

// tiktokenFile writes tok's BPE tokens as a tiktoken ranks file (rank = id).
func tiktokenFile(tok *Tokenizer) []byte {
	var b bytes.Buffer
	for id := range tok.NumBPE() {
		fmt.Fprintf(&b, "%s %d\n", base64.StdEncoding.EncodeToString(tok.Token(int32(id))), id)
	}
	return b.Bytes()
}

// TestTiktokenReference loads the Llama 3 ranks in tiktoken form (Llama 3's
// ids are its tiktoken ranks) and checks every encode case: tiktoken's
// merge rule gives the same ids as the HF merges.
func TestTiktokenReference(t *testing.T) {
	ref := loadRef(t)
	path := filepath.Join(t.TempDir(), "tokenizer.model")
	if err := os.WriteFile(path, tiktokenFile(ref), 0o644); err != nil {
		t.Fatal(err)
	}
	tt, err := LoadTiktoken(path, LlamaSpecials(), Config{BOS: BeginOfText, EOS: EOT})
	if err != nil {
		t.Fatal(err)
	}
	if tt.VocabSize() != ref.VocabSize() {
		t.Fatalf("vocab %d", tt.VocabSize())
	}
	for i, c := range loadEncodeCases(t) {
		if got := tt.Encode([]byte(c.Text)); !slices.Equal(got, c.IDs) {
			t.Fatalf("case %d %q:\n got %v\nwant %v", i, clipStr(c.Text), got, c.IDs)
		}
	}
	// Written as tokenizer.json (with one merge per split) it reads back
	// and still encodes the same.
	dir := t.TempDir()
	if err := tt.WriteHF(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range loadEncodeCases(t) {
		if got := back.Encode([]byte(c.Text)); !slices.Equal(got, c.IDs) {
			t.Fatalf("case %d differs after tiktoken → tokenizer.json", i)
		}
	}
}

func TestParseHFErrors(t *testing.T) {
	good, _, err := tinyTokenizer(t).MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseHF(good, nil); err != nil {
		t.Fatalf("tiny tokenizer.json does not parse: %v", err)
	}
	g := string(good)
	cases := []struct {
		name, in, want string
	}{
		{"garbled", g[:len(g)/2], "unexpected end of JSON"},
		{"not json", "{\"model\": [1,2,", "unexpected end"},
		{"no model", `{"added_tokens": []}`, "no \"model\""},
		{"wordpiece", strings.Replace(g, `"type": "BPE"`, `"type": "WordPiece"`, 1), "model type \"WordPiece\""},
		{"unknown pattern", strings.Replace(g, `\\p{N}{1,3}`, `\\p{N}+`, 1), "unknown pre-tokenization pattern"},
		{"normalizer", strings.Replace(g, `"normalizer": null`, `"normalizer": {"type": "NFC"}`, 1), "normalizer"},
		{"hole", strings.Replace(g, `"Ā": 0,`, ``, 1), "hole"},
		{"duplicate token", strings.Replace(g, `"ā": 1,`, `"Ā": 1,`, 1), "duplicate token"},
		{"shared id", strings.Replace(g, `"ā": 1,`, `"ā": 0,`, 1), "share id 0"},
		{"bad alphabet", strings.Replace(g, `"ā": 1,`, `"ā€": 1,`, 1), "byte-level alphabet"},
		{"unknown merge", strings.Replace(g, `"t h"`, `"t zz"`, 1), "not in the vocabulary"},
		{"special hole", strings.Replace(g, `"id": 261,`, `"id": 300,`, 1), "without holes"},
		{"lstrip", strings.Replace(g, `"lstrip": false`, `"lstrip": true`, 1), "lstrip"},
	}
	for _, c := range cases {
		_, err := ParseHF([]byte(c.in), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ParseHF(good, []byte(`{"added_tokens_decoder": {"261": {"content": "<|x|>"}}}`)); err == nil || !strings.Contains(err.Error(), "added_tokens_decoder") {
		t.Errorf("inconsistent config: %v", err)
	}
}

func TestParseTiktokenErrors(t *testing.T) {
	var b strings.Builder
	for i := range 256 {
		fmt.Fprintf(&b, "%s %d\n", base64.StdEncoding.EncodeToString([]byte{byte(i)}), i)
	}
	good := b.String()
	if _, err := parseTiktoken(strings.NewReader(good), nil, Config{}); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, in, want string }{
		{"hole", good + "YWI= 300\n", "holes"},
		{"dup rank", good + "YWI= 5\n", "given twice"},
		{"dup token", good + "YQ== 256\n", "ranks 97 and 256"},
		{"base64", good + "!!! 256\n", "not base64"},
		{"no rank", good + "YWI=\n", "want"},
		{"missing byte", strings.Replace(good, "AA== 0\n", "YWI= 0\n", 1), "lacks the single byte 0x00"},
	}
	for _, c := range cases {
		_, err := parseTiktoken(strings.NewReader(c.in), nil, Config{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// FuzzParseHF parses arbitrary tokenizer.json / tokenizer_config.json
// pairs; a tokenizer that parses must round-trip text.
//
// A valid tokenizer.json holds at least the 256 byte tokens: kilobytes,
// which the fuzzer would spend the whole run minimizing. So unless raw is
// set, the document is assembled around fixed parts, and the fuzzer
// writes only what varies: more vocabulary entries after the 256 bytes
// (vocab), the merges, and the top-level fields after the fixed
// normalizer, pre-tokenizer and decoder (rest; a repeated key there
// replaces the fixed one). With raw, tj is the whole document.
func FuzzParseHF(f *testing.F) {
	tok, err := build(tinySpec())
	if err != nil {
		f.Fatal(err)
	}
	full, _, err := tok.MarshalHF()
	if err != nil {
		f.Fatal(err)
	}
	cfg := []byte(`{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "model_max_length": 8}`)
	var parts map[string]json.RawMessage
	if err := json.Unmarshal(full, &parts); err != nil {
		f.Fatal(err)
	}
	var head bytes.Buffer
	head.WriteString(`{"model": {"type": "BPE", "ignore_merges": true, "vocab": {`)
	for b := range 256 {
		if b > 0 {
			head.WriteByte(',')
		}
		fmt.Fprintf(&head, "%q:%d", byteLevelEncode([]byte{byte(b)}), b)
	}
	fixed := fmt.Sprintf(`, "normalizer": null, "pre_tokenizer": %s, "decoder": %s`, parts["pre_tokenizer"], parts["decoder"])
	assemble := func(vocab, merges, rest []byte) []byte {
		doc := append(bytes.Clone(head.Bytes()), vocab...)
		doc = append(append(append(doc, `}, "merges": [`...), merges...), "]}"...)
		doc = append(append(doc, fixed...), rest...)
		return append(doc, '}')
	}
	vocab := []byte(`, "th": 256, "the": 257`)
	merges := []byte(`"t h", "th e"`)
	rest := []byte(`, "added_tokens": [{"id": 258, "content": "<|begin_of_text|>", "special": true}, {"id": 259, "content": "<|eot_id|>", "special": true}]`)
	if _, err := ParseHF(assemble(vocab, merges, rest), cfg); err != nil {
		f.Fatalf("assembled seed: %v", err)
	}
	f.Add(vocab, merges, rest, cfg, false)
	f.Add(vocab, merges, []byte(`, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>"}}]}`), []byte(nil), false)
	f.Add([]byte(nil), []byte(`["t", "h"]`), []byte(`, "pre_tokenizer": null`), []byte(nil), false)
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 99999999}}}`), []byte(nil), []byte(nil), []byte(nil), true)
	f.Fuzz(func(t *testing.T, vocab, merges, rest, cj []byte, raw bool) {
		tj := vocab
		if !raw {
			tj = assemble(vocab, merges, rest)
		}
		tok, err := ParseHF(tj, cj)
		if err != nil {
			return
		}
		text := []byte("the <|eot_id|> theme\xff")
		if dec, err := tok.Decode(tok.EncodeSpecial(text)); err != nil || !bytes.Equal(dec, text) {
			t.Fatalf("round trip: %q, %v", dec, err)
		}
	})
}

// FuzzParseTiktoken parses arbitrary ranks files; a tokenizer that parses
// must round-trip text. A valid file needs the 256 single bytes (2.5 KB,
// too long to minimize), so with prefix set the fuzzer's text follows a
// fixed block of the 256 byte lines.
func FuzzParseTiktoken(f *testing.F) {
	var b strings.Builder
	for i := range 256 {
		fmt.Fprintf(&b, "%s %d\n", base64.StdEncoding.EncodeToString([]byte{byte(i)}), i)
	}
	bytesBlock := b.String()
	f.Add("dGg= 256\ndGhl 257\n", true)
	f.Add("dGg= 256\ndGg= 257\n", true)
	f.Add("YQ== 0\n", false)
	f.Add("YQ== 0\nYg== 2\n", false)
	f.Fuzz(func(t *testing.T, in string, prefix bool) {
		if prefix {
			in = bytesBlock + in
		}
		tok, err := parseTiktoken(strings.NewReader(in), LlamaSpecials()[:3], Config{})
		if err != nil {
			return
		}
		text := []byte("the theme\xff")
		if dec, err := tok.Decode(tok.Encode(text)); err != nil || !bytes.Equal(dec, text) {
			t.Fatalf("round trip: %q, %v", dec, err)
		}
	})
}
