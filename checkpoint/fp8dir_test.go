package checkpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint/fp8"
	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/herdml/herd/model"
)

func fp8Config(tied bool) model.Config {
	c := tinyConfig(tied)
	c.NumHiddenLayers = 4
	return c
}

// saveFP8 writes cfg/p as an FP8 directory with the Llama 3 scheme.
func saveFP8(t *testing.T, dir string, cfg model.Config, p *model.Params, shard int64) *fp8.Scheme {
	t.Helper()
	s, err := fp8.Llama3(cfg, fp8.DefaultActivationScaleUB)
	if err != nil {
		t.Fatal(err)
	}
	if err := SaveModel(dir, cfg, p, SaveOptions{FP8: s, ShardBytes: shard}); err != nil {
		t.Fatal(err)
	}
	return s
}

// readTensors returns every tensor of a directory's weights files with
// its dtype, by name.
func readTensors(t *testing.T, dir string) map[string]safetensors.TensorInfo {
	t.Helper()
	out := map[string]safetensors.TensorInfo{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	for _, f := range files {
		sf, err := safetensors.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range sf.Tensors {
			out[ti.Name] = ti
		}
		sf.Close()
	}
	return out
}

func TestFP8DirLayout(t *testing.T) {
	for _, tied := range []bool{true, false} {
		cfg := fp8Config(tied)
		p := tinyParams(cfg, 11)
		dir := filepath.Join(t.TempDir(), "fp8")
		saveFP8(t, dir, cfg, p, 0)
		tensors := readTensors(t, dir)
		for _, ti := range p.Layout.Tensors {
			got := tensors[ti.Name]
			var layer int
			_, err := fmtSscan(ti.Name, &layer)
			quant := err == nil && strings.Contains(ti.Name, ".mlp.") && layer > 0 && layer < 3
			base := strings.TrimSuffix(ti.Name, ".weight")
			switch {
			case quant:
				sc, ok := tensors[base+".weight_scale"]
				if got.DType != safetensors.F8E4M3 || !ok || sc.DType != safetensors.BF16 || !slices.Equal(sc.Shape, []int{ti.Shape[0], 1}) {
					t.Fatalf("%s: %s, scale %v %s %v", ti.Name, got.DType, ok, sc.DType, sc.Shape)
				}
			default:
				// First/last layers, attention, norms, embeddings and head
				// stay BF16, and exactly the BF16 rounding of the original.
				if got.DType != safetensors.BF16 {
					t.Fatalf("%s stored as %s, want BF16", ti.Name, got.DType)
				}
				if _, ok := tensors[base+".weight_scale"]; ok {
					t.Fatalf("%s has a scale", ti.Name)
				}
			}
		}
		cfgBack, back, err := LoadModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range p.Layout.Tensors {
			orig, got := p.Get(ti.Name), back.Get(ti.Name)
			if tensors[ti.Name].DType == safetensors.BF16 {
				for i := range orig {
					if want := safetensors.BF16ToFloat32(safetensors.Float32ToBF16(orig[i])); got[i] != want {
						t.Fatalf("%s[%d] = %v, want bf16(%v) = %v (untouched)", ti.Name, i, got[i], orig[i], want)
					}
				}
				continue
			}
			// Quantized rows: E4M3(w/s)·s exactly.
			rows, cols := ti.Shape[0], ti.Shape[1]
			for r := range rows {
				var amax float32
				for _, v := range orig[r*cols : (r+1)*cols] {
					amax = max(amax, float32(math.Abs(float64(v))))
				}
				s := fp8.RowScale(amax)
				for c := range cols {
					i := r*cols + c
					if want := fp8.DecodeE4M3(fp8.EncodeE4M3(orig[i]/s)) * s; got[i] != want {
						t.Fatalf("%s[%d,%d] = %v, want %v", ti.Name, r, c, got[i], want)
					}
				}
			}
		}
		sch, err := fp8.FromConfig(cfgBack)
		if err != nil || sch == nil || sch.ActivationScaleUB != 1200 {
			t.Fatalf("scheme back: %+v %v", sch, err)
		}
		if cfgBack.TorchDtype != "bfloat16" {
			t.Fatalf("torch_dtype %q", cfgBack.TorchDtype)
		}
	}
}

func fmtSscan(name string, layer *int) (int, error) {
	return fmt.Sscanf(name, "model.layers.%d.", layer)
}

// TestFP8RoundTrip: FP8 directory → herd → FP8 directory is byte-identical,
// sharded or not; and saving the loaded model as BF16 drops the
// quantization_config.
func TestFP8RoundTrip(t *testing.T) {
	for _, shard := range []int64{0, 3000} {
		cfg := fp8Config(false)
		p := tinyParams(cfg, 5)
		root := t.TempDir()
		a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
		s := saveFP8(t, a, cfg, p, shard)
		cfg2, p2, err := LoadModel(a)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := fp8.FromConfig(cfg2)
		if err != nil {
			t.Fatal(err)
		}
		if err := SaveModel(b, cfg2, p2, SaveOptions{FP8: s2, ShardBytes: shard}); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(a)
		if len(ents) < 5 {
			t.Fatalf("only %d files", len(ents))
		}
		for _, e := range ents {
			x, _ := os.ReadFile(filepath.Join(a, e.Name()))
			y, err := os.ReadFile(filepath.Join(b, e.Name()))
			if err != nil || !bytes.Equal(x, y) {
				t.Fatalf("shard %d: %s differs after the round trip (%v)", shard, e.Name(), err)
			}
		}
		_ = s
		c := filepath.Join(root, "c")
		if err := SaveModel(c, cfg2, p2, SaveOptions{DType: safetensors.BF16}); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(filepath.Join(c, ConfigFile))
		if bytes.Contains(raw, []byte("quantization_config")) || bytes.Contains(raw, []byte("activation_scale_ub")) {
			t.Fatalf("BF16 save kept the quantization keys:\n%s", raw)
		}
	}
}

func TestFP8LoadErrors(t *testing.T) {
	cfg := fp8Config(true)
	p := tinyParams(cfg, 3)
	dir := filepath.Join(t.TempDir(), "m")
	saveFP8(t, dir, cfg, p, 0)
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, from, to, msg string }{
		{"ignore a quantized module", `"ignore": [`, `"ignore": ["model.layers.1.mlp.up_proj", `, "stored quantized"},
		{"unignore a bf16 module", `"model.layers.0.mlp.up_proj",`, ``, "wider dtype"},
		{"bad method", `"compressed-tensors"`, `"awq"`, "quant_method"},
		{"bad bound", `"activation_scale_ub": 1200`, `"activation_scale_ub": -1`, "activation_scale_ub"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var doc map[string]json.RawMessage
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			b, _ := json.MarshalIndent(doc, "", "  ")
			bad := strings.Replace(string(b), tt.from, tt.to, 1)
			if bad == string(b) {
				t.Fatalf("%q not found in %s", tt.from, b)
			}
			d := filepath.Join(t.TempDir(), "m")
			os.MkdirAll(d, 0o755)
			os.WriteFile(filepath.Join(d, ConfigFile), []byte(bad), 0o644)
			w, _ := os.ReadFile(filepath.Join(dir, WeightsFile))
			os.WriteFile(filepath.Join(d, WeightsFile), w, 0o644)
			if _, _, err := LoadModel(d); err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.msg)
			}
		})
	}
}

func TestCompanionFiles(t *testing.T) {
	cfg := tinyConfig(true)
	p := tinyParams(cfg, 1)
	dir := filepath.Join(t.TempDir(), "m")
	tc := `{"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|end_of_text|>", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false}, "pad_token": null}`
	card := &ModelCard{Summary: "A test model.", Recipe: "recipes/tiny.yaml", Data: []string{"tokens/ (3 shards)"}, Eval: map[string]float64{"heldout_loss": 2.5}}
	if err := SaveModel(dir, cfg, p, SaveOptions{DType: safetensors.F16, Card: card, Extra: map[string][]byte{"tokenizer_config.json": []byte(tc)}}); err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(filepath.Join(dir, SpecialTokensMapFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(m, []byte(`"content": "<|begin_of_text|>"`)) {
		t.Fatalf("special_tokens_map.json escapes the token text:\n%s", m)
	}
	var doc map[string]map[string]any
	if err := json.Unmarshal(m, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}
	if len(doc) != 2 {
		t.Fatalf("special_tokens_map.json %s", m)
	}
	for k, v := range want {
		tok := doc[k]
		if tok["content"] != v || tok["lstrip"] != false || tok["rstrip"] != false || tok["normalized"] != false || tok["single_word"] != false {
			t.Fatalf("%s = %v", k, tok)
		}
	}
	readme, err := os.ReadFile(filepath.Join(dir, ReadmeFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"library_name: transformers", "A test model.", "recipes/tiny.yaml", "tokens/ (3 shards)", "| heldout_loss | 2.5 |", "| weights dtype | F16 |"} {
		if !bytes.Contains(readme, []byte(s)) {
			t.Errorf("README.md lacks %q:\n%s", s, readme)
		}
	}
	cfgBack, _, err := LoadModel(dir)
	if err != nil || cfgBack.TorchDtype != "float16" {
		t.Fatalf("torch_dtype %q, %v", cfgBack.TorchDtype, err)
	}
}

// TestFP8AllLinear loads the layout llm-compressor's FP8-dynamic recipe
// writes: every Linear module quantized, attention included, only the head
// ignored.
func TestFP8AllLinear(t *testing.T) {
	cfg := fp8Config(true)
	p := tinyParams(cfg, 4)
	s := &fp8.Scheme{Ignore: []string{"lm_head"}, DynamicActivations: true}
	dir := filepath.Join(t.TempDir(), "m")
	if err := SaveModel(dir, cfg, p, SaveOptions{FP8: s}); err != nil {
		t.Fatal(err)
	}
	tensors := readTensors(t, dir)
	if tensors["model.layers.0.self_attn.q_proj.weight"].DType != safetensors.F8E4M3 || tensors["model.embed_tokens.weight"].DType != safetensors.BF16 {
		t.Fatal("attention not quantized or embedding quantized")
	}
	cfg2, back, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	sch, err := fp8.FromConfig(cfg2)
	if err != nil || len(sch.QuantizedModules(cfg2)) != 4*7 || sch.ActivationScaleUB != 0 {
		t.Fatalf("scheme %+v, %v", sch, err)
	}
	w, orig := back.Get("model.layers.0.self_attn.k_proj.weight"), p.Get("model.layers.0.self_attn.k_proj.weight")
	for i := range w {
		if math.Abs(float64(w[i]-orig[i])) > 0.07*math.Abs(float64(orig[i]))+1e-6 {
			t.Fatalf("k_proj[%d] = %v, original %v", i, w[i], orig[i])
		}
	}
}
