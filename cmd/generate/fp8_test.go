package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/checkpoint/fp8"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
)

// TestFP8Directory: generate runs an FP8 (compressed-tensors) directory as
// an FP8 engine would: its logits are those of the dequantized weights
// with the feed-forward inputs quantized per token, not of the weights
// alone.
func TestFP8Directory(t *testing.T) {
	cfg := model.Config{VocabSize: 50, HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 3,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, MaxPositionEmbeddings: 16}
	cfg.Normalize()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 2)
	s, err := fp8.Llama3(cfg, fp8.DefaultActivationScaleUB)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "fp8")
	if err := checkpoint.SaveModel(dir, cfg, p, checkpoint.SaveOptions{FP8: s}); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := runIO(context.Background(), []string{"-model", dir, "-ids", "1,2,3,4,5", "-logits", "-"}, strings.NewReader(""), &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	var got logitsFile
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	logits := func(emulate bool) []float32 {
		c, q, err := checkpoint.LoadModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		be := kernels.NewCPU(1)
		defer be.Close()
		m, err := model.NewWithParams(c, q, be)
		if err != nil {
			t.Fatal(err)
		}
		if emulate {
			if on, err := fp8.Emulate(m); !on || err != nil {
				t.Fatalf("emulate: %v %v", on, err)
			}
		}
		if _, err := m.Forward(&model.Batch{B: 1, T: 5, Tokens: []int32{1, 2, 3, 4, 5}}); err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), m.Logits()...)
	}
	maxDiff := func(want []float32) float64 {
		var d float64
		for i, row := range got.Logits {
			for j, v := range row {
				d = math.Max(d, math.Abs(float64(v-want[i*cfg.VocabSize+j])))
			}
		}
		return d
	}
	if d := maxDiff(logits(true)); d > 1e-5 {
		t.Fatalf("generate's logits differ from the emulated FP8 model's by %g", d)
	}
	if d := maxDiff(logits(false)); d == 0 {
		t.Fatal("generate's logits equal the weight-only model's: activations were not quantized")
	}
}
