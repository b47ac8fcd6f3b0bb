package tokens_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/data/shard"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/data/tokens"
	"github.com/herdml/herd/data/tokens/tokenstest"
)

// TestTokenize: token shards decode back to the documents with BOS/EOS
// around each, the manifest counts match the shards per source, empty
// documents are dropped, and a rerun keeps finished shards and redoes a
// changed one.
func TestTokenize(t *testing.T) {
	dir := t.TempDir()
	var rows []shard.Row
	for i := range 50 {
		text := fmt.Sprintf("Document %d says: the quick brown fox %s jumps over %d lazy dogs.\n", i, strings.Repeat("very ", i%5), i*7)
		src := "web"
		if i%3 == 0 {
			src = "books"
		}
		if i == 17 {
			text = ""
		}
		rows = append(rows, shard.Row{ID: fmt.Sprintf("doc-%d", i), Text: text, Source: src, Quality: float32(i) / 50, Ordinal: int64(i)})
	}
	docs := filepath.Join(dir, "docs")
	tokenstest.WriteDocs(t, docs, rows, 20)
	tokDir := filepath.Join(dir, "tok")
	texts := make([]string, len(rows))
	for i, r := range rows {
		texts[i] = r.Text
	}
	tok := tokenstest.TrainTokenizer(t, tokDir, texts, 600)
	out := filepath.Join(dir, "tokens")
	opt := tokens.TokenizeOptions{Inputs: []string{docs}, Out: out, Tokenizer: tok, TokenizerDir: tokDir, BOS: true, EOS: true, Workers: 2, RowGroupDocs: 8}
	man, err := tokens.Tokenize(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	bos, _ := tok.SpecialID(tokenizer.BeginOfText)
	eos, _ := tok.SpecialID(tokenizer.EndOfText)
	if len(man.Shards) != 3 || man.Total.Docs != 49 || man.Tokenizer.BOS != bos || man.Tokenizer.EOS != eos || man.Tokenizer.VocabSize != tok.VocabSize() {
		t.Fatalf("manifest %+v", man)
	}
	byID := map[string]shard.Row{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	var total int64
	perSource := map[string]int64{}
	for _, si := range man.Shards {
		got, err := shard.ReadAll[tokens.TokenRow](filepath.Join(out, si.File))
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range got {
			want := byID[r.ID]
			if r.Tokens[0] != bos || r.Tokens[len(r.Tokens)-1] != eos || int(r.NumTokens) != len(r.Tokens) {
				t.Fatalf("%s: no BOS/EOS around %v", r.ID, r.Tokens)
			}
			text, err := tok.Decode(r.Tokens[1 : len(r.Tokens)-1])
			if err != nil || string(text) != want.Text || r.Source != want.Source || r.Quality != want.Quality {
				t.Fatalf("%s decodes to %q (%v), want %q", r.ID, text, err, want.Text)
			}
			n += int64(len(r.Tokens))
			perSource[r.Source] += int64(len(r.Tokens))
		}
		if n != si.Tokens || int64(len(got)) != si.Docs {
			t.Fatalf("%s: manifest says %d docs %d tokens, the file has %d and %d", si.File, si.Docs, si.Tokens, len(got), n)
		}
		total += n
	}
	if total != man.Total.Tokens || perSource["books"] != man.Sources["books"].Tokens || perSource["web"] != man.Sources["web"].Tokens {
		t.Fatalf("per-source counts %v vs manifest %v", perSource, man.Sources)
	}
	read, err := tokens.ReadManifest(out)
	if err != nil || read.Total != man.Total {
		t.Fatalf("manifest on disk: %+v %v", read, err)
	}

	// Rerun: unchanged shards are kept as they are; a changed input is redone.
	stat := func(name string) os.FileInfo {
		st, err := os.Stat(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	before0, before1 := stat("tokens-00000.parquet"), stat("tokens-00001.parquet")
	rows[25].Text = "a changed document"
	tokenstest.WriteDocs(t, docs, rows, 20)
	man2, err := tokens.Tokenize(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if !stat("tokens-00000.parquet").ModTime().Equal(before0.ModTime()) {
		t.Fatal("an unchanged shard was rewritten")
	}
	if stat("tokens-00001.parquet").ModTime().Equal(before1.ModTime()) || man2.Shards[1].InputHash == man.Shards[1].InputHash {
		t.Fatal("the changed shard was not redone")
	}
	if man2.Shards[0].Tokens != man.Shards[0].Tokens || man2.Shards[2].Tokens != man.Shards[2].Tokens {
		t.Fatal("kept shards lost their counts")
	}

	// Errors name the file.
	bad := filepath.Join(dir, "bad")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	tokenstest.WriteShard(t, filepath.Join(bad, "docs-00000.parquet"), []tokens.TokenRow{{ID: "x", Tokens: []int32{1}}}, 4)
	_, err = tokens.Tokenize(context.Background(), tokens.TokenizeOptions{Inputs: []string{bad}, Out: filepath.Join(dir, "o"), Tokenizer: tok})
	if err == nil || !strings.Contains(err.Error(), "docs-00000.parquet: no string column \"text\"") {
		t.Fatalf("docs without text: %v", err)
	}
}

// TestTokenizeNotParquet: a JSONL, text or empty input is refused before
// anything is written, with a message that says to run curate first.
func TestTokenizeNotParquet(t *testing.T) {
	dir := t.TempDir()
	tok := tokenstest.TrainTokenizer(t, filepath.Join(dir, "tok"), []string{"some text to learn from", "and some more"}, 520)
	for _, c := range []struct{ name, data, what string }{
		{"docs.jsonl", `{"text": "hello"}` + "\n", "it holds JSON, not Parquet"},
		{"notes.txt", "plain words\n", "it is not a Parquet file"},
		{"empty.parquet", "", "it is empty"},
	} {
		in := filepath.Join(dir, c.name)
		if err := os.WriteFile(in, []byte(c.data), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out-"+c.name)
		_, err := tokens.Tokenize(context.Background(), tokens.TokenizeOptions{Inputs: []string{in}, Out: out, Tokenizer: tok})
		if err == nil || !strings.Contains(err.Error(), in+": "+c.what) || !strings.Contains(err.Error(), "run curate first") {
			t.Errorf("%s: %v", c.name, err)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: the output directory was made", c.name)
		}
	}
}
