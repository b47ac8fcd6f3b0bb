package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/herdml/herd/checkpoint/gguf"
)

// TestGGUFModel: -model FILE.gguf (an F32 export of the model directory)
// generates the same text and the same logits as the directory itself.
func TestGGUFModel(t *testing.T) {
	dir, _ := textModel(t)
	file := filepath.Join(t.TempDir(), "m.gguf")
	if err := gguf.Convert(gguf.ConvertOptions{Model: dir, Format: gguf.FormatGGUF, Type: gguf.F32, Out: file}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-prompt", "package main", "-max-tokens", "20", "-temperature", "0"},
		{"-ids", "1,2,3,4", "-logits", "-", "-max-tokens", "5"},
	} {
		var want, got, errs bytes.Buffer
		if err := run(t.Context(), append([]string{"-model", dir}, args...), &want, &errs); err != nil {
			t.Fatalf("%v\n%s", err, errs.String())
		}
		if err := run(t.Context(), append([]string{"-model", file}, args...), &got, &errs); err != nil {
			t.Fatalf("%v\n%s", err, errs.String())
		}
		if got.String() != want.String() || got.Len() == 0 {
			t.Errorf("%q: the GGUF file gives\n%.300s\nthe directory\n%.300s", args, got.String(), want.String())
		}
	}
}
