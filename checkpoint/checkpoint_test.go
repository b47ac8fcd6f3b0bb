package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/herdml/herd/internal/testenv"
	"github.com/herdml/herd/model"
)

const refDir = "../../shared/testdata/llama-ref"

func intp(v int) *int { return &v }

func tinyConfig(tied bool) model.Config {
	c := model.Config{VocabSize: 40, HiddenSize: 16, IntermediateSize: 24, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 64, TieWordEmbeddings: tied,
		BOSTokenID: intp(1), EOSTokenID: 2}
	c.Normalize()
	return c
}

// sameConfig compares configurations by their config.json rendering.
func sameConfig(a, b model.Config) bool {
	ja, err1 := a.MarshalIndent()
	jb, err2 := b.MarshalIndent()
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func tinyParams(c model.Config, seed uint64) *model.Params {
	p := model.NewParams(model.NewLayout(c))
	p.Init(c, seed)
	return p
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %g, want %g (bitwise)", what, i, got[i], want[i])
		}
	}
}

func TestSaveLoadModel(t *testing.T) {
	tests := []struct {
		name   string
		tied   bool
		dtype  safetensors.DType
		shard  int64
		shards int
	}{
		{"f32", false, safetensors.F32, 0, 1},
		{"f32 tied", true, safetensors.F32, 0, 1},
		{"bf16", false, safetensors.BF16, 0, 1},
		{"f16 tied", true, safetensors.F16, 0, 1},
		// Embedding 40×16×4 = 2560 bytes; each layer ~6 KB.
		{"f32 sharded", false, safetensors.F32, 8000, 3},
		{"bf16 sharded by tensor", false, safetensors.BF16, 1, 21},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tinyConfig(tt.tied)
			p := tinyParams(cfg, 7)
			dir := filepath.Join(t.TempDir(), "model")
			opt := SaveOptions{DType: tt.dtype, ShardBytes: tt.shard, Extra: map[string][]byte{"tokenizer.json": []byte(`{"x":1}`)}}
			if err := SaveModel(dir, cfg, p, opt); err != nil {
				t.Fatal(err)
			}
			got, gp, err := LoadModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			wantCfg := cfg
			wantCfg.TorchDtype = map[safetensors.DType]string{"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[tt.dtype]
			if !sameConfig(got, wantCfg) {
				t.Errorf("config round trip:\n got %+v\nwant %+v", got, wantCfg)
			}
			want := slices.Clone(p.Data)
			for i, x := range want {
				switch tt.dtype {
				case safetensors.BF16:
					want[i] = safetensors.BF16ToFloat32(safetensors.Float32ToBF16(x))
				case safetensors.F16:
					if d := math.Abs(float64(x)); d > 6e-5 && math.Abs(float64(gp.Data[i])-float64(x)) > d/1024 {
						t.Fatalf("f16 value %d: %g -> %g", i, x, gp.Data[i])
					}
					want[i] = gp.Data[i]
				}
			}
			sameBits(t, "weights", gp.Data, want)
			ents, _ := os.ReadDir(dir)
			var files []string
			for _, e := range ents {
				files = append(files, e.Name())
			}
			nShards := 0
			for _, f := range files {
				if strings.HasPrefix(f, "model-") {
					nShards++
				}
			}
			if tt.shards == 1 {
				if !slices.Contains(files, WeightsFile) || slices.Contains(files, WeightsIndexFile) || nShards != 0 {
					t.Errorf("files %v, want a single %s", files, WeightsFile)
				}
			} else {
				if nShards != tt.shards || !slices.Contains(files, WeightsIndexFile) || slices.Contains(files, WeightsFile) {
					t.Errorf("files %v, want %d shards and an index", files, tt.shards)
				}
				checkIndex(t, dir, p.Layout, tt.dtype, tt.shard)
			}
			for _, f := range []string{ConfigFile, GenerationConfigFile, "tokenizer.json"} {
				if !slices.Contains(files, f) {
					t.Errorf("missing %s in %v", f, files)
				}
			}
			var gen map[string]any
			b, _ := os.ReadFile(filepath.Join(dir, GenerationConfigFile))
			if err := json.Unmarshal(b, &gen); err != nil || gen["bos_token_id"] != 1.0 || gen["eos_token_id"] != 2.0 || gen["do_sample"] != true {
				t.Errorf("generation config %s (%v)", b, err)
			}
		})
	}
}

func checkIndex(t *testing.T, dir string, l *model.Layout, dt safetensors.DType, limit int64) {
	t.Helper()
	var idx struct {
		Metadata struct {
			TotalSize int64 `json:"total_size"`
		}
		WeightMap map[string]string `json:"weight_map"`
	}
	b, err := os.ReadFile(filepath.Join(dir, WeightsIndexFile))
	if err != nil || json.Unmarshal(b, &idx) != nil {
		t.Fatalf("index: %v", err)
	}
	if idx.Metadata.TotalSize != int64(l.Total*dt.Size()) {
		t.Errorf("total_size %d, want %d", idx.Metadata.TotalSize, l.Total*dt.Size())
	}
	perFile := map[string]int64{}
	for _, tn := range l.Tensors {
		f, ok := idx.WeightMap[tn.Name]
		if !ok {
			t.Errorf("weight_map lacks %s", tn.Name)
		}
		perFile[f] += int64(tn.Size * dt.Size())
	}
	for f, n := range perFile {
		sf, err := safetensors.Open(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if sf.Metadata["format"] != "pt" {
			t.Errorf("%s metadata %v", f, sf.Metadata)
		}
		if n > limit && len(sf.Tensors) > 1 {
			t.Errorf("%s holds %d bytes in %d tensors, above the %d limit", f, n, len(sf.Tensors), limit)
		}
		sf.Close()
	}
}

// TestReferenceModels loads the Python-written reference checkpoints
// (untied and tied), and checks that saving them again reproduces the
// reference weights file byte for byte.
func TestReferenceModels(t *testing.T) {
	testenv.Testdata(t, refDir)
	for _, name := range []string{"tiny-a", "tiny-b"} {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(refDir, name)
			cfg, p, err := LoadModel(src)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.TieWordEmbeddings != (name == "tiny-b") {
				t.Errorf("tie_word_embeddings = %v", cfg.TieWordEmbeddings)
			}
			dst := filepath.Join(t.TempDir(), name)
			if err := SaveModel(dst, cfg, p, SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(filepath.Join(src, WeightsFile))
			b, _ := os.ReadFile(filepath.Join(dst, WeightsFile))
			if !bytes.Equal(a, b) {
				t.Errorf("re-saved weights differ from the reference (%d vs %d bytes)", len(b), len(a))
			}
			cfg2, _, err := LoadModel(dst)
			if err != nil {
				t.Fatal(err)
			}
			if !sameConfig(cfg, cfg2) {
				t.Errorf("config changed on re-save:\n%+v\n%+v", cfg, cfg2)
			}
		})
	}
}

// tensor is one tensor of a custom weights file: F32 values (stored as
// F32), or Raw bytes stored as DType.
type tensor struct {
	Name  string
	DType safetensors.DType
	Shape []int
	F32   []float32
	Raw   []byte
}

// writeTensors writes a custom weights file for the error tests.
func writeTensors(t *testing.T, path string, tensors []tensor) {
	t.Helper()
	specs := make([]safetensors.TensorSpec, len(tensors))
	byName := map[string]tensor{}
	for i, tn := range tensors {
		specs[i] = safetensors.TensorSpec{Name: tn.Name, DType: tn.DType, Shape: tn.Shape}
		byName[tn.Name] = tn
	}
	var buf bytes.Buffer
	w, err := safetensors.NewWriter(&buf, specs, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range w.Order() {
		if tn := byName[ti.Name]; tn.Raw != nil {
			err = w.WriteRaw(tn.Name, tn.Raw)
		} else {
			err = w.WriteFloat32(tn.Name, tn.F32)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadModelErrors(t *testing.T) {
	cfg := tinyConfig(false)
	p := tinyParams(cfg, 1)
	all := func(edit func(name string, shape []int) (string, []int, bool)) []tensor {
		var out []tensor
		for _, tn := range p.Layout.Tensors {
			name, shape, keep := edit(tn.Name, tn.Shape)
			if !keep {
				continue
			}
			n := 1
			for _, d := range shape {
				n *= d
			}
			out = append(out, tensor{Name: name, DType: safetensors.F32, Shape: shape, F32: make([]float32, n)})
		}
		return out
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  []string
	}{
		{"no weights", func(t *testing.T, dir string) {}, []string{"neither model.safetensors nor"}},
		{"missing, unexpected and misshapen", func(t *testing.T, dir string) {
			ts := all(func(n string, s []int) (string, []int, bool) {
				switch n {
				case "model.norm.weight":
					return n, s, false
				case "model.layers.1.mlp.up_proj.weight":
					return n, []int{s[1], s[0]}, true
				case "lm_head.weight":
					return "model.lm_head.weight", s, true
				}
				return n, s, true
			})
			writeTensors(t, filepath.Join(dir, WeightsFile), ts)
		}, []string{
			"missing tensor model.norm.weight",
			"missing tensor lm_head.weight",
			"unexpected tensor model.lm_head.weight [40 16] in model.safetensors",
			"tensor model.layers.1.mlp.up_proj.weight in model.safetensors has shape [16 24], the configuration expects [24 16]",
		}},
		{"integer dtype", func(t *testing.T, dir string) {
			ts := all(func(n string, s []int) (string, []int, bool) { return n, s, true })
			for i := range ts {
				if ts[i].Name == "model.norm.weight" {
					ts[i] = tensor{Name: ts[i].Name, DType: safetensors.I32, Shape: ts[i].Shape, Raw: make([]byte, 64)}
				}
			}
			writeTensors(t, filepath.Join(dir, WeightsFile), ts)
		}, []string{"model.norm.weight in model.safetensors has dtype I32"}},
		{"sharded inconsistencies", func(t *testing.T, dir string) {
			ts := all(func(n string, s []int) (string, []int, bool) { return n, s, true })
			writeTensors(t, filepath.Join(dir, "a.safetensors"), ts[:5])
			writeTensors(t, filepath.Join(dir, "b.safetensors"), append(ts[5:], tensor{Name: "extra", DType: safetensors.F32, Shape: []int{1}, F32: []float32{1}}))
			wm := map[string]string{}
			for i, tn := range ts {
				wm[tn.Name] = map[bool]string{true: "a.safetensors", false: "b.safetensors"}[i < 5]
			}
			wm["model.norm.weight"] = "a.safetensors" // actually in b
			b, _ := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": wm})
			os.WriteFile(filepath.Join(dir, WeightsIndexFile), b, 0o644)
		}, []string{
			"tensor model.norm.weight is listed in model.safetensors.index.json under a.safetensors but that file does not contain it",
			"unexpected tensor extra in b.safetensors",
			"unexpected tensor model.norm.weight in b.safetensors",
			"missing tensor model.norm.weight",
		}},
		{"index escapes directory", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, WeightsIndexFile), []byte(`{"weight_map":{"model.norm.weight":"../x.safetensors"}}`), 0o644)
		}, []string{`maps to "../x.safetensors"`}},
		{"bad index", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, WeightsIndexFile), []byte(`{"weight_map":`), 0o644)
		}, []string{"model.safetensors.index.json: not a valid weights index"}},
		{"corrupt weights", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, WeightsFile), []byte("\x10\x00\x00\x00\x00\x00\x00\x00{}"), 0o644)
		}, []string{"model.safetensors", "past the end"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			b, _ := cfg.MarshalIndent()
			os.WriteFile(filepath.Join(dir, ConfigFile), b, 0o644)
			tt.setup(t, dir)
			_, _, err := LoadModel(dir)
			if err == nil {
				t.Fatal("loaded a broken directory")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestSaveModelRejectsMismatch(t *testing.T) {
	cfg := tinyConfig(false)
	p := tinyParams(tinyConfig(true), 1)
	err := SaveModel(filepath.Join(t.TempDir(), "m"), cfg, p, SaveOptions{})
	if err == nil || !strings.Contains(err.Error(), "configuration implies") {
		t.Errorf("err = %v", err)
	}
	err = SaveModel(filepath.Join(t.TempDir(), "m"), cfg, tinyParams(cfg, 1), SaveOptions{DType: safetensors.I8})
	if err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("err = %v", err)
	}
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		info, _ := e.Info()
		n += info.Size()
	}
	return n
}

func noLeftovers(t *testing.T, parent string) {
	t.Helper()
	ents, _ := os.ReadDir(parent)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s in %s", e.Name(), parent)
		}
	}
}

// TestSaveModelInterrupted replaces a saved model with another while
// failing at many points of the write; the first model must load intact
// after every failure, and the second after a successful save.
func TestSaveModelInterrupted(t *testing.T) {
	cfg := tinyConfig(false)
	a, b := tinyParams(cfg, 1), tinyParams(cfg, 2)
	parent := t.TempDir()
	dir := filepath.Join(parent, "model")
	sharded := SaveOptions{ShardBytes: 8000}
	if err := SaveModel(dir, cfg, a, sharded); err != nil {
		t.Fatal(err)
	}
	total := dirSize(t, dir)
	points := []int64{0, 1, 100, 3000, total / 2, total - 10, total - 1}
	for _, k := range points {
		opt := sharded
		opt.faults = &faults{failAfterBytes: k}
		err := SaveModel(dir, cfg, b, opt)
		if !errors.Is(err, errInjected) {
			t.Fatalf("failure after %d bytes: err = %v", k, err)
		}
		_, got, err := LoadModel(dir)
		if err != nil {
			t.Fatalf("after a failure at byte %d the previous model does not load: %v", k, err)
		}
		sameBits(t, "previous model", got.Data, a.Data)
		noLeftovers(t, parent)
	}
	opt := sharded
	opt.faults = &faults{failAfterBytes: -1, failAt: "publish"}
	if err := SaveModel(dir, cfg, b, opt); !errors.Is(err, errInjected) {
		t.Fatalf("publish failure: %v", err)
	}
	if _, got, err := LoadModel(dir); err != nil || !slices.Equal(got.Data, a.Data) {
		t.Fatalf("publish failure damaged the previous model: %v", err)
	}
	// A successful save replaces the sharded model by a single file (here
	// by the portable two-rename path; the exchange path is taken below).
	if err := SaveModel(dir, cfg, b, SaveOptions{faults: &faults{failAfterBytes: -1, noExchange: true}}); err != nil {
		t.Fatal(err)
	}
	_, got, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "new model", got.Data, b.Data)
	if _, err := os.Stat(filepath.Join(dir, WeightsIndexFile)); !os.IsNotExist(err) {
		t.Errorf("stale index survived the replacement: %v", err)
	}
	noLeftovers(t, parent)
	if err := SaveModel(dir, cfg, a, sharded); err != nil {
		t.Fatal(err)
	}
	if _, got, err = LoadModel(dir); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "model saved over by exchange", got.Data, a.Data)
	noLeftovers(t, parent)
}

// randomState returns a training state and the next values of the
// generator whose state it holds.
func randomState(t *testing.T, l *model.Layout, step int) (*TrainingState, []uint64) {
	pcg := rand.NewPCG(uint64(step), 99)
	for range 17 {
		pcg.Uint64()
	}
	rngState, err := pcg.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	next := []uint64{pcg.Uint64(), pcg.Uint64(), pcg.Uint64()}
	r := rand.New(rand.NewPCG(uint64(step), 7))
	m, v := model.NewParams(l), model.NewParams(l)
	for i := range m.Data {
		m.Data[i] = float32(r.NormFloat64() * 1e-3)
		v.Data[i] = float32(r.ExpFloat64() * 1e-7)
	}
	m.Data[0] = float32(math.Copysign(0, -1))
	v.Data[1] = math.Float32frombits(1) // smallest subnormal
	m.Data[2] = float32(math.NaN())
	st := &TrainingState{
		Step:         step,
		Optimizer:    &OptimizerState{Name: "adamw", Step: step + 3, M: m, V: v},
		RNG:          rngState,
		DataPosition: json.RawMessage(`{"shard":3,"offset":123456789012,"files":["a<b>.parquet"]}`),
		Recipe:       json.RawMessage(`{"lr":0.0003,"name":"tiny & fast"}`),
		Metrics:      Metrics{"loss": 2.718281828459045, "tokens": 1 << 40, "grad_norm": math.Inf(1), "bad": math.NaN(), "neg0": math.Copysign(0, -1), "tiny": 5e-324},
	}
	return st, next
}

func sameState(t *testing.T, got, want *TrainingState) {
	t.Helper()
	if got.Step != want.Step || !bytes.Equal(got.RNG, want.RNG) || !bytes.Equal(got.DataPosition, want.DataPosition) || !bytes.Equal(got.Recipe, want.Recipe) {
		t.Errorf("state differs:\n got %d %x %s %s\nwant %d %x %s %s", got.Step, got.RNG, got.DataPosition, got.Recipe, want.Step, want.RNG, want.DataPosition, want.Recipe)
	}
	if len(got.Metrics) != len(want.Metrics) {
		t.Errorf("metrics %v, want %v", got.Metrics, want.Metrics)
	}
	for k, w := range want.Metrics {
		g, ok := got.Metrics[k]
		if !ok || math.Float64bits(g) != math.Float64bits(w) && !(math.IsNaN(g) && math.IsNaN(w)) {
			t.Errorf("metric %s = %v, want %v", k, g, w)
		}
	}
	if (got.Optimizer == nil) != (want.Optimizer == nil) {
		t.Fatalf("optimizer presence differs")
	}
	if want.Optimizer != nil {
		o, w := got.Optimizer, want.Optimizer
		if o.Name != w.Name || o.Step != w.Step {
			t.Errorf("optimizer %s/%d, want %s/%d", o.Name, o.Step, w.Name, w.Step)
		}
		sameBits(t, "exp_avg", o.M.Data, w.M.Data)
		sameBits(t, "exp_avg_sq", o.V.Data, w.V.Data)
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	cfg := tinyConfig(true)
	p := tinyParams(cfg, 5)
	st, next := randomState(t, p.Layout, 123)
	root := t.TempDir()
	dir, err := Save(root, cfg, p, st, SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(dir) != "step-000123" {
		t.Errorf("dir %s", dir)
	}
	for _, f := range []string{ConfigFile, GenerationConfigFile, WeightsFile, OptimizerFile, TrainerStateFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	gotCfg, gotP, gotSt, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !sameConfig(gotCfg, cfg) {
		t.Errorf("config %+v, want %+v", gotCfg, cfg)
	}
	sameBits(t, "params", gotP.Data, p.Data)
	sameState(t, gotSt, st)
	// The restored generator continues the original sequence.
	var restored rand.PCG
	if err := restored.UnmarshalBinary(gotSt.RNG); err != nil {
		t.Fatal(err)
	}
	for _, want := range next {
		if got := restored.Uint64(); got != want {
			t.Fatalf("restored RNG gives %d, want %d", got, want)
		}
	}
	// Standalone training-state files, without an optimizer.
	bare := &TrainingState{Step: 7}
	sdir := t.TempDir()
	if err := saveTrainingState(sdir, bare); err != nil {
		t.Fatal(err)
	}
	got, err := loadTrainingState(sdir, p.Layout)
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, got, bare)
	if _, err := os.Stat(filepath.Join(sdir, OptimizerFile)); !os.IsNotExist(err) {
		t.Errorf("optimizer file written without optimizer state")
	}
}

func TestTrainingStateErrors(t *testing.T) {
	cfg := tinyConfig(false)
	l := model.NewLayout(cfg)
	st, _ := randomState(t, l, 4)
	dir := t.TempDir()
	if err := saveTrainingState(dir, st); err != nil {
		t.Fatal(err)
	}
	// Moments saved for one layout do not load into another.
	other := model.NewLayout(tinyConfig(true))
	if _, err := loadTrainingState(dir, other); err == nil || !strings.Contains(err.Error(), "unexpected tensor exp_avg.lm_head.weight") {
		t.Errorf("layout mismatch: %v", err)
	}
	bad := map[string]string{
		"not json":       `{"step":`,
		"unknown field":  `{"format":"herd-trainer-state/1","step":1,"stepz":2}`,
		"wrong format":   `{"format":"other","step":1}`,
		"negative step":  `{"format":"herd-trainer-state/1","step":-1}`,
		"escaping file":  `{"format":"herd-trainer-state/1","step":1,"optimizer":{"name":"adamw","step":1,"file":"../x"}}`,
		"bad metric":     `{"format":"herd-trainer-state/1","step":1,"metrics":{"a":"high"}}`,
		"missing moment": `{"format":"herd-trainer-state/1","step":1,"optimizer":{"name":"adamw","step":1,"file":"none.safetensors"}}`,
	}
	for name, doc := range bad {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, TrainerStateFile), []byte(doc), 0o644)
		if _, err := loadTrainingState(d, l); err == nil || !strings.Contains(err.Error(), d) && !strings.Contains(err.Error(), TrainerStateFile) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if err := saveTrainingState(t.TempDir(), &TrainingState{Recipe: json.RawMessage(`{x`)}); err == nil {
		t.Error("invalid recipe JSON accepted")
	}
	if err := saveTrainingState(t.TempDir(), &TrainingState{Optimizer: &OptimizerState{M: model.NewParams(l)}}); err == nil {
		t.Error("optimizer without second moment accepted")
	}
}

func TestLatestAndPrune(t *testing.T) {
	cfg := tinyConfig(true)
	p := tinyParams(cfg, 3)
	root := t.TempDir()
	if _, err := Latest(root); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("empty root: %v", err)
	}
	if _, err := Latest(filepath.Join(root, "absent")); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("missing root: %v", err)
	}
	for _, step := range []int{5, 1000000, 20, 100} {
		st, _ := randomState(t, p.Layout, step)
		if _, err := Save(root, cfg, p, st, SaveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A crash mid-save leaves a temporary directory, possibly with files
	// that look complete; a stray incomplete step directory and a file
	// are not checkpoints either.
	crash := filepath.Join(root, ".step-2000000.tmp-123")
	os.MkdirAll(crash, 0o755)
	os.WriteFile(filepath.Join(crash, ConfigFile), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(crash, TrainerStateFile), []byte("{}"), 0o644)
	os.Mkdir(filepath.Join(root, "step-3000000"), 0o755)
	os.WriteFile(filepath.Join(root, "step-4000000"), nil, 0o644)
	os.Mkdir(filepath.Join(root, "step-12x"), 0o755)
	latest, err := Latest(root)
	if err != nil {
		t.Fatal(err)
	}
	if latest.Step != 1000000 || filepath.Base(latest.Dir) != "step-1000000" {
		t.Errorf("latest = %+v", latest)
	}
	if _, _, st, err := Load(latest.Dir); err != nil || st.Step != 1000000 {
		t.Fatalf("load latest: %v", err)
	}
	if err := Prune(root, 0); err == nil {
		t.Error("Prune(0) accepted")
	}
	if err := Prune(root, 2); err != nil {
		t.Fatal(err)
	}
	list, _ := List(root)
	var steps []int
	for _, e := range list {
		steps = append(steps, e.Step)
	}
	if !slices.Equal(steps, []int{100, 1000000}) {
		t.Errorf("after prune: %v", steps)
	}
	if _, err := os.Stat(crash); !os.IsNotExist(err) {
		t.Error("prune left the crashed temporary directory")
	}
	if _, err := os.Stat(filepath.Join(root, "step-3000000")); err != nil {
		t.Error("prune removed a directory that is not a checkpoint")
	}
	// Save also clears leftovers of a crashed save.
	os.MkdirAll(crash, 0o755)
	st, _ := randomState(t, p.Layout, 101)
	if _, err := Save(root, cfg, p, st, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(crash); !os.IsNotExist(err) {
		t.Error("save left the crashed temporary directory")
	}
}

// TestSaveCheckpointInterrupted overwrites an existing step while failing
// part-way; the old checkpoint stays loadable and temporary files go.
func TestSaveCheckpointInterrupted(t *testing.T) {
	cfg := tinyConfig(false)
	root := t.TempDir()
	a := tinyParams(cfg, 1)
	st, _ := randomState(t, a.Layout, 10)
	if _, err := Save(root, cfg, a, st, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	total := dirSize(t, filepath.Join(root, StepDirName(10)))
	b := tinyParams(cfg, 2)
	for _, k := range []int64{0, 50, total / 3, total - 1} {
		st2, _ := randomState(t, b.Layout, 10)
		if _, err := Save(root, cfg, b, st2, SaveOptions{faults: &faults{failAfterBytes: k}}); !errors.Is(err, errInjected) {
			t.Fatalf("k=%d: %v", k, err)
		}
		latest, err := Latest(root)
		if err != nil {
			t.Fatal(err)
		}
		_, gotP, gotSt, err := Load(latest.Dir)
		if err != nil {
			t.Fatalf("k=%d: previous checkpoint does not load: %v", k, err)
		}
		sameBits(t, "params", gotP.Data, a.Data)
		sameState(t, gotSt, st)
		noLeftovers(t, root)
	}
}

func TestMetricsJSON(t *testing.T) {
	m := Metrics{"b": 1.5, "a": math.Inf(-1), "c": math.NaN()}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"a":"-Infinity","b":1.5,"c":"NaN"}` {
		t.Errorf("json %s", b)
	}
	var back Metrics
	if err := json.Unmarshal(b, &back); err != nil || !math.IsInf(back["a"], -1) || back["b"] != 1.5 || !math.IsNaN(back["c"]) {
		t.Errorf("back %v %v", back, err)
	}
}
