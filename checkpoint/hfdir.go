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
	"os"
	"path/filepath"
	"slices"
	"strings"

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

// DefaultShardBytes is the shard size above which weights are split into
// several files, 5 GB as in Hugging Face's save_pretrained.
const DefaultShardBytes = 5_000_000_000

// SaveOptions controls SaveModel.
type SaveOptions struct {
	// DType of the stored weights: safetensors.F32 (default), BF16 or F16.
	DType safetensors.DType
	// ShardBytes is the largest weights file; above it the weights are
	// split into model-0000i-of-0000N.safetensors files plus an index.
	// Zero means DefaultShardBytes. A tensor larger than the limit gets a
	// shard of its own.
	ShardBytes int64
	// Generation is written as generation_config.json; nil writes
	// DefaultGenerationConfig(cfg).
	Generation *GenerationConfig
	// Extra files (e.g. tokenizer.json) written into the directory with
	// the model, by base name.
	Extra map[string][]byte

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

// planShards splits the layout, in order, into groups of at most limit
// bytes (a larger tensor gets a group of its own).
func planShards(l *model.Layout, elemSize int, limit int64) [][]model.TensorInfo {
	var shards [][]model.TensorInfo
	var cur []model.TensorInfo
	var size int64
	for _, t := range l.Tensors {
		b := int64(t.Size) * int64(elemSize)
		if len(cur) > 0 && size+b > limit {
			shards = append(shards, cur)
			cur, size = nil, 0
		}
		cur = append(cur, t)
		size += b
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards = append(shards, cur)
	}
	return shards
}

// writeWeights streams the given tensors of p as one safetensors file.
func writeWeights(w io.Writer, p *model.Params, tensors []model.TensorInfo, dt safetensors.DType, meta map[string]string, prefix string) error {
	specs := make([]safetensors.TensorSpec, len(tensors))
	for i, t := range tensors {
		specs[i] = safetensors.TensorSpec{Name: prefix + t.Name, DType: dt, Shape: t.Shape}
	}
	sw, err := safetensors.NewWriter(w, specs, meta)
	if err != nil {
		return err
	}
	for _, t := range sw.Order() {
		if err := sw.WriteFloat32(t.Name, p.Get(strings.TrimPrefix(t.Name, prefix))); err != nil {
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
	td, err := torchDtype(dt)
	if err != nil {
		return err
	}
	cfg.TorchDtype = td
	limit := cmp.Or(opt.ShardBytes, DefaultShardBytes)
	if limit < 0 {
		return fmt.Errorf("ShardBytes must not be negative, got %d", limit)
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
	shards := planShards(p.Layout, dt.Size(), limit)
	if len(shards) == 1 {
		if err := s.write(WeightsFile, func(w io.Writer) error {
			return writeWeights(w, p, shards[0], dt, meta, "")
		}); err != nil {
			return err
		}
	} else {
		idx := weightsIndex{Metadata: map[string]any{"total_size": int64(p.Layout.Total) * int64(dt.Size())}, WeightMap: map[string]string{}}
		for i, sh := range shards {
			name := shardName(i, len(shards))
			if err := s.write(name, func(w io.Writer) error {
				return writeWeights(w, p, sh, dt, meta, "")
			}); err != nil {
				return err
			}
			for _, t := range sh {
				idx.WeightMap[t.Name] = name
			}
		}
		if err := writeJSON(s, WeightsIndexFile, idx); err != nil {
			return err
		}
	}
	extra := make([]string, 0, len(opt.Extra))
	for name := range opt.Extra {
		extra = append(extra, name)
	}
	slices.Sort(extra)
	for _, name := range extra {
		if !validFileName(name) {
			return fmt.Errorf("extra file name %q must be a plain file name", name)
		}
		data := opt.Extra[name]
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
func LoadModel(dir string) (model.Config, *model.Params, error) {
	cfg, err := model.LoadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return model.Config{}, nil, err
	}
	p := model.NewParams(model.NewLayout(cfg))
	if err := loadWeights(dir, cfg, p); err != nil {
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
func loadWeights(dir string, cfg model.Config, p *model.Params) error {
	files, err := weightFiles(dir)
	if err != nil {
		return err
	}
	var problems []string
	loaded := make(map[string]string, len(p.Layout.Tensors))
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
			if msg := loadTensor(sf, file, name, cfg, p, loaded); msg != "" {
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
	return report("model directory "+dir+" does not match its config.json", problems)
}

func loadTensor(sf *safetensors.File, file, name string, cfg model.Config, p *model.Params, loaded map[string]string) string {
	ti, ok := sf.Lookup(name)
	switch {
	case !ok:
		return fmt.Sprintf("tensor %s is listed in %s under %s but that file does not contain it", name, WeightsIndexFile, file)
	case ignorable(name, cfg):
		return ""
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
