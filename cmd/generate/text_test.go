package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/model"
)

// textModel writes a tiny model directory with a trained tokenizer (it has
// the Llama 3 special tokens) and returns it with the tokenizer.
func textModel(t testing.TB) (string, *tokenizer.Tokenizer) {
	t.Helper()
	corpus := strings.Repeat("package main\nfunc (s *Server) Serve() error { return nil }\nuser assistant system Max: 1 2 3\n", 40)
	tok := traintest.Tokenizer(t, corpus, 600)
	cfg := model.Config{VocabSize: tok.VocabSize(), HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 256, TieWordEmbeddings: true, InitializerRange: 0.5}
	cfg.Normalize()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 2)
	return traintest.SaveModel(t, cfg, p, tok), tok
}

// TestPromptText generates from a text prompt greedily and checks the
// streamed text is the decoding of the ids the token-id mode generates for
// the same prompt (BOS + its encoding), up to the first stop token.
func TestPromptText(t *testing.T) {
	dir, tok := textModel(t)
	ctx := context.Background()
	var out, errs bytes.Buffer
	if err := run(ctx, []string{"-model", dir, "-prompt", "package main", "-max-tokens", "20", "-temperature", "0"}, &out, &errs); err != nil {
		t.Fatalf("%v\n%s", err, errs.String())
	}
	bos, _ := tok.SpecialID(tok.Config().BOS)
	ids := tok.AppendEncode([]int32{bos}, []byte("package main"), false)
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = fmt.Sprint(id)
	}
	var idOut bytes.Buffer
	if err := run(ctx, []string{"-model", dir, "-ids", strings.Join(strs, ","), "-max-tokens", "20"}, &idOut, &errs); err != nil {
		t.Fatal(err)
	}
	var gen struct{ IDs []int32 }
	if err := json.Unmarshal(idOut.Bytes(), &gen); err != nil {
		t.Fatal(err)
	}
	var stops []int32
	for _, name := range []string{tokenizer.EOT, tokenizer.EOM, tokenizer.EndOfText} {
		if id, ok := tok.SpecialID(name); ok {
			stops = append(stops, id)
		}
	}
	var want []byte
	for _, id := range gen.IDs {
		if slices.Contains(stops, id) {
			break
		}
		if !tok.IsSpecial(id) {
			want = append(want, tok.Token(id)...)
		}
	}
	// Bytes that are not UTF-8 show as U+FFFD, grouped as they streamed:
	// compare the valid text.
	got := strings.ReplaceAll(strings.TrimSuffix(out.String(), "\n"), "\uFFFD", "")
	if got != strings.ToValidUTF8(string(want), "") {
		t.Fatalf("text mode wrote %q, the ids decode to %q", got, want)
	}
}

// TestChatAndLimits: a chat answers each stdin line on its own line; a
// request beyond the context and mixing text with ids are refused.
func TestChatAndLimits(t *testing.T) {
	dir, _ := textModel(t)
	ctx := context.Background()
	var out, errs bytes.Buffer
	if err := runIO(ctx, []string{"-model", dir, "-chat", "-max-tokens", "5", "-temperature", "0"}, strings.NewReader("Max: 1 2\n\nMax: 3 1\n"), &out, &errs); err != nil {
		t.Fatalf("%v\n%s", err, errs.String())
	}
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Fatalf("two messages got %d reply lines: %q", n, out.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-model", dir, "-prompt", "package", "-max-tokens", "500"}, "at most"},
		{[]string{"-model", dir, "-prompt", "x", "-ids", "1,2"}, "one or the other"},
		{[]string{"-model", dir, "-chat", "-prompt", strings.Repeat("Max: 1 2 3 ", 80)}, "context"},
	} {
		err := run(ctx, tc.args, &out, &errs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

// TestJSONL answers prompt and conversation lines in batches: one output
// line per input line, in order, bad lines reported; each response equals
// the one the line gets alone (greedy), so batching does not change it.
func TestJSONL(t *testing.T) {
	dir, _ := textModel(t)
	ctx := context.Background()
	in := `{"prompt": "package main"}
{"messages": [{"role": "user", "content": "Max: 1 2"}]}

not json
{"prompt": "func (s *Server) "}
{"prompt": "x", "messages": [{"role": "user", "content": "y"}]}
`
	var out, errs bytes.Buffer
	if err := runIO(ctx, []string{"-model", dir, "-jsonl", "-", "-batch", "2", "-max-tokens", "6", "-temperature", "0"}, strings.NewReader(in), &out, &errs); err != nil {
		t.Fatalf("%v\n%s", err, errs.String())
	}
	type line struct {
		Line     int
		Response *string
		Error    string
	}
	var got []line
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var x line
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatal(err)
		}
		got = append(got, x)
	}
	if len(got) != 5 || got[0].Line != 1 || got[1].Line != 2 || got[2].Line != 4 || got[3].Line != 5 || got[4].Line != 6 {
		t.Fatalf("output lines %+v", got)
	}
	if got[2].Error == "" || got[4].Error == "" || got[0].Response == nil || got[3].Response == nil {
		t.Fatalf("want errors on lines 4 and 6, responses elsewhere: %+v", got)
	}
	for _, i := range []int{0, 3} {
		var alone bytes.Buffer
		src := strings.Split(in, "\n")[got[i].Line-1]
		if err := runIO(ctx, []string{"-model", dir, "-jsonl", "-", "-batch", "1", "-max-tokens", "6", "-temperature", "0"}, strings.NewReader(src+"\n"), &alone, &errs); err != nil {
			t.Fatal(err)
		}
		var x line
		json.Unmarshal(alone.Bytes(), &x)
		if x.Response == nil || *x.Response != *got[i].Response {
			t.Fatalf("line %d: batched %q, alone %v", got[i].Line, *got[i].Response, x.Response)
		}
	}
}

// FuzzJSONL feeds arbitrary input to -jsonl: it never fails (bad lines
// become "error" lines) and writes one line per non-blank input line.
func FuzzJSONL(f *testing.F) {
	f.Add([]byte(`{"prompt": "package"}` + "\n" + `{"messages": [{"role": "user", "content": "hi"}]}`))
	f.Add([]byte(`{"messages": [{"role": "wizard", "content": 3}]}`))
	f.Add([]byte("{\"prompt\": \"\\ud800\"}\n\n\n[1,2]\n"))
	dir, _ := textModel(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		var out, errs bytes.Buffer
		err := runIO(context.Background(), []string{"-model", dir, "-jsonl", "-", "-max-tokens", "2", "-temperature", "0", "-threads", "1"}, bytes.NewReader(data), &out, &errs)
		if err != nil {
			t.Fatalf("%v", err)
		}
		lines := 0
		for _, l := range strings.Split(string(data), "\n") {
			if len(bytes.TrimSpace([]byte(l))) > 0 {
				lines++
			}
		}
		if got := strings.Count(out.String(), "\n"); got != lines {
			t.Fatalf("%d non-blank input lines, %d output lines", lines, got)
		}
	})
}
