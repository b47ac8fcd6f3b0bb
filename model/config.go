// Package model is herd's Llama-architecture decoder: configuration with the
// Hugging Face field names, parameters in one contiguous buffer with HF tensor
// names, a hand-written forward and backward pass over a kernels.Backend,
// per-token log-probabilities, and KV-cache generation.
package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
)

// RopeScaling is the Hugging Face `rope_scaling` object. Only rope_type
// "llama3" (Llama 3.1) and "default" are supported.
type RopeScaling struct {
	RopeType                      string  `json:"rope_type"`
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor"`
	HighFreqFactor                float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"`
}

// Config is a Llama model configuration. JSON field names are those of the
// Hugging Face LlamaConfig, so a config.json written here loads in
// transformers, and one written by transformers loads here.
type Config struct {
	Architectures         []string     `json:"architectures,omitempty"`
	ModelType             string       `json:"model_type"`
	VocabSize             int          `json:"vocab_size"`
	HiddenSize            int          `json:"hidden_size"`
	IntermediateSize      int          `json:"intermediate_size"`
	NumHiddenLayers       int          `json:"num_hidden_layers"`
	NumAttentionHeads     int          `json:"num_attention_heads"`
	NumKeyValueHeads      int          `json:"num_key_value_heads"`
	HeadDim               int          `json:"head_dim"`
	RMSNormEps            float64      `json:"rms_norm_eps"`
	RopeTheta             float64      `json:"rope_theta"`
	RopeScaling           *RopeScaling `json:"rope_scaling"`
	MaxPositionEmbeddings int          `json:"max_position_embeddings"`
	TieWordEmbeddings     bool         `json:"tie_word_embeddings"`
	HiddenAct             string       `json:"hidden_act"`
	AttentionBias         bool         `json:"attention_bias"`
	MLPBias               bool         `json:"mlp_bias"`
	BOSTokenID            *int         `json:"bos_token_id,omitempty"`
	EOSTokenID            any          `json:"eos_token_id,omitempty"`
	InitializerRange      float64      `json:"initializer_range,omitempty"`
	TorchDtype            string       `json:"torch_dtype,omitempty"`
	// NumLabels is the number of outputs of a sequence-classification
	// head (a reward model has 1); only with the
	// LlamaForSequenceClassification architecture.
	NumLabels int `json:"num_labels,omitempty"`
	// PadTokenID is the padding token; Hugging Face's sequence classifier
	// reads each row's score at the last token that is not this one.
	PadTokenID *int `json:"pad_token_id,omitempty"`

	// Extra holds config.json keys herd does not interpret (e.g.
	// "use_cache", "pretraining_tp", a top-level
	// "original_max_position_embeddings" that llama.cpp's converter reads),
	// so that loading and saving a directory keeps them.
	Extra map[string]json.RawMessage `json:"-"`
}

// configFields is Config without its JSON methods.
type configFields Config

// UnmarshalJSON decodes a config.json document, keeping unknown keys in Extra.
func (c *Config) UnmarshalJSON(data []byte) error {
	var f configFields
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	known, err := json.Marshal(configFields{})
	if err != nil {
		return err
	}
	var knownKeys map[string]json.RawMessage
	if err := json.Unmarshal(known, &knownKeys); err != nil {
		return err
	}
	for k := range knownKeys {
		delete(all, k)
	}
	for _, k := range []string{"architectures", "bos_token_id", "eos_token_id", "initializer_range", "torch_dtype", "num_labels", "pad_token_id"} {
		delete(all, k) // omitempty fields absent from the zero value's encoding
	}
	f.Extra = nil
	if len(all) > 0 {
		f.Extra = all
	}
	*c = Config(f)
	return nil
}

// MarshalJSON encodes the config with its Extra keys, sorted by name.
func (c Config) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(configFields(c))
	if err != nil || len(c.Extra) == 0 {
		return b, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range c.Extra {
		if _, ok := all[k]; !ok {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

// Normalize fills the fields that Hugging Face derives when they are absent
// (head_dim, num_key_value_heads, model_type, hidden_act, architectures).
func (c *Config) Normalize() {
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 && c.HiddenSize%c.NumAttentionHeads != 0 {
		return // Validate reports it
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.ModelType == "" {
		c.ModelType = "llama"
	}
	if c.HiddenAct == "" {
		c.HiddenAct = "silu"
	}
	if len(c.Architectures) == 0 {
		c.Architectures = []string{"LlamaForCausalLM"}
	}
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-5
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if c.InitializerRange == 0 {
		c.InitializerRange = 0.02
	}
	if c.TorchDtype == "" {
		c.TorchDtype = "float32"
	}
	if c.RopeScaling != nil && c.RopeScaling.RopeType == "" {
		c.RopeScaling.RopeType = "default"
	}
	if c.HasScoreHead() && c.NumLabels == 0 {
		c.NumLabels = labelsFromExtra(c.Extra)
	}
}

// Architectures of the model heads herd implements.
const (
	// CausalLM is a language model: lm_head (or the tied embedding) maps
	// the final hidden states to logits.
	CausalLM = "LlamaForCausalLM"
	// SequenceClassifier replaces lm_head by score.weight [num_labels,
	// hidden_size], read at the last non-padding token of each row: a
	// reward model with num_labels 1.
	SequenceClassifier = "LlamaForSequenceClassification"
)

// HasScoreHead reports whether the configuration describes a sequence
// classifier (a reward model): its head is score.weight, not lm_head.
func (c *Config) HasScoreHead() bool {
	return len(c.Architectures) > 0 && c.Architectures[0] == SequenceClassifier
}

// labelsFromExtra is the number of labels a Hugging Face config gives by
// id2label when num_labels is absent (transformers writes id2label), or 2,
// transformers' default.
func labelsFromExtra(extra map[string]json.RawMessage) int {
	var m map[string]any
	if raw, ok := extra["id2label"]; ok && json.Unmarshal(raw, &m) == nil && len(m) > 0 {
		return len(m)
	}
	return 2
}

// AsSequenceClassifier returns the configuration of a sequence classifier
// (reward model) with labels outputs built on c's trunk, padding with pad.
func (c Config) AsSequenceClassifier(labels, pad int) Config {
	c.Architectures = []string{SequenceClassifier}
	c.NumLabels = labels
	c.PadTokenID = &pad
	c.Extra = maps.Clone(c.Extra)
	delete(c.Extra, "id2label")
	delete(c.Extra, "label2id")
	return c
}

// Validate reports the first problem that makes the configuration unusable,
// phrased so the user knows which field to fix.
func (c *Config) Validate() error {
	var errs []error
	pos := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	pos("vocab_size", c.VocabSize)
	pos("hidden_size", c.HiddenSize)
	pos("intermediate_size", c.IntermediateSize)
	pos("num_hidden_layers", c.NumHiddenLayers)
	pos("num_attention_heads", c.NumAttentionHeads)
	pos("num_key_value_heads", c.NumKeyValueHeads)
	pos("max_position_embeddings", c.MaxPositionEmbeddings)
	switch {
	case len(c.Architectures) > 1:
		errs = append(errs, fmt.Errorf("architectures lists %d classes; give one (%s or %s)", len(c.Architectures), CausalLM, SequenceClassifier))
	case len(c.Architectures) == 1 && c.Architectures[0] != CausalLM && c.Architectures[0] != SequenceClassifier:
		errs = append(errs, fmt.Errorf("architectures %q is not supported (use %s or %s)", c.Architectures[0], CausalLM, SequenceClassifier))
	}
	if c.HasScoreHead() {
		if c.NumLabels < 1 || c.NumLabels > 1<<16 {
			errs = append(errs, fmt.Errorf("num_labels must be in [1, 65536] for %s, got %d", SequenceClassifier, c.NumLabels))
		}
	} else if c.NumLabels != 0 && c.NumLabels != 2 {
		// transformers writes its default (2) into every config; other
		// values only make sense with a classification head.
		errs = append(errs, fmt.Errorf("num_labels %d needs architectures [%s]", c.NumLabels, SequenceClassifier))
	}
	if c.PadTokenID != nil && (*c.PadTokenID < 0 || *c.PadTokenID >= c.VocabSize) && c.VocabSize > 0 {
		errs = append(errs, fmt.Errorf("pad_token_id %d is outside the vocabulary [0, %d)", *c.PadTokenID, c.VocabSize))
	}
	if c.ModelType != "" && c.ModelType != "llama" {
		// Hugging Face picks the model class by model_type; other families
		// (mistral, qwen2, gemma, …) differ in ways herd does not implement.
		errs = append(errs, fmt.Errorf("model_type %q is not supported (only \"llama\", the Hugging Face LlamaForCausalLM family)", c.ModelType))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if c.HeadDim == 0 && c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("num_attention_heads (%d) must divide hidden_size (%d) when head_dim is not set", c.NumAttentionHeads, c.HiddenSize)
	}
	pos("head_dim", c.HeadDim)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	const limit = 1 << 24
	for name, v := range map[string]int{"vocab_size": c.VocabSize, "hidden_size": c.HiddenSize,
		"intermediate_size": c.IntermediateSize, "num_hidden_layers": c.NumHiddenLayers,
		"num_attention_heads": c.NumAttentionHeads, "head_dim": c.HeadDim, "max_position_embeddings": c.MaxPositionEmbeddings} {
		if v > limit {
			errs = append(errs, fmt.Errorf("%s = %d is beyond the supported limit %d", name, v, limit))
		}
	}
	if n := paramCount(c); n > maxParams {
		errs = append(errs, fmt.Errorf("the configuration has %.3g parameters, beyond the supported %d", n, int64(maxParams)))
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		errs = append(errs, fmt.Errorf("num_key_value_heads (%d) must divide num_attention_heads (%d)", c.NumKeyValueHeads, c.NumAttentionHeads))
	}
	if c.HeadDim%2 != 0 {
		errs = append(errs, fmt.Errorf("head_dim must be even for rotary embeddings, got %d", c.HeadDim))
	}
	if !(c.RMSNormEps > 0) || math.IsInf(c.RMSNormEps, 0) {
		errs = append(errs, fmt.Errorf("rms_norm_eps must be a positive number, got %v", c.RMSNormEps))
	}
	if !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0) {
		errs = append(errs, fmt.Errorf("rope_theta must be a positive number, got %v", c.RopeTheta))
	}
	if c.HiddenAct != "" && c.HiddenAct != "silu" {
		errs = append(errs, fmt.Errorf("hidden_act %q is not supported (only \"silu\")", c.HiddenAct))
	}
	if c.AttentionBias || c.MLPBias {
		errs = append(errs, errors.New("attention_bias and mlp_bias must be false (Llama has no biases)"))
	}
	if rs := c.RopeScaling; rs != nil {
		switch rs.RopeType {
		case "", "default":
		case "llama3":
			if !(rs.Factor >= 1) {
				errs = append(errs, fmt.Errorf("rope_scaling.factor must be >= 1, got %v", rs.Factor))
			}
			if !(rs.HighFreqFactor > rs.LowFreqFactor) || !(rs.LowFreqFactor > 0) {
				errs = append(errs, fmt.Errorf("rope_scaling needs 0 < low_freq_factor < high_freq_factor, got %v and %v", rs.LowFreqFactor, rs.HighFreqFactor))
			}
			if rs.OriginalMaxPositionEmbeddings <= 0 {
				errs = append(errs, fmt.Errorf("rope_scaling.original_max_position_embeddings must be positive, got %d", rs.OriginalMaxPositionEmbeddings))
			}
		default:
			errs = append(errs, fmt.Errorf("rope_scaling.rope_type %q is not supported (use \"llama3\" or \"default\")", rs.RopeType))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// maxParams bounds the parameter count a configuration may ask for, so a
// hostile config.json cannot request an absurd allocation (2^36 float32
// values = 256 GiB).
const maxParams = 1 << 36

// paramCount is the number of parameters, computed in float64 so that it
// cannot overflow.
func paramCount(c *Config) float64 {
	C, F, V := float64(c.HiddenSize), float64(c.IntermediateSize), float64(c.VocabSize)
	q, kv := float64(c.NumAttentionHeads*c.HeadDim), float64(c.NumKeyValueHeads*c.HeadDim)
	layer := 2*C + C*q + 2*C*kv + q*C + 3*C*F
	n := V*C + float64(c.NumHiddenLayers)*layer + C
	switch {
	case c.HasScoreHead():
		n += float64(c.NumLabels) * C
	case !c.TieWordEmbeddings:
		n += V * C
	}
	return n
}

// KVDim is the width of the key and value projections.
func (c *Config) KVDim() int { return c.NumKeyValueHeads * c.HeadDim }

// QDim is the width of the query projection.
func (c *Config) QDim() int { return c.NumAttentionHeads * c.HeadDim }

// ParseConfig decodes and validates a config.json document.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	c.Normalize()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config.json: invalid model configuration: %w", err)
	}
	return c, nil
}

// LoadConfig reads and validates a config.json file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read model config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// MarshalIndent renders the config as an indented config.json document.
func (c Config) MarshalIndent() ([]byte, error) {
	c.Normalize()
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
