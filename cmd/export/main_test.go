package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint/gguf"
)

// TestExport runs the command on the reference model tiny-b (tokenizer
// from its model.gguf): every format writes, and bad flags are refused
// with a message naming the flag.
func TestExport(t *testing.T) {
	ref := filepath.Join("..", "..", "..", "shared", "testdata", "llama-ref", "tiny-b")
	if _, err := os.Stat(filepath.Join(ref, "model.gguf")); err != nil {
		t.Skipf("reference data missing: %v", err)
	}
	m, err := gguf.LoadTokenizer(filepath.Join(ref, "model.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	tokDir := filepath.Join(tmp, "tok")
	if err := m.Tokenizer.WriteHF(tokDir); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(tmp, "m.gguf")
	for _, args := range [][]string{
		{"-model", ref, "-tokenizer", tokDir, "-type", "q8_0", "-out", file},
		{"-model", file, "-format", "hf", "-type", "bf16", "-out", filepath.Join(tmp, "hf")},
		{"-model", file, "-format", "ollama", "-out", filepath.Join(tmp, "ollama")},
	} {
		var out, errs bytes.Buffer
		if err := run(args, &out, &errs); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, errs.String())
		}
		if !strings.HasPrefix(out.String(), "wrote ") {
			t.Errorf("%q printed %q", args, out.String())
		}
	}
	for _, f := range []string{"hf/config.json", "hf/model.safetensors", "hf/tokenizer.json", "ollama/Modelfile", "ollama/model.gguf"} {
		if _, err := os.Stat(filepath.Join(tmp, f)); err != nil {
			t.Error(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-out", file}, "-model and -out are required"},
		{[]string{"-model", ref, "-out", file, "-type", "q4_0"}, "-type"},
		{[]string{"-model", ref, "-out", file, "-format", "onnx"}, "unknown format"},
		{[]string{"-model", ref, "-out", filepath.Join(tmp, "x.gguf")}, "tokenizer"},
		{[]string{"-model", file, "-format", "hf", "-type", "q8_0", "-out", filepath.Join(tmp, "y")}, "F32, F16 or BF16"},
		{[]string{"-model", ref, "-tokenizer", tokDir, "-out", filepath.Join(ref, "model.gguf")}, "refusing to overwrite"},
	} {
		var out, errs bytes.Buffer
		err := run(tc.args, &out, &errs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}
