package safetensors_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/herdml/herd/internal/testenv"
	"github.com/herdml/herd/model"
)

// This test reads the model's layout, and the model imports the kernels,
// which import this package: it lives in the external test package.

const refDir = "../../../shared/testdata/llama-ref"

// TestReference parses the Python-written reference checkpoints, checks
// their tensors against the layout their config implies, and checks that
// rewriting them reproduces the files byte for byte.
func TestReference(t *testing.T) {
	testenv.Testdata(t, refDir)
	for _, name := range []string{"tiny-a", "tiny-b"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(refDir, name)
			cfg, err := model.LoadConfig(filepath.Join(dir, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "model.safetensors")
			f, err := safetensors.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if !safetensors.Mapped(f) {
				t.Error("file was not memory-mapped")
			}
			if got := f.Metadata["format"]; got != "pt" {
				t.Errorf("metadata format = %q, want pt", got)
			}
			layout := model.NewLayout(cfg)
			if len(f.Tensors) != len(layout.Tensors) {
				t.Errorf("%d tensors in file, layout has %d", len(f.Tensors), len(layout.Tensors))
			}
			var tensors []safetensors.Tensor
			for _, want := range layout.Tensors {
				got, ok := f.Lookup(want.Name)
				if !ok {
					t.Errorf("tensor %s missing", want.Name)
					continue
				}
				if got.DType != safetensors.F32 || !slices.Equal(got.Shape, want.Shape) {
					t.Errorf("%s: %s %v, want F32 %v", want.Name, got.DType, got.Shape, want.Shape)
				}
				v := make([]float32, want.Size)
				if err := f.ReadFloat32(want.Name, v); err != nil {
					t.Fatal(err)
				}
				tensors = append(tensors, safetensors.Tensor{Name: want.Name, DType: safetensors.F32, Shape: want.Shape, F32: v})
			}
			// Norm weights are 1 + N(0, 0.1): a sanity check on the decoding.
			norm := make([]float32, cfg.HiddenSize)
			if err := f.ReadFloat32("model.norm.weight", norm); err != nil {
				t.Fatal(err)
			}
			var mean float64
			for _, x := range norm {
				mean += float64(x) / float64(len(norm))
			}
			if math.Abs(mean-1) > 0.1 {
				t.Errorf("model.norm.weight mean %v, want about 1", mean)
			}
			var buf bytes.Buffer
			if err := safetensors.Write(&buf, tensors, map[string]string{"format": "pt"}); err != nil {
				t.Fatal(err)
			}
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), orig) {
				t.Errorf("rewritten file differs from the reference (%d vs %d bytes)", buf.Len(), len(orig))
			}
		})
	}
}
