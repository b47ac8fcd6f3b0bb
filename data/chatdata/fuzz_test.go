package chatdata

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseRow parses arbitrary JSONL lines as SFT and preference rows and
// encodes the valid ones: no panic, bad rows are *rowError with a known
// reason, and examples keep their invariants. The seeds are short single
// lines so each execution stays fast.
func FuzzParseRow(f *testing.F) {
	for _, s := range []string{
		`{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}`,
		`{"prompt": "a", "completion": "b"}`,
		`{"prompt": [{"role": "user", "content": "a"}], "completion": [{"role": "assistant", "content": "b"}]}`,
		`{"prompt": "a", "chosen": "b", "rejected": "c", "edited": "d"}`,
		`{"prompt": [{"role": "user", "content": 1}], "chosen": [{"role": "assistant", "tool_calls": [{"name": "f", "arguments": {"x": "y"}}]}], "rejected": "c"}`,
		`{"messages": [{"role": "ipython", "content": {"a": [1]}}, {"role": "assistant", "content": null}]}`,
		`{"messages": "x"}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	tok := testTokenizer(f)
	enc, err := NewEncoder(tok, EncodeOptions{SeqLen: 48, Truncation: TruncateLeft})
	if err != nil {
		f.Fatal(err)
	}
	known := map[string]bool{}
	for _, r := range reasons {
		known[r] = true
	}
	checkBad := func(t *testing.T, err error) {
		var re *rowError
		if !errors.As(err, &re) || !known[re.Reason] {
			t.Fatalf("error %v is not a row error with a known reason", err)
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if r, err := ParseSFT(line); err != nil {
			checkBad(t, err)
		} else if x, err := enc.SFT(r); err != nil {
			checkBad(t, err)
		} else {
			if len(x.IDs) > 48 || len(x.Weights) != len(x.IDs) || x.Weights[len(x.IDs)-1] != 0 {
				t.Fatalf("example of %d ids, %d weights", len(x.IDs), len(x.Weights))
			}
		}
		if r, err := ParsePref(line); err != nil {
			checkBad(t, err)
		} else if x, err := enc.Pref(r); err != nil {
			checkBad(t, err)
		} else {
			for _, s := range []*Response{&x.Chosen, &x.Rejected, x.Edited} {
				if s == nil {
					continue
				}
				if len(s.IDs) > 48 || s.Last != len(s.IDs)-1 || len(s.Scored) != len(s.IDs) {
					t.Fatalf("response of %d ids, last %d", len(s.IDs), s.Last)
				}
				for i := range x.PromptLen {
					if s.Scored[i] || s.IDs[i] != x.Chosen.IDs[i] {
						t.Fatalf("prompt token %d scored or not shared", i)
					}
				}
			}
		}
	})
}

// FuzzJSONLFile reads arbitrary JSONL files through an SFT loader: no
// panic or hang, every non-blank line is an example or a counted bad row.
// The file is rewritten in one directory so each execution stays fast.
func FuzzJSONLFile(f *testing.F) {
	f.Add([]byte(`{"prompt": "a", "completion": "b"}`))
	f.Add([]byte("{\"prompt\": \"a\", \"completion\": \"b\"}\r\n\n{\"x\": 1}"))
	f.Add([]byte(`{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}` + "\n" + `{"prompt": "` + strings.Repeat("z", 300) + `"}`))
	tok := testTokenizer(f)
	path := filepath.Join(f.TempDir(), "f.jsonl")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := NewSFTLoader(SFTOptions{Options: Options{Paths: []string{path}, Tokenizer: tok, Encode: EncodeOptions{SeqLen: 64}, Shuffle: 3, Epochs: 1, MaxLineBytes: 256}, Rows: 2, Pack: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		n := 0
		for {
			_, err := l.Next(context.Background())
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n += l.Examples()
		}
		st := l.Stats()
		lines := 0
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 {
				lines++
			}
		}
		if st.Rows != st.Examples+st.Dropped() || int64(n) != st.Examples || st.Rows > int64(lines) {
			t.Fatalf("stats %+v, %d examples served, %d non-blank lines", st, n, lines)
		}
	})
}
