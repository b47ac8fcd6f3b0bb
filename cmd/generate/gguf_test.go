package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/herdml/herd/checkpoint/gguf"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
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

// TestGGUFRounding: for a Q8_0 GGUF file generate computes what llama.cpp
// computes, with each product's input rounded as ggml rounds it
// (gguf.Rounder), and -ggml-rounding=false multiplies the unrounded
// inputs by the dequantized weights.
func TestGGUFRounding(t *testing.T) {
	dir, _ := textModel(t)
	file := filepath.Join(t.TempDir(), "m.gguf")
	if err := gguf.Convert(gguf.ConvertOptions{Model: dir, Format: gguf.FormatGGUF, Type: gguf.Q8_0, Out: file}); err != nil {
		t.Fatal(err)
	}
	ids := []int32{1, 2, 3, 4, 5, 6}
	want := func(rounding bool) []float32 {
		g, err := gguf.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		be := kernels.NewCPU(1)
		defer be.Close()
		m, err := model.NewWithParams(g.Config, g.Params, be)
		if err != nil {
			t.Fatal(err)
		}
		if rounding && !g.EmulateLlamaCpp(m) {
			t.Fatal("a Q8_0 file has no rounding to emulate")
		}
		if _, err := m.Forward(&model.Batch{B: 1, T: len(ids), Tokens: ids}); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(m.Logits())
	}
	on, off := want(true), want(false)
	if slices.Equal(on, off) {
		t.Fatal("rounding the inputs changes no logit")
	}
	for _, tc := range []struct {
		flags []string
		want  []float32
	}{{nil, on}, {[]string{"-ggml-rounding=false"}, off}} {
		var out, errs bytes.Buffer
		args := append([]string{"-model", file, "-workers", "1", "-ids", "1,2,3,4,5,6", "-logits", "-"}, tc.flags...)
		if err := run(t.Context(), args, &out, &errs); err != nil {
			t.Fatalf("%v\n%s", err, errs.String())
		}
		var got logitsFile
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		V := len(tc.want) / len(ids)
		for i, row := range got.Logits {
			for j, v := range row {
				if w := tc.want[i*V+j]; v != w {
					t.Fatalf("%q: logit [%d,%d] is %v, want %v", tc.flags, i, j, v, w)
				}
			}
		}
	}
}
