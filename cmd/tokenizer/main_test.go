package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const refDir = "../../../shared/testdata/tokenizer/llama3"

func needRef(t *testing.T) {
	if _, err := os.Stat(refDir); os.IsNotExist(err) {
		t.Skipf("reference data %s is absent", refDir)
	}
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
	if strings.TrimSpace(out) != "[9906,1917,128009]" {
		t.Fatalf("encode = %s", out)
	}
	dec, err := runCmd(t, out, "decode", "-tokenizer", refDir)
	if err != nil || dec != "Hello world<|eot_id|>" {
		t.Fatalf("decode = %q, %v", dec, err)
	}
	out, err = runCmd(t, "Hello world<|eot_id|>", "encode", "-tokenizer", refDir)
	if err != nil || strings.Contains(out, "128009") {
		t.Fatalf("encode without -special = %s, %v", out, err)
	}
}

func TestJSONLCommands(t *testing.T) {
	needRef(t)
	out, err := runCmd(t, "{\"text\": \"Hello world\"}\n{\"text\": \"\"}\n", "encode", "-tokenizer", refDir, "-jsonl", "-")
	if err != nil || out != "{\"ids\":[9906,1917]}\n{\"ids\":[]}\n" {
		t.Fatalf("encode -jsonl = %q, %v", out, err)
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
	out, err := runCmd(t, "the lazy dog", "encode", "-tokenizer", dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int32
	if err := json.Unmarshal([]byte(out), &ids); err != nil || len(ids) == 0 || len(ids) > 3 {
		t.Fatalf("trained encode = %s, %v", out, err)
	}
	// Training stops early on this tiny text (no pair occurs twice any
	// more), so the specials start right after the BPE tokens it found.
	bos, err := runCmd(t, "<|begin_of_text|>", "encode", "-special", "-tokenizer", dir)
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
