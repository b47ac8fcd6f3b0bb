// Package hfcompat_test checks that tokenizer.json / tokenizer_config.json
// written by package tokenizer load in Hugging Face tokenizers (the Rust
// library through its node bindings, and transformers.js) and encode
// exactly as herd does. It needs node and the npm packages installed by
// testdata/install.sh, and skips, saying so, without them.
package hfcompat_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/testenv"
)

// jsDir holds the node side of the Hugging Face compatibility check.
const jsDir = "testdata"

// hfEngine is a Hugging Face tokenizers implementation run by encode.mjs.
type hfEngine struct {
	name string // encode.mjs's engine argument
	pkg  string // its npm package
}

var hfEngines = []hfEngine{
	{"rust", "tokenizers"},                   // the Rust library (node bindings)
	{"transformers-js", "@lenml/tokenizers"}, // the transformers.js port
}

// needNode skips the test unless node and the npm packages are installed.
func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the Hugging Face tokenizers compatibility check needs node and npm")
	}
	for _, e := range hfEngines {
		if _, err := os.Stat(filepath.Join(jsDir, "node_modules", e.pkg)); err != nil {
			t.Skipf("npm package %s is not installed: run data/tokenizer/hfcompat/%s/install.sh (npm ci) to enable this check", e.pkg, jsDir)
		}
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
	docs = append(docs, encodeCaseTexts(t)...)
	return docs
}

type hfResult struct {
	IDs         [][]int32 `json:"ids"`
	WithSpecial []int32   `json:"with_special"`
	Decoded     []string  `json:"decoded"`
}

// hfEncode runs encode.mjs with an engine on the tokenizer in dir.
func hfEncode(t *testing.T, node, engine, dir string, docs []string) hfResult {
	t.Helper()
	tmp := t.TempDir()
	in, out := filepath.Join(tmp, "texts.json"), filepath.Join(tmp, "out.json")
	data, err := json.Marshal(docs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	cmd := exec.Command(node, "encode.mjs", engine, abs, in, out)
	cmd.Dir = jsDir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node encode.mjs %s: %v\n%s", engine, err, msg)
	}
	data, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r hfResult
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// compareHF writes tok as tokenizer.json + tokenizer_config.json, has each
// Hugging Face implementation load the files and encode docs, and requires
// the ids herd gives (with special tokens recognised, as Hugging Face
// tokenizers always do), the BOS its post-processor adds, and (Rust) the
// decoded texts.
func compareHF(t *testing.T, node string, tok *tokenizer.Tokenizer, docs []string) {
	t.Helper()
	dir := t.TempDir()
	if err := tok.WriteHF(dir); err != nil {
		t.Fatal(err)
	}
	want := make([][]int32, len(docs))
	total, ids := 0, 0
	for i, d := range docs {
		want[i] = tok.EncodeSpecial([]byte(d))
		total += len(d)
		ids += len(want[i])
	}
	// herd's encode with its default -add-bos (EncodeStream with AddBOS,
	// as cmd/tokenizer runs it) must give what Hugging Face's
	// add_special_tokens=True gives: the post-processor's BOS, then the ids.
	bos, ok := tok.PrefixBOS()
	if !ok {
		t.Fatal("the tokenizer adds no BOS; tokenizer.json's post-processor is expected to")
	}
	withBOS := herdStream(t, tok, docs[0], true)
	if len(withBOS) != len(want[0])+1 || withBOS[0] != bos || !slices.Equal(withBOS[1:], want[0]) {
		t.Fatalf("herd encode with BOS: %v…, want BOS %d then the ids", withBOS[:min(len(withBOS), 5)], bos)
	}
	if bare := herdStream(t, tok, docs[0], false); !slices.Equal(bare, want[0]) {
		t.Fatalf("herd encode -add-bos=false: %v…, want the bare ids", bare[:min(len(bare), 5)])
	}
	for _, e := range hfEngines {
		t.Run(e.name, func(t *testing.T) {
			r := hfEncode(t, node, e.name, dir, docs)
			if len(r.IDs) != len(docs) {
				t.Fatalf("%d results for %d texts", len(r.IDs), len(docs))
			}
			for i, d := range docs {
				if got := r.IDs[i]; !slices.Equal(got, want[i]) {
					k := 0
					for k < len(got) && k < len(want[i]) && got[k] == want[i][k] {
						k++
					}
					lo := max(0, k-3)
					t.Fatalf("doc %d (%q…): ids differ at %d: herd %v, %s %v", i, clipStr(d), k,
						want[i][lo:min(len(want[i]), k+5)], e.name, got[lo:min(len(got), k+5)])
				}
			}
			if ws := r.WithSpecial; !slices.Equal(ws, withBOS) {
				t.Fatalf("with special tokens added: %v…, herd's encode (default -add-bos) %v…", ws[:min(len(ws), 5)], withBOS[:min(len(withBOS), 5)])
			}
			for i, d := range r.Decoded {
				if d != docs[i] {
					t.Fatalf("doc %d decodes to %q…", i, clipStr(d))
				}
			}
			t.Logf("%d documents, %d bytes, %d ids: identical", len(docs), total, ids)
		})
	}
}

// herdStream encodes text as `tokenizer encode -special [-add-bos=false]`
// does (Hugging Face always recognises special-token texts).
func herdStream(t *testing.T, tok *tokenizer.Tokenizer, text string, addBOS bool) []int32 {
	t.Helper()
	var ids []int32
	err := tok.EncodeStream(context.Background(), strings.NewReader(text), tokenizer.StreamOptions{AllowSpecial: true, AddBOS: addBOS}, func(x []int32) error {
		ids = append(ids, x...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestHFCompatReference writes the reference Llama 3 tokenizer with
// WriteHF; Hugging Face tokenizers load the written files and encode a
// few MB of mixed text exactly as herd does.
func TestHFCompatReference(t *testing.T) {
	node := needNode(t)
	compareHF(t, node, loadRef(t), mixedDocs(t, 1<<20))
}

// TestHFCompatTrained trains a vocabulary with herd, writes it, and checks
// the same.
func TestHFCompatTrained(t *testing.T) {
	node := needNode(t)
	docs := mixedDocs(t, 3<<20)
	var corpora []tokenizer.Corpus
	for _, d := range docs[:len(docs)/2] {
		corpora = append(corpora, tokenizer.ReaderCorpus("doc", strings.NewReader(d)))
	}
	tok, err := tokenizer.Train(context.Background(), corpora, tokenizer.TrainOptions{VocabSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	compareHF(t, node, tok, docs)
}

// testdata is the shared reference data folder, relative to this package.
const testdata = "../../../../shared/testdata"

var refDir = filepath.Join(testdata, "tokenizer", "llama3")

func needRef(t *testing.T) {
	t.Helper()
	testenv.Testdata(t, refDir)
}

func loadRef(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	needRef(t)
	tok, err := tokenizer.Load(refDir)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// encodeCaseTexts returns the texts of the reference encode cases.
func encodeCaseTexts(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(refDir, "encode_cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var c struct{ Text string }
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c.Text)
	}
	return out
}

// goSource returns about n bytes of Go source from the Go distribution.
func goSource(t *testing.T, n int) []byte {
	files, _ := filepath.Glob(filepath.Join(runtime.GOROOT(), "src", "net", "http", "*.go"))
	sort.Strings(files)
	var out []byte
	for _, f := range files {
		if len(out) >= n {
			break
		}
		data, err := os.ReadFile(f)
		if err == nil {
			out = append(out, data...)
		}
	}
	if len(out) == 0 {
		t.Skip("no Go source found under GOROOT")
	}
	return out
}

func clipStr(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
