package fp8

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/herdml/herd/model"
)

// halfULP is half the spacing of E4M3 values around |y| (y in scaled
// units): the largest rounding error of a value inside the range.
func halfULP(y float64) float64 {
	a := math.Abs(y)
	if a < math.Ldexp(1, -6) {
		return math.Ldexp(1, -10)
	}
	e := math.Floor(math.Log2(a))
	return math.Ldexp(1, int(e)-4)
}

func TestQuantizeRowsWithinRounding(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const rows, cols = 37, 53
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(12)-8))
	}
	for c := range cols { // a zero row and a row with one outlier
		w[5*cols+c] = 0
	}
	w[7*cols+3] = 1e4
	q, scales := make([]byte, len(w)), make([]float32, rows)
	if err := QuantizeRows(q, scales, w, rows, cols); err != nil {
		t.Fatal(err)
	}
	back := make([]float32, len(w))
	if err := DequantizeRows(back, q, scales, rows, cols); err != nil {
		t.Fatal(err)
	}
	for r := range rows {
		var amax float64
		for _, v := range w[r*cols : (r+1)*cols] {
			amax = math.Max(amax, math.Abs(float64(v)))
		}
		s := float64(scales[r])
		wantScale := float64(safetensors.BF16ToFloat32(safetensors.Float32ToBF16(float32(amax / 448))))
		if amax == 0 {
			wantScale = 1
		}
		if s != wantScale {
			t.Fatalf("row %d: scale %v, want bf16(%v/448) = %v", r, s, amax, wantScale)
		}
		for c := range cols {
			i := r*cols + c
			y := float64(w[i]) / s // the value in E4M3 units
			if q[i] != refEncode(float32(y)) {
				t.Fatalf("[%d,%d]: code 0x%02x, reference 0x%02x for %v", r, c, q[i], refEncode(float32(y)), y)
			}
			// Within half an E4M3 step of the original (saturation above
			// 448 is within the scale's BF16 rounding, 448·2⁻⁹).
			if err := math.Abs(float64(back[i]) - float64(w[i])); err > (halfULP(y)+448*math.Ldexp(1, -9))*s {
				t.Fatalf("[%d,%d]: %v dequantizes to %v, error %v beyond E4M3 rounding", r, c, w[i], back[i], err)
			}
		}
	}
	// Re-quantizing the dequantized rows gives the same bytes.
	q2, s2 := make([]byte, len(w)), make([]float32, rows)
	if err := QuantizeRows(q2, s2, back, rows, cols); err != nil {
		t.Fatal(err)
	}
	for i := range q {
		if q[i] != q2[i] {
			t.Fatalf("re-quantized code %d: 0x%02x, first 0x%02x", i, q2[i], q[i])
		}
	}
	for r := range s2 {
		if s2[r] != scales[r] {
			t.Fatalf("re-quantized scale %d: %v, first %v", r, s2[r], scales[r])
		}
	}
}

func TestQuantizeRowsErrors(t *testing.T) {
	q, s := make([]byte, 4), make([]float32, 2)
	w := []float32{1, 2, float32(math.NaN()), 3}
	if err := QuantizeRows(q, s, w, 2, 2); err == nil || !strings.Contains(err.Error(), "[1, 0]") {
		t.Fatalf("NaN weight: %v", err)
	}
	if err := QuantizeRows(q, s, w[:3], 2, 2); err == nil {
		t.Fatal("short buffer accepted")
	}
	if err := DequantizeRows(w, []byte{0, 0x7f, 0, 0}, []float32{1, 1}, 2, 2); err == nil {
		t.Fatal("NaN code accepted")
	}
	if err := DequantizeRows(w, q, []float32{1, 0}, 2, 2); err == nil {
		t.Fatal("zero scale accepted")
	}
}

func TestQuantizeTokens(t *testing.T) {
	x := []float32{
		1, -2, 0.5, 3, // amax 3: scale 3/448
		0, 0, 0, 0, // untouched
		5000, 1, -0.001, 2, // amax capped at 1200: 5000 saturates to 1200
	}
	orig := append([]float32(nil), x...)
	quantizeTokens(x, 3, 4, 1200)
	for tk, amax := range []float64{3, 0, 1200} {
		for c := range 4 {
			i := tk*4 + c
			if amax == 0 {
				if x[i] != 0 {
					t.Fatalf("zero row changed: %v", x[i])
				}
				continue
			}
			s := float32(amax) / 448
			want := float32(refDecode(refEncode(orig[i]*(1/s)))) * s
			if x[i] != want {
				t.Fatalf("token %d col %d: %v → %v, want %v", tk, c, orig[i], x[i], want)
			}
		}
	}
	if x[8] != 1200 {
		t.Fatalf("value above the cap: %v, want 1200", x[8])
	}
}

func tinyConfig(layers int) model.Config {
	c := model.Config{VocabSize: 40, HiddenSize: 16, IntermediateSize: 24, NumHiddenLayers: layers,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 64, TieWordEmbeddings: true}
	c.Normalize()
	return c
}

func TestLlama3Scheme(t *testing.T) {
	cfg := tinyConfig(4)
	s, err := Llama3(cfg, DefaultActivationScaleUB)
	if err != nil {
		t.Fatal(err)
	}
	got := s.QuantizedModules(cfg)
	want := []string{"model.layers.1.mlp.gate_proj", "model.layers.1.mlp.up_proj", "model.layers.1.mlp.down_proj",
		"model.layers.2.mlp.gate_proj", "model.layers.2.mlp.up_proj", "model.layers.2.mlp.down_proj"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("quantized %v, want %v", got, want)
	}
	if len(s.Ignore)+len(got) != len(LinearModules(cfg)) || s.Ignore[len(s.Ignore)-1] != "lm_head" {
		t.Fatalf("ignore %v", s.Ignore)
	}
	if _, err := Llama3(tinyConfig(2), 1200); err == nil {
		t.Fatal("2-layer model accepted")
	}
	// The written config parses back to the same scheme.
	extra, err := s.Extra()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Extra = extra
	back, err := FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if back.ActivationScaleUB != 1200 || !back.DynamicActivations || strings.Join(back.QuantizedModules(cfg), ",") != strings.Join(want, ",") {
		t.Fatalf("parsed back %+v", back)
	}
	var doc map[string]any
	if err := json.Unmarshal(extra[QuantizationConfigKey], &doc); err != nil {
		t.Fatal(err)
	}
	g := doc["config_groups"].(map[string]any)["group_0"].(map[string]any)
	wa, ia := g["weights"].(map[string]any), g["input_activations"].(map[string]any)
	if doc["quant_method"] != "compressed-tensors" || doc["format"] != "float-quantized" ||
		wa["strategy"] != "channel" || wa["dynamic"] != false || wa["type"] != "float" || wa["num_bits"] != 8.0 || wa["symmetric"] != true ||
		ia["strategy"] != "token" || ia["dynamic"] != true {
		t.Fatalf("quantization_config %s", extra[QuantizationConfigKey])
	}
}

func TestParseQuantizationConfigErrors(t *testing.T) {
	good := `{"quant_method":"compressed-tensors","format":"float-quantized","config_groups":{"g":{"targets":["Linear"],"weights":{"num_bits":8,"type":"float","symmetric":true,"strategy":"channel","dynamic":false},"input_activations":{"num_bits":8,"type":"float","symmetric":true,"strategy":"token","dynamic":true}}},"ignore":["lm_head","re:.*self_attn.*"]}`
	s, err := parseQuantizationConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Quantized("model.layers.0.self_attn.q_proj") || s.Quantized("lm_head") || !s.Quantized("model.layers.0.mlp.up_proj") {
		t.Fatal("ignore list with a re: pattern misread")
	}
	for _, tt := range []struct{ from, to, msg string }{
		{`"compressed-tensors"`, `"fp8"`, "quant_method"},
		{`"float-quantized"`, `"pack-quantized"`, "format"},
		{`"strategy":"channel"`, `"strategy":"tensor"`, "strategy"},
		{`"num_bits":8,"type":"float","symmetric":true,"strategy":"channel"`, `"num_bits":4,"type":"int","symmetric":true,"strategy":"channel"`, "8-bit float"},
		{`"dynamic":true`, `"dynamic":"local"`, "dynamic"},
		{`["Linear"]`, `["Embedding"]`, "targets"},
		{`"re:.*self_attn.*"`, `"re:("`, "ignore[1]"},
		{`}}},"ignore"`, `}},"h":{}},"ignore"`, "exactly one"},
	} {
		bad := strings.Replace(good, tt.from, tt.to, 1)
		if _, err := parseQuantizationConfig([]byte(bad)); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s → %s: error %v, want one mentioning %q", tt.from, tt.to, err, tt.msg)
		}
	}
}

// FuzzParseQuantizationConfig feeds arbitrary documents to the parser: it
// must return a scheme or an error, never panic, and a scheme it returns
// must render to a config that parses to the same scheme.
func FuzzParseQuantizationConfig(f *testing.F) {
	s, _ := Llama3(tinyConfig(3), 1200)
	seed, _ := json.Marshal(s.Config())
	f.Add(seed)
	f.Add([]byte(`{"quant_method":"compressed-tensors","format":"float-quantized","config_groups":{"g":{"targets":["Linear"],"weights":{"num_bits":8,"type":"float","symmetric":true,"strategy":"channel","dynamic":false}}},"ignore":["re:[a-"]}`))
	f.Add([]byte(`{"config_groups":null}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"quant_method":"compressed-tensors"} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseQuantizationConfig(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(s.Config())
		if err != nil {
			t.Fatal(err)
		}
		s2, err := parseQuantizationConfig(again)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", again, err)
		}
		if s2.DynamicActivations != s.DynamicActivations || strings.Join(s2.Ignore, "\x00") != strings.Join(s.Ignore, "\x00") {
			t.Fatalf("scheme changed on re-parse: %+v vs %+v", s2, s)
		}
	})
}

// FuzzFromConfig reads a config.json whose quantization_config and
// activation_scale_ub are arbitrary JSON texts, as LoadModel does: an
// error or a scheme with a positive finite cap (when activations are
// dynamic), never a panic.
func FuzzFromConfig(f *testing.F) {
	s, _ := Llama3(tinyConfig(3), 1200)
	seed, _ := json.Marshal(s.Config())
	f.Add(seed, []byte("1200"))
	f.Add(seed, []byte("-1"))
	f.Add(seed, []byte("1e400"))
	f.Add([]byte("null"), []byte(`"x"`))
	f.Add([]byte(`{"quant_method":"compressed-tensors"}`), []byte("0"))
	f.Fuzz(func(t *testing.T, qc, ub []byte) {
		cfg := tinyConfig(3)
		cfg.Extra = map[string]json.RawMessage{QuantizationConfigKey: qc, ActivationScaleUBKey: ub}
		doc, err := json.Marshal(cfg)
		if err != nil {
			return // not JSON values: config.json could not hold them
		}
		parsed, err := model.ParseConfig(doc)
		if err != nil {
			return
		}
		sch, err := FromConfig(parsed)
		if err != nil || sch == nil {
			return
		}
		if sch.DynamicActivations && !(sch.ActivationScaleUB > 0 && !math.IsInf(float64(sch.ActivationScaleUB), 0)) {
			t.Fatalf("cap %v accepted", sch.ActivationScaleUB)
		}
		_ = sch.QuantizedModules(parsed)
	})
}
