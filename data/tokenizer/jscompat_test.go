package tokenizer

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsDir holds the JavaScript side of the Hugging Face compatibility check.
const jsDir = "testdata/js"

// needJS skips the test unless node and the installed @lenml/tokenizers
// package are present.
func needJS(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the Hugging Face (transformers.js) compatibility check needs node and npm")
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "@lenml", "tokenizers")); err != nil {
		t.Skipf("@lenml/tokenizers is not installed: run data/tokenizer/%s/install.sh (npm ci) to enable this check", jsDir)
	}
	return node
}

// mixedDocs returns about n bytes of mixed text as documents of at most
// 32 KiB cut at line ends: the English corpora, e-mails (with their 8-bit
// bytes made valid UTF-8, since JavaScript strings are Unicode), Go source
// and the reference encode cases.
func mixedDocs(t *testing.T, n int) []string {
	t.Helper()
	needRef(t)
	var docs []string
	add := func(data []byte, limit int) {
		data = bytes.ToValidUTF8(data[:min(len(data), limit)], []byte("\uFFFD"))
		for len(data) > 0 {
			k := min(len(data), 32<<10)
			if k < len(data) {
				if nl := bytes.LastIndexByte(data[:k], '\n'); nl > 0 {
					k = nl + 1
				}
			}
			for k < len(data) && !utf8.FullRune(data[k-1:]) {
				k++
			}
			docs = append(docs, string(data[:k]))
			data = data[k:]
		}
	}
	per := n / 8
	for _, name := range []string{"kjv.txt", "fortunes.txt", "jargon.txt", "debian-reference.en.txt", "dict-devil.txt"} {
		data, err := os.ReadFile(filepath.Join(testdata, "corpora", name))
		if err != nil {
			t.Fatal(err)
		}
		add(data, per)
	}
	mails, _ := filepath.Glob(filepath.Join(testdata, "corpora", "spamassassin", "*", "*"))
	var mail []byte
	for _, m := range mails {
		if len(mail) >= per {
			break
		}
		data, _ := os.ReadFile(m)
		mail = append(mail, data...)
	}
	add(mail, per)
	add(goSource(t, 2*per), 2*per)
	for _, c := range loadEncodeCases(t) {
		docs = append(docs, c.Text)
	}
	return docs
}

// jsEncode encodes docs with the JavaScript tokenizer loaded from dir.
func jsEncode(t *testing.T, node, dir string, docs []string) [][]int32 {
	t.Helper()
	tmp := t.TempDir()
	in, out := filepath.Join(tmp, "texts.json"), filepath.Join(tmp, "ids.json")
	data, err := json.Marshal(docs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	cmd := exec.Command(node, "encode.mjs", abs, in, out)
	cmd.Dir = jsDir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node encode.mjs: %v\n%s", err, msg)
	}
	data, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var ids [][]int32
	if err := json.Unmarshal(data, &ids); err != nil {
		t.Fatal(err)
	}
	return ids
}

// compareJS encodes docs with tok (recognising special tokens, as Hugging
// Face tokenizers always do) and with the JavaScript tokenizer reading
// tok's written tokenizer.json, and requires identical ids.
func compareJS(t *testing.T, node string, tok *Tokenizer, docs []string) {
	t.Helper()
	dir := t.TempDir()
	if err := tok.WriteHF(dir); err != nil {
		t.Fatal(err)
	}
	js := jsEncode(t, node, dir, docs)
	if len(js) != len(docs) {
		t.Fatalf("node returned %d results for %d texts", len(js), len(docs))
	}
	total, ids := 0, 0
	for i, d := range docs {
		got := tok.EncodeSpecial([]byte(d))
		if !slices.Equal(got, js[i]) {
			k := 0
			for k < len(got) && k < len(js[i]) && got[k] == js[i][k] {
				k++
			}
			lo := max(0, k-3)
			t.Fatalf("doc %d (%q…): ids differ at %d: herd %v, transformers.js %v", i, clipStr(d), k,
				got[lo:min(len(got), k+5)], js[i][lo:min(len(js[i]), k+5)])
		}
		total += len(d)
		ids += len(got)
	}
	t.Logf("%d documents, %d bytes, %d ids: identical", len(docs), total, ids)
}

// TestHFCompatJSReference writes the reference Llama 3 tokenizer with
// WriteHF and checks that transformers.js, loading the written files,
// encodes a few MB of mixed text exactly as herd does.
func TestHFCompatJSReference(t *testing.T) {
	node := needJS(t)
	compareJS(t, node, loadRef(t), mixedDocs(t, 2<<20))
}

// TestHFCompatJSTrained trains a vocabulary with herd, writes it, and
// checks the same on mixed text.
func TestHFCompatJSTrained(t *testing.T) {
	node := needJS(t)
	docs := mixedDocs(t, 3<<20)
	var corpora []Corpus
	for _, d := range docs[:len(docs)/2] {
		corpora = append(corpora, ReaderCorpus("doc", strings.NewReader(d)))
	}
	tok, err := Train(context.Background(), corpora, TrainOptions{VocabSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	compareJS(t, node, tok, docs)
}
