package chatdata

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/model"
)

// testTokenizer trains a small byte-level BPE tokenizer; every trained
// tokenizer carries the 256 Llama 3.1 special tokens after its BPE ids
// (tokenizer.LlamaSpecials), which is all the chat format needs.
func testTokenizer(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	var corpus strings.Builder
	for i := 0; i < 40; i++ {
		corpus.WriteString("The quick brown fox jumps over the lazy dog. Hello there, how are you today? ")
		corpus.WriteString("I am fine, thank you. What is the weather like? It is sunny and warm. ")
		corpus.WriteString("system user assistant ipython Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n")
		corpus.WriteString(`{"name": "get_weather", "parameters": {"city": "Paris"}} brave_search.call(query="x") `)
	}
	return traintest.Tokenizer(t, corpus.String(), 700)
}

// writeFile writes data to dir/name, compressing .gz and .zst names.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	var buf bytes.Buffer
	switch {
	case strings.HasSuffix(name, ".gz"):
		z := gzip.NewWriter(&buf)
		z.Write(data)
		z.Close()
	case strings.HasSuffix(name, ".zst"):
		z, _ := zstd.NewWriter(&buf)
		z.Write(data)
		z.Close()
	default:
		buf.Write(data)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pqRow is a Parquet row of chat data: every column an optional string.
type pqRow struct {
	Messages   *string `parquet:"messages,optional"`
	Prompt     *string `parquet:"prompt,optional"`
	Completion *string `parquet:"completion,optional"`
	Chosen     *string `parquet:"chosen,optional"`
	Rejected   *string `parquet:"rejected,optional"`
	Edited     *string `parquet:"edited,optional"`
	Tools      *string `parquet:"tools,optional"`
}

// writeParquet converts JSONL lines to a Parquet file (strings as they
// are, message lists as JSON text), in row groups of 3 rows.
func writeParquet(t testing.TB, path string, lines []string) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[pqRow](f, parquet.MaxRowsPerRowGroup(3))
	for _, line := range lines {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		var r pqRow
		for k, v := range m {
			var s string
			if json.Unmarshal(v, &s) != nil {
				s = string(v)
			}
			switch k {
			case "messages":
				r.Messages = &s
			case "prompt":
				r.Prompt = &s
			case "completion":
				r.Completion = &s
			case "chosen":
				r.Chosen = &s
			case "rejected":
				r.Rejected = &s
			case "edited":
				r.Edited = &s
			case "tools":
				r.Tools = &s
			}
		}
		if _, err := w.Write([]pqRow{r}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// sftLines are valid SFT rows of every format.
var sftLines = []string{
	`{"messages": [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "I am fine, thank you."}]}`,
	`{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the weather like?"}, {"role": "assistant", "content": "It is sunny."}, {"role": "user", "content": "And today?"}, {"role": "assistant", "content": "Warm."}]}`,
	`{"prompt": "The quick brown fox", "completion": "jumps over the lazy dog."}`,
	`{"prompt": [{"role": "user", "content": "How are you today?"}], "completion": [{"role": "assistant", "content": "Fine."}]}`,
	`{"messages": [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, {"role": "ipython", "content": {"temp": 21}}, {"role": "assistant", "content": "It is 21 degrees."}]}`,
	`{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}`,
	`{"prompt": "What is the weather like?", "completion": "Sunny and warm."}`,
	`{"messages": [{"role": "user", "content": "The lazy dog?"}, {"role": "assistant", "content": "It sleeps."}]}`,
}

// toolsLine is an SFT row with its own tools.
const toolsLine = `{"messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}], "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}`

// prefLines are valid preference rows of every format.
var prefLines = []string{
	`{"prompt": "How are you today?", "chosen": "I am fine, thank you.", "rejected": "No."}`,
	`{"prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello there"}], "chosen": [{"role": "assistant", "content": "Hello! How are you?"}], "rejected": [{"role": "assistant", "content": "What?"}]}`,
	`{"prompt": "What is the weather like?", "chosen": "It is sunny.", "rejected": "Rain.", "edited": "It is sunny and warm."}`,
	`{"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Fox?"}], "chosen": [{"role": "assistant", "content": "The quick brown fox."}], "rejected": [{"role": "assistant", "content": "Dog."}]}`,
	`{"prompt": "The lazy dog", "chosen": "sleeps all day.", "rejected": "jumps.", "edited": "sleeps."}`,
	`{"prompt": "Weather?", "chosen": "Sunny today.", "rejected": "I do not know."}`,
}

// collectSFT reads every batch of a loader, copying them.
func collectSFT(t testing.TB, l *SFTLoader, max int) []model.Batch {
	t.Helper()
	var out []model.Batch
	for len(out) < max || max < 0 {
		b, err := l.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cloneBatch(b))
	}
	return out
}

func cloneBatch(b *model.Batch) model.Batch {
	c := *b
	c.Tokens = append([]int32(nil), b.Tokens...)
	c.Targets = append([]int32(nil), b.Targets...)
	c.Weights = append([]float32(nil), b.Weights...)
	if b.DocIDs != nil {
		c.DocIDs = append([]int32(nil), b.DocIDs...)
	}
	return c
}

func clonePref(b *PrefBatch) PrefBatch {
	c := *b
	c.Batch = cloneBatch(&b.Batch)
	c.Last = append([]int32(nil), b.Last...)
	c.PromptLen = append([]int32(nil), b.PromptLen...)
	c.Scored = append([]int32(nil), b.Scored...)
	return c
}

func collectPref(t testing.TB, l *PrefLoader, max int) []PrefBatch {
	t.Helper()
	var out []PrefBatch
	for len(out) < max || max < 0 {
		b, err := l.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, clonePref(b))
	}
	return out
}

func jsonl(lines []string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }
