// Package checkpoint saves and loads herd models as Hugging Face model
// directories (config.json, safetensors weights, single or sharded,
// generation_config.json), keeps the training state needed for an exact
// resume beside them, and manages a directory of step checkpoints
// (root/step-000123/) written atomically.
package checkpoint

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/herdml/herd/checkpoint/fp8"
	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/herdml/herd/internal/outdir"
	"github.com/herdml/herd/model"
)

// File names of a Hugging Face model directory.
const (
	ConfigFile           = "config.json"
	GenerationConfigFile = "generation_config.json"
	WeightsFile          = "model.safetensors"
	WeightsIndexFile     = "model.safetensors.index.json"
)

// defaultShardBytes is the shard size above which weights are split into
// several files, 5 GB as in Hugging Face's save_pretrained.
const defaultShardBytes = 5_000_000_000

// SaveOptions controls SaveModel.
type SaveOptions struct {
	// DType of the stored weights: safetensors.F32 (default), BF16 or F16.
	DType safetensors.DType
	// ShardBytes is the largest weights file; above it the weights are
	// split into model-0000i-of-0000N.safetensors files plus an index.
	// Zero means defaultShardBytes. A tensor larger than the limit gets a
	// shard of its own.
	ShardBytes int64
	// Generation is written as generation_config.json; nil writes
	// DefaultGenerationConfig(cfg).
	Generation *GenerationConfig
	// Extra files (e.g. tokenizer.json) written into the directory with
	// the model, by base name. When it holds tokenizer_config.json but no
	// special_tokens_map.json, the map is derived from it; a README.md
	// here replaces the generated model card.
	Extra map[string][]byte
	// FP8, when set, stores the Linear modules it quantizes as E4M3
	// weights with per-row scales in the compressed-tensors layout (see
	// package fp8) and records the scheme in config.json; the other
	// tensors are stored as DType, BF16 by default. Without it any
	// quantization_config of the configuration is dropped: the weights
	// written are not quantized.
	FP8 *fp8.Scheme
	// Card describes how the model was made, for the README.md model card.
	Card *ModelCard

	faults *faults // tests only
}

// GenerationConfig is the Hugging Face generation_config.json.
type GenerationConfig struct {
	BOSTokenID  *int    `json:"bos_token_id,omitempty"`
	EOSTokenID  any     `json:"eos_token_id,omitempty"` // an id or a list of ids
	PadTokenID  *int    `json:"pad_token_id,omitempty"`
	DoSample    bool    `json:"do_sample"`
	Temperature float64 `json:"temperature,omitempty"`
	TopP        float64 `json:"top_p,omitempty"`
	TopK        int     `json:"top_k,omitempty"`
	MaxLength   int     `json:"max_length,omitempty"`
}

// DefaultGenerationConfig carries the configuration's BOS/EOS ids and the
// sampling defaults Meta ships with Llama 3 (temperature 0.6, top-p 0.9).
func DefaultGenerationConfig(cfg model.Config) *GenerationConfig {
	return &GenerationConfig{BOSTokenID: cfg.BOSTokenID, EOSTokenID: cfg.EOSTokenID, DoSample: true, Temperature: 0.6, TopP: 0.9}
}

// torchDtype is the config.json torch_dtype for a stored dtype.
func torchDtype(d safetensors.DType) (string, error) {
	switch d {
	case safetensors.F32:
		return "float32", nil
	case safetensors.BF16:
		return "bfloat16", nil
	case safetensors.F16:
		return "float16", nil
	}
	return "", fmt.Errorf("weights dtype %q is not supported (use F32, BF16 or F16)", d)
}

// checkParams verifies that p is laid out as cfg implies.
func checkParams(cfg model.Config, p *model.Params) error {
	if p == nil || p.Layout == nil {
		return errors.New("parameters are nil")
	}
	want := model.NewLayout(cfg)
	if len(p.Layout.Tensors) != len(want.Tensors) || len(p.Data) != want.Total {
		return fmt.Errorf("parameters have %d tensors / %d values, the configuration implies %d / %d", len(p.Layout.Tensors), len(p.Data), len(want.Tensors), want.Total)
	}
	for i, t := range want.Tensors {
		got := p.Layout.Tensors[i]
		if got.Name != t.Name || !slices.Equal(got.Shape, t.Shape) || got.Offset != t.Offset {
			return fmt.Errorf("parameter %d is %s %v, the configuration implies %s %v", i, got.Name, got.Shape, t.Name, t.Shape)
		}
	}
	return nil
}

// shardName is the Hugging Face name of shard i (0-based) of n.
func shardName(i, n int) string { return fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, n) }

// stored is one tensor of a weights file: its header entry and the
// function that writes its bytes.
type stored struct {
	spec  safetensors.TensorSpec
	bytes int64
	write func(sw *safetensors.Writer) error
}

// storedTensors lists, in layout order, the tensors written for p: every
// parameter as dt, except the weights of modules the FP8 scheme quantizes,
// which become an F8_E4M3 weight and a BF16 weight_scale [out, 1].
func storedTensors(cfg model.Config, p *model.Params, dt safetensors.DType, scheme *fp8.Scheme) ([]stored, error) {
	quant := map[string]bool{}
	if scheme != nil {
		for _, m := range scheme.QuantizedModules(cfg) {
			name := m + fp8.WeightSuffix
			t, ok := p.Layout.Lookup(name)
			if !ok || len(t.Shape) != 2 {
				return nil, fmt.Errorf("FP8 scheme quantizes module %s, which has no weight matrix in this configuration (tied head?)", m)
			}
			quant[name] = true
		}
	}
	var out []stored
	for _, t := range p.Layout.Tensors {
		if !quant[t.Name] {
			out = append(out, stored{
				spec:  safetensors.TensorSpec{Name: t.Name, DType: dt, Shape: t.Shape},
				bytes: int64(t.Size) * int64(dt.Size()),
				write: func(sw *safetensors.Writer) error { return sw.WriteFloat32(t.Name, p.Get(t.Name)) },
			})
			continue
		}
		// Codes and scales are computed when written (one tensor's codes in
		// memory at a time), after a first pass that checks the weights.
		rows, cols := t.Shape[0], t.Shape[1]
		w := p.Get(t.Name)
		if err := fp8.RowScales(make([]float32, rows), w, rows, cols); err != nil {
			return nil, fmt.Errorf("quantize %s: %w", t.Name, err)
		}
		scale := strings.TrimSuffix(t.Name, fp8.WeightSuffix) + fp8.ScaleSuffix
		out = append(out,
			stored{
				spec:  safetensors.TensorSpec{Name: t.Name, DType: safetensors.F8E4M3, Shape: t.Shape},
				bytes: int64(t.Size),
				write: func(sw *safetensors.Writer) error {
					codes := make([]byte, t.Size)
					if err := fp8.QuantizeRows(codes, make([]float32, rows), w, rows, cols); err != nil {
						return fmt.Errorf("quantize %s: %w", t.Name, err)
					}
					return sw.WriteRaw(t.Name, codes)
				},
			},
			stored{
				spec:  safetensors.TensorSpec{Name: scale, DType: safetensors.BF16, Shape: []int{rows, 1}},
				bytes: int64(rows) * 2,
				write: func(sw *safetensors.Writer) error {
					scales := make([]float32, rows)
					if err := fp8.RowScales(scales, w, rows, cols); err != nil {
						return fmt.Errorf("quantize %s: %w", t.Name, err)
					}
					return sw.WriteFloat32(scale, scales)
				},
			})
	}
	return out, nil
}

// planShards splits the tensors, in order, into groups of at most limit
// bytes (a larger tensor gets a group of its own).
func planShards(tensors []stored, limit int64) [][]stored {
	var shards [][]stored
	var cur []stored
	var size int64
	for _, t := range tensors {
		if len(cur) > 0 && size+t.bytes > limit {
			shards = append(shards, cur)
			cur, size = nil, 0
		}
		cur = append(cur, t)
		size += t.bytes
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards = append(shards, cur)
	}
	return shards
}

// writeWeights streams the given tensors as one safetensors file.
func writeWeights(w io.Writer, tensors []stored, meta map[string]string) error {
	specs := make([]safetensors.TensorSpec, len(tensors))
	byName := make(map[string]stored, len(tensors))
	for i, t := range tensors {
		specs[i] = t.spec
		byName[t.spec.Name] = t
	}
	sw, err := safetensors.NewWriter(w, specs, meta)
	if err != nil {
		return err
	}
	for _, t := range sw.Order() {
		if err := byName[t.Name].write(sw); err != nil {
			return err
		}
	}
	return sw.Close()
}

func writeJSON(s sink, name string, v any) error {
	return s.write(name, func(w io.Writer) error {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	})
}

// weightsIndex is model.safetensors.index.json.
type weightsIndex struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// SaveModel writes a Hugging Face model directory at dir atomically: the
// files are written into a temporary sibling directory, synced, and
// renamed into place, replacing any previous content of dir as a whole
// (pass other files such as the tokenizer in opt.Extra). An interrupted or
// failed save leaves the previous directory intact. Only an empty
// directory or a model directory herd wrote (its .herd-output marker says
// "model") is replaced; anything else at dir is an error.
//
// The directory holds config.json, generation_config.json (not for a
// sequence classifier: a reward model generates nothing), and either
// model.safetensors or, when the weights exceed opt.ShardBytes,
// model-0000i-of-0000N.safetensors shards (tensors assigned in layout
// order) with model.safetensors.index.json. Each safetensors file carries
// __metadata__ {"format": "pt"} and stores its tensors by name.
func SaveModel(dir string, cfg model.Config, p *model.Params, opt SaveOptions) error {
	return writeDirAtomic(dir, outdir.Model, opt.faults, func(s sink) error { return writeModel(s, cfg, p, opt) })
}

func writeModel(s sink, cfg model.Config, p *model.Params, opt SaveOptions) error {
	cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid model configuration: %w", err)
	}
	if err := checkParams(cfg, p); err != nil {
		return err
	}
	dt := cmp.Or(opt.DType, safetensors.F32)
	if opt.FP8 != nil {
		dt = cmp.Or(opt.DType, safetensors.BF16)
	}
	td, err := torchDtype(dt)
	if err != nil {
		return err
	}
	cfg.TorchDtype = td
	cfg.Extra = maps.Clone(cfg.Extra)
	delete(cfg.Extra, fp8.QuantizationConfigKey)
	delete(cfg.Extra, fp8.ActivationScaleUBKey)
	if opt.FP8 != nil {
		keys, err := opt.FP8.Extra()
		if err != nil {
			return err
		}
		if cfg.Extra == nil {
			cfg.Extra = map[string]json.RawMessage{}
		}
		maps.Copy(cfg.Extra, keys)
	}
	limit := cmp.Or(opt.ShardBytes, defaultShardBytes)
	if limit < 0 {
		return fmt.Errorf("ShardBytes must not be negative, got %d", limit)
	}
	tensors, err := storedTensors(cfg, p, dt, opt.FP8)
	if err != nil {
		return err
	}
	if err := s.write(ConfigFile, func(w io.Writer) error {
		b, err := cfg.MarshalIndent()
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}); err != nil {
		return err
	}
	// A reward model (sequence classifier) generates nothing.
	if !cfg.HasScoreHead() {
		gen := opt.Generation
		if gen == nil {
			gen = DefaultGenerationConfig(cfg)
		}
		if err := writeJSON(s, GenerationConfigFile, gen); err != nil {
			return err
		}
	}
	meta := map[string]string{"format": "pt"}
	shards := planShards(tensors, limit)
	if len(shards) == 1 {
		if err := s.write(WeightsFile, func(w io.Writer) error {
			return writeWeights(w, shards[0], meta)
		}); err != nil {
			return err
		}
	} else {
		var total int64
		for _, t := range tensors {
			total += t.bytes
		}
		idx := weightsIndex{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
		for i, sh := range shards {
			name := shardName(i, len(shards))
			if err := s.write(name, func(w io.Writer) error {
				return writeWeights(w, sh, meta)
			}); err != nil {
				return err
			}
			for _, t := range sh {
				idx.WeightMap[t.spec.Name] = name
			}
		}
		if err := writeJSON(s, WeightsIndexFile, idx); err != nil {
			return err
		}
	}
	files, err := companionFiles(cfg, dt, opt)
	if err != nil {
		return err
	}
	extra := make([]string, 0, len(files))
	for name := range files {
		extra = append(extra, name)
	}
	slices.Sort(extra)
	for _, name := range extra {
		if !validFileName(name) {
			return fmt.Errorf("extra file name %q must be a plain file name", name)
		}
		data := files[name]
		if err := s.write(name, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
			return err
		}
	}
	return nil
}

// validFileName accepts a plain base name: no separators, not "." or "..".
func validFileName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, `/\`) && filepath.Base(name) == name
}

// ignorable tensors appear in some Hugging Face checkpoints but carry no
// parameters herd needs (rotary inverse frequencies are recomputed).
func ignorable(name string, cfg model.Config) bool {
	return strings.HasSuffix(name, ".rotary_emb.inv_freq") || (cfg.TieWordEmbeddings && name == "lm_head.weight")
}

// LoadModel reads a Hugging Face Llama model directory: config.json and
// either model.safetensors or the shards listed in
// model.safetensors.index.json. Weights of any floating-point dtype are
// converted to float32. With tied embeddings lm_head.weight may be absent
// (and is ignored if present). Missing tensors, unexpected tensors and
// shape mismatches are all reported, each with its tensor and file name.
//
// A directory whose config.json has a compressed-tensors
// quantization_config (FP8, see package fp8) is dequantized: each
// quantized module's F8_E4M3 weight times its per-row weight_scale. The
// configuration keeps the quantization_config, so fp8.Emulate can make
// the model quantize activations as the FP8 engine would, and SaveModel
// with the same scheme writes the same bytes back.
func LoadModel(dir string) (model.Config, *model.Params, error) {
	cfg, err := model.LoadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return model.Config{}, nil, err
	}
	scheme, err := fp8.FromConfig(cfg)
	if err != nil {
		return model.Config{}, nil, fmt.Errorf("%s: %w", filepath.Join(dir, ConfigFile), err)
	}
	p := model.NewParams(model.NewLayout(cfg))
	if err := loadWeights(dir, cfg, p, scheme); err != nil {
		return model.Config{}, nil, err
	}
	return cfg, p, nil
}

// weightFiles maps each weights file of dir to the tensors it should hold
// (nil: all of them, for an unsharded directory).
func weightFiles(dir string) (map[string][]string, error) {
	idxPath := filepath.Join(dir, WeightsIndexFile)
	data, err := os.ReadFile(idxPath)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, WeightsFile)); err != nil {
			return nil, fmt.Errorf("model directory %s has neither %s nor %s: %w", dir, WeightsFile, WeightsIndexFile, err)
		}
		return map[string][]string{WeightsFile: nil}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read weights index: %w", err)
	}
	return parseWeightsIndex(data, idxPath)
}

// parseWeightsIndex decodes model.safetensors.index.json (read from path)
// into the tensors expected in each file.
func parseWeightsIndex(data []byte, path string) (map[string][]string, error) {
	var idx weightsIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%s: not a valid weights index: %w", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: empty or missing \"weight_map\"", path)
	}
	files := map[string][]string{}
	for name, file := range idx.WeightMap {
		if !validFileName(file) {
			return nil, fmt.Errorf("%s: tensor %q maps to %q, which is not a file name in the model directory", path, name, file)
		}
		files[file] = append(files[file], name)
	}
	return files, nil
}

// loadWeights fills p from the weights files of dir, collecting every
// problem before reporting.
func loadWeights(dir string, cfg model.Config, p *model.Params, scheme *fp8.Scheme) error {
	files, err := weightFiles(dir)
	if err != nil {
		return err
	}
	var problems []string
	loaded := make(map[string]string, len(p.Layout.Tensors))
	var q *quantLoad
	if scheme != nil {
		q = &quantLoad{f8: map[string]bool{}, scales: map[string][]float32{}}
	}
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	slices.Sort(names)
	for _, file := range names {
		path := filepath.Join(dir, file)
		sf, err := safetensors.Open(path)
		if err != nil {
			return err
		}
		listed := files[file]
		if listed == nil {
			for _, t := range sf.Tensors {
				listed = append(listed, t.Name)
			}
		} else {
			inIndex := make(map[string]bool, len(listed))
			for _, n := range listed {
				inIndex[n] = true
			}
			for _, t := range sf.Tensors {
				if !inIndex[t.Name] && !ignorable(t.Name, cfg) {
					problems = append(problems, fmt.Sprintf("unexpected tensor %s in %s (not listed in %s)", t.Name, file, WeightsIndexFile))
				}
			}
		}
		slices.Sort(listed)
		for _, name := range listed {
			if msg := loadTensor(sf, file, name, cfg, p, loaded, q); msg != "" {
				problems = append(problems, msg)
			}
		}
		if err := sf.Close(); err != nil {
			return err
		}
	}
	for _, t := range p.Layout.Tensors {
		if _, ok := loaded[t.Name]; !ok {
			problems = append(problems, fmt.Sprintf("missing tensor %s %v", t.Name, t.Shape))
		}
	}
	if q != nil && len(problems) == 0 {
		problems = q.dequantize(cfg, p, scheme)
	}
	return report("model directory "+dir+" does not match its config.json", problems)
}

// quantLoad collects, while a quantized directory loads, which weights
// were stored as F8_E4M3 and the per-row scales found.
type quantLoad struct {
	f8     map[string]bool      // weight name → stored as F8_E4M3 (values are the raw E4M3 ones until dequantize)
	scales map[string][]float32 // weight name → its weight_scale
}

// loadScale reads name (a module's weight_scale) into q; ok is false when
// name is not the scale of a weight of the configuration.
func (q *quantLoad) loadScale(sf *safetensors.File, file, name string, p *model.Params) (msg string, ok bool) {
	base, isScale := strings.CutSuffix(name, fp8.ScaleSuffix)
	if !isScale {
		return "", false
	}
	weight := base + fp8.WeightSuffix
	w, found := p.Layout.Lookup(weight)
	if !found || len(w.Shape) != 2 {
		return "", false
	}
	ti, _ := sf.Lookup(name)
	rows := w.Shape[0]
	switch {
	case q.scales[weight] != nil:
		return fmt.Sprintf("tensor %s appears twice (again in %s)", name, file), true
	case !slices.Equal(ti.Shape, []int{rows, 1}) && !slices.Equal(ti.Shape, []int{rows}):
		return fmt.Sprintf("tensor %s in %s has shape %v; a per-row scale of %s is [%d, 1]", name, file, ti.Shape, weight, rows), true
	case !ti.DType.IsFloat():
		return fmt.Sprintf("tensor %s in %s has dtype %s, expected a floating-point type", name, file, ti.DType), true
	}
	s := make([]float32, rows)
	if err := sf.ReadFloat32(name, s); err != nil {
		return err.Error(), true
	}
	q.scales[weight] = s
	return "", true
}

// dequantize checks that exactly the modules the scheme quantizes were
// stored as F8_E4M3 with a scale, and multiplies their rows by it.
func (q *quantLoad) dequantize(cfg model.Config, p *model.Params, scheme *fp8.Scheme) []string {
	var problems []string
	for _, m := range fp8.LinearModules(cfg) {
		weight := m + fp8.WeightSuffix
		t, ok := p.Layout.Lookup(weight)
		if !ok {
			continue // a tied head
		}
		want, f8, scale := scheme.Quantized(m), q.f8[weight], q.scales[weight]
		switch {
		case want && !f8:
			problems = append(problems, fmt.Sprintf("%s is quantized by quantization_config but stored in a wider dtype (list %s in \"ignore\", or store it as F8_E4M3)", weight, m))
		case want && scale == nil:
			problems = append(problems, fmt.Sprintf("missing tensor %s%s [%d, 1] (the per-row scale of %s)", m, fp8.ScaleSuffix, t.Shape[0], weight))
		case !want && (f8 || scale != nil):
			problems = append(problems, fmt.Sprintf("%s is listed in quantization_config \"ignore\" but stored quantized", m))
		case want:
			w := p.Get(weight)
			rows, cols := t.Shape[0], t.Shape[1]
			for r := range rows {
				s := scale[r]
				if !(s > 0) || math.IsInf(float64(s), 0) {
					problems = append(problems, fmt.Sprintf("%s%s row %d is %v; scales must be positive and finite", m, fp8.ScaleSuffix, r, s))
					break
				}
				for c := range w[r*cols : (r+1)*cols] {
					w[r*cols+c] *= s
				}
			}
		}
	}
	for weight := range q.scales {
		if _, ok := p.Layout.Lookup(weight); ok && !slices.Contains(fp8.LinearModules(cfg), strings.TrimSuffix(weight, fp8.WeightSuffix)) {
			problems = append(problems, fmt.Sprintf("unexpected scale for %s, which is not a Linear module", weight))
		}
	}
	slices.Sort(problems)
	return problems
}

func loadTensor(sf *safetensors.File, file, name string, cfg model.Config, p *model.Params, loaded map[string]string, q *quantLoad) string {
	ti, ok := sf.Lookup(name)
	switch {
	case !ok:
		return fmt.Sprintf("tensor %s is listed in %s under %s but that file does not contain it", name, WeightsIndexFile, file)
	case ignorable(name, cfg):
		return ""
	}
	if q != nil {
		if msg, ok := q.loadScale(sf, file, name, p); ok {
			return msg
		}
	}
	want, ok := p.Layout.Lookup(name)
	switch {
	case !ok:
		return fmt.Sprintf("unexpected tensor %s %v in %s (not part of this configuration)", name, ti.Shape, file)
	case loaded[name] != "":
		return fmt.Sprintf("tensor %s appears in both %s and %s", name, loaded[name], file)
	case !slices.Equal(ti.Shape, want.Shape):
		return fmt.Sprintf("tensor %s in %s has shape %v, the configuration expects %v", name, file, ti.Shape, want.Shape)
	case !ti.DType.IsFloat():
		return fmt.Sprintf("tensor %s in %s has dtype %s, expected a floating-point type", name, file, ti.DType)
	}
	if err := sf.ReadFloat32(name, p.Get(name)); err != nil {
		return err.Error()
	}
	if q != nil && ti.DType == safetensors.F8E4M3 {
		q.f8[name] = true
		if j := slices.IndexFunc(p.Get(name), func(v float32) bool { return v != v }); j >= 0 {
			return fmt.Sprintf("tensor %s in %s holds the E4M3 NaN code at element %d", name, file, j)
		}
	}
	loaded[name] = file
	return ""
}

// report turns collected problems into one error, listing at most 20.
func report(what string, problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	const show = 20
	msg := problems
	if len(msg) > show {
		msg = append(slices.Clone(msg[:show]), fmt.Sprintf("... and %d more", len(problems)-show))
	}
	return fmt.Errorf("%s (%d problems):\n  %s", what, len(problems), strings.Join(msg, "\n  "))
}
