package tokenizer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestEncodeParallelMatchesSequential(t *testing.T) {
	tok := loadRef(t)
	var text []byte
	for _, name := range []string{"jargon.txt", "debian-reference.en.txt"} {
		data, err := os.ReadFile(filepath.Join(testdata, "corpora", name))
		if err != nil {
			t.Fatal(err)
		}
		text = append(text, data...)
	}
	// Special tokens near chunk boundaries must survive the cuts.
	for off := chunkSize - 40; off < len(text); off += chunkSize {
		text = append(text[:off:off], append([]byte("word<|eot_id|>\nnext"), text[off:]...)...)
	}
	for _, special := range []bool{false, true} {
		want := tok.AppendEncode(nil, text, special)
		got, err := tok.EncodeParallel(context.Background(), text, special, 3)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("special=%v: parallel encoding differs (%d vs %d ids)", special, len(got), len(want))
		}
	}
	texts := [][]byte{[]byte("a"), nil, text[:5000], []byte("<|eot_id|>")}
	got, err := tok.EncodeBatch(context.Background(), texts, true, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		if !slices.Equal(got[i], tok.EncodeSpecial(texts[i])) {
			t.Fatalf("batch item %d differs", i)
		}
	}
}

func TestEncodeJSONL(t *testing.T) {
	tok := loadRef(t)
	cases := loadEncodeCases(t)
	var in bytes.Buffer
	for range 10 { // several batches' worth of lines
		for _, c := range cases {
			b, _ := json.Marshal(map[string]string{"text": c.Text})
			in.Write(b)
			in.WriteByte('\n')
		}
	}
	var out bytes.Buffer
	if err := tok.EncodeJSONL(context.Background(), &in, &out, false, 3); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 10*len(cases) {
		t.Fatalf("%d output lines for %d inputs", len(lines), 10*len(cases))
	}
	for i, l := range lines {
		var got struct{ IDs []int32 }
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.IDs, cases[i%len(cases)].IDs) {
			t.Fatalf("line %d: ids differ", i+1)
		}
	}
	// Errors name the line.
	bad := "{\"text\": \"ok\"}\n{\"txt\": 1}\n"
	if err := tok.EncodeJSONL(context.Background(), strings.NewReader(bad), &out, false, 2); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error %v, want one naming line 2", err)
	}
}

func TestChatAndDecodeJSONL(t *testing.T) {
	tok := loadRef(t)
	needRef(t)
	data, err := os.ReadFile(filepath.Join(refDir, "chat_cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tok.ChatJSONL(context.Background(), bytes.NewReader(data), &out, true, 2); err != nil {
		t.Fatal(err)
	}
	cases := loadChatCases(t)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("%d lines", len(lines))
	}
	var idLines bytes.Buffer
	for i, l := range lines {
		var got struct {
			IDs            []int32
			Target, Format []int
		}
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.IDs, cases[i].IDs) || len(got.Target) != len(got.IDs) || len(got.Format) != len(got.IDs) {
			t.Fatalf("case %d differs", i)
		}
		fmt.Fprintf(&idLines, "{\"ids\": %s}\n", appendIDs(nil, got.IDs))
	}
	out.Reset()
	if err := tok.DecodeJSONL(context.Background(), &idLines, &out, 2); err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var got struct{ Text string }
		if err := json.Unmarshal([]byte(l), &got); err != nil || got.Text != cases[i].Text {
			t.Fatalf("decoded case %d: %q, %v", i, got.Text, err)
		}
	}
}
