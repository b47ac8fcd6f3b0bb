package quantize

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/checkpoint/fp8"
	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/data/tokens/tokenstest"
	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/tasks"
)

const testVocab = 600

func tinyConfig() model.Config {
	c := model.Config{VocabSize: testVocab, HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 4,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 192, TieWordEmbeddings: true}
	c.Normalize()
	return c
}

func sameBits(a, b []float32) int {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

func TestRunSchemes(t *testing.T) {
	tok := traintest.ChatTokenizer(t, testVocab, tasks.WriteSFT)
	cfg := tinyConfig()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 3)
	in := traintest.SaveModel(t, cfg, p, tok)
	root := t.TempDir()
	for _, tt := range []struct {
		scheme string
		dtype  safetensors.DType
		torch  string
	}{{"fp8", safetensors.BF16, "bfloat16"}, {"bf16", safetensors.BF16, "bfloat16"}, {"f16", safetensors.F16, "float16"}, {"f32", safetensors.F32, "float32"}} {
		t.Run(tt.scheme, func(t *testing.T) {
			out := filepath.Join(root, tt.scheme)
			rep, err := Run(context.Background(), Options{Model: in, Out: out, Scheme: tt.scheme}, nil)
			if err != nil {
				t.Fatal(err)
			}
			gotCfg, got, err := checkpoint.LoadModel(out)
			if err != nil {
				t.Fatal(err)
			}
			if gotCfg.TorchDtype != tt.torch {
				t.Fatalf("torch_dtype %q, want %q", gotCfg.TorchDtype, tt.torch)
			}
			// What asSaved (the comparison's model) holds is what loads.
			opt, err := saveOptions(cfg, Options{Model: in, Scheme: tt.scheme})
			if err != nil {
				t.Fatal(err)
			}
			_, want, err := asSaved(cfg, p, opt)
			if err != nil {
				t.Fatal(err)
			}
			if i := sameBits(got.Data, want.Data); i >= 0 {
				t.Fatalf("loaded value %d = %v, the comparison used %v", i, got.Data[i], want.Data[i])
			}
			sf, err := safetensors.Open(filepath.Join(out, checkpoint.WeightsFile))
			if err != nil {
				t.Fatal(err)
			}
			defer sf.Close()
			ti, _ := sf.Lookup("model.layers.0.self_attn.q_proj.weight")
			if ti.DType != tt.dtype {
				t.Fatalf("attention stored as %s, want %s", ti.DType, tt.dtype)
			}
			if (tt.scheme == "fp8") != (len(rep.Quantized) == 6) {
				t.Fatalf("quantized modules %v", rep.Quantized)
			}
			for _, f := range []string{tokenizer.TokenizerFile, tokenizer.ConfigFile, checkpoint.SpecialTokensMapFile, checkpoint.ReadmeFile, checkpoint.GenerationConfigFile} {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Fatalf("output lacks %s: %v", f, err)
				}
			}
		})
	}
	// FP8 → herd → FP8 through the tool: weights and config byte-identical.
	again := filepath.Join(root, "fp8-again")
	if _, err := Run(context.Background(), Options{Model: filepath.Join(root, "fp8"), Out: again, Scheme: "fp8"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{checkpoint.WeightsFile, checkpoint.ConfigFile, tokenizer.TokenizerFile, checkpoint.SpecialTokensMapFile} {
		a, _ := os.ReadFile(filepath.Join(root, "fp8", f))
		b, err := os.ReadFile(filepath.Join(again, f))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs after FP8 → herd → FP8 (%v)", f, err)
		}
	}
	// Refusals: unknown scheme, output over the input, bound without fp8.
	for _, o := range []Options{
		{Model: in, Out: filepath.Join(root, "x"), Scheme: "int4"},
		{Model: in, Out: in, Scheme: "fp8"},
		{Model: in, Out: filepath.Join(root, "y"), Scheme: "bf16", ActivationScaleUB: 100},
	} {
		if _, err := Run(context.Background(), o, nil); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestCompare runs the whole measurement on a tiny model: held-out loss
// of every precision and reward-score distributions.
func TestCompare(t *testing.T) {
	tok := traintest.ChatTokenizer(t, testVocab, tasks.WriteSFT)
	cfg := tinyConfig()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 5)
	in := traintest.SaveModel(t, cfg, p, tok)
	rmCfg := cfg.AsSequenceClassifier(1, 0)
	rp := model.NewParams(model.NewLayout(rmCfg))
	rp.Init(rmCfg, 9)
	rm := traintest.SaveModel(t, rmCfg, rp, tok)
	shards := t.TempDir()
	tokenstest.WriteShard(t, filepath.Join(shards, "tokens-00000.parquet"), tokenstest.SynthRows("s", 400, testVocab, 1, 40, 120), 64)
	prompts := filepath.Join(t.TempDir(), "p.jsonl")
	var b strings.Builder
	if err := tasks.WriteSFT(&b, nil, 6, 2); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(prompts, []byte(b.String()), 0o644)
	o := Options{Model: in, Out: filepath.Join(t.TempDir(), "fp8"), Scheme: "fp8", Compare: CompareOptions{
		HeldOut: []string{shards}, HeldOutFraction: 0.2, EvalTokens: 2000, SeqLen: 64,
		RewardModel: rm, Prompts: TaskPrompts, NumPrompts: 5, Samples: 3, MaxNewTokens: 8, Seed: 4}}
	rep, err := Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := rep.Compare.HeldOut
	if h == nil || h.Tokens < 1000 || len(h.Loss) != 4 {
		t.Fatalf("held-out report %+v", h)
	}
	for k, v := range h.Loss {
		if !(v > 0) || math.Abs(v-h.Loss["f32"]) > 0.05*h.Loss["f32"] {
			t.Fatalf("loss %s = %v (f32 %v)", k, v, h.Loss["f32"])
		}
	}
	if h.Loss["fp8"] == h.Loss["f32"] || h.Loss["fp8"] == h.Loss["fp8_weights_only"] {
		t.Fatalf("FP8 loss equals another precision's: %v", h.Loss)
	}
	r := rep.Compare.Reward
	if r == nil || r.Prompts != 5 || r.Samples != 3 || len(r.Scores) != 2 || r.Scores["fp8"].N != 15 || r.Scores["bf16"].N != 15 {
		t.Fatalf("reward report %+v", r)
	}
	readme, _ := os.ReadFile(filepath.Join(o.Out, checkpoint.ReadmeFile))
	if !bytes.Contains(readme, []byte("heldout_loss_fp8")) || !bytes.Contains(readme, []byte("rm_score_mean_fp8")) {
		t.Fatalf("model card lacks the measurements:\n%s", readme)
	}
}

func TestSummarize(t *testing.T) {
	d := summarize([]float64{4, 1, 3, 2, 5})
	if d.N != 5 || d.Mean != 3 || math.Abs(d.Std-math.Sqrt(2.5)) > 1e-12 || d.P50 != 3 || d.P25 != 2 || d.Min != 1 || d.Max != 5 || math.Abs(d.P10-1.4) > 1e-12 {
		t.Fatalf("%+v", d)
	}
}

// TestEmulation checks the model's FFN inputs are E4M3 values times a
// per-token scale in exactly the quantized layers, in training forward
// and in KV-cached decoding, and that both paths agree.
func TestEmulation(t *testing.T) {
	cfg := tinyConfig()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 8)
	s, err := fp8.Llama3(cfg, fp8.DefaultActivationScaleUB)
	if err != nil {
		t.Fatal(err)
	}
	c, q, err := asSaved(cfg, p, checkpoint.SaveOptions{FP8: s, DType: safetensors.BF16})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.NewWithParams(c, q, cpu(t))
	if err != nil {
		t.Fatal(err)
	}
	on, err := fp8.Emulate(m)
	if err != nil || !on {
		t.Fatalf("emulate: %v %v", on, err)
	}
	spy := &spyQuantizer{inner: m.ActivationQuantizer, t: t}
	m.ActivationQuantizer = spy
	toks := []int32{1, 5, 9, 33, 2, 7, 100, 4}
	b := &model.Batch{B: 1, T: len(toks), Tokens: toks}
	if _, err := m.Forward(b); err != nil {
		t.Fatal(err)
	}
	full := append([]float32(nil), m.Logits()...)
	if spy.quantized != 4 || spy.calls != 8 { // layers 1, 2 × (gate/up, down); 4 layers × 2 calls
		t.Fatalf("forward: %d calls, %d quantized", spy.calls, spy.quantized)
	}
	d, err := m.NewDecoder(1, 32)
	if err != nil {
		t.Fatal(err)
	}
	spy.calls, spy.quantized = 0, 0
	if _, err := d.Step([]int{0}, [][]int32{toks[:5]}, false); err != nil {
		t.Fatal(err)
	}
	for i := 5; i < len(toks); i++ {
		lg, err := d.Step([]int{0}, [][]int32{toks[i : i+1]}, false)
		if err != nil {
			t.Fatal(err)
		}
		row := full[i*cfg.VocabSize : (i+1)*cfg.VocabSize]
		for j := range row {
			if math.Abs(float64(lg[j]-row[j])) > 1e-3 {
				t.Fatalf("position %d logit %d: decoder %v, forward %v", i, j, lg[j], row[j])
			}
		}
	}
	if spy.quantized != 4*4 {
		t.Fatalf("decoder: %d quantized calls, want 16", spy.quantized)
	}
	// The rounding matters: without it the logits differ.
	m.ActivationQuantizer = nil
	if _, err := m.Forward(b); err != nil {
		t.Fatal(err)
	}
	if sameBits(m.Logits(), full) < 0 {
		t.Fatal("activation quantization changed nothing")
	}
}

// spyQuantizer checks each call's output: in a quantized layer every row
// must be E4M3 codes times amax/448.
type spyQuantizer struct {
	inner            model.ActivationQuantizer
	t                *testing.T
	calls, quantized int
}

func (s *spyQuantizer) QuantizeFFNInput(layer int, down bool, x []float32, rows, cols int) {
	before := append([]float32(nil), x[:rows*cols]...)
	s.inner.QuantizeFFNInput(layer, down, x, rows, cols)
	s.calls++
	if !fp8.QuantizedLayer(layer, 4) {
		if sameBits(before, x[:rows*cols]) >= 0 {
			s.t.Errorf("layer %d input changed", layer)
		}
		return
	}
	s.quantized++
	for r := range rows {
		row := before[r*cols : (r+1)*cols]
		var amax float32
		for _, v := range row {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		sc := min(amax, 1200) / 448
		for c, v := range row {
			if want := fp8.DecodeE4M3(fp8.EncodeE4M3(v*(1/sc))) * sc; x[r*cols+c] != want {
				s.t.Errorf("layer %d row %d col %d: %v → %v, want %v", layer, r, c, v, x[r*cols+c], want)
				return
			}
		}
	}
}

func cpu(t *testing.T) kernels.Backend {
	be := kernels.NewCPU(2)
	t.Cleanup(be.Close)
	return be
}

func TestReadPrompts(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.jsonl")
	os.WriteFile(good, []byte(`{"prompt":"Max: 1 2","completion":"2"}`+"\n\n"+`{"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}`+"\n"+`{"prompt":"third"}`+"\n"), 0o644)
	got, err := readPrompts(good, 2)
	if err != nil || strings.Join(got, "|") != "Max: 1 2|hi" {
		t.Fatalf("%q, %v", got, err)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"prompt":"a"}`+"\n"+`{"messages":[]}`+"\n"), 0o644)
	if _, err := readPrompts(bad, 5); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") {
		t.Fatalf("error %v, want one naming bad.jsonl:2", err)
	}
	ps, err := readPrompts(TaskPrompts, 9)
	if err != nil || len(ps) != 9 {
		t.Fatalf("task prompts %q, %v", ps, err)
	}
	for _, p := range ps {
		if !tasks.HeldOut(p) {
			t.Fatalf("task prompt %q is not from the held-out split", p)
		}
	}
}
