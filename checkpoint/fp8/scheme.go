package fp8

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/herdml/herd/model"
)

// config.json keys this package reads and writes.
const (
	// QuantizationConfigKey holds the compressed-tensors description.
	QuantizationConfigKey = "quantization_config"
	// ActivationScaleUBKey records the cap on the per-token activation
	// amax. compressed-tensors has no field for it, so it sits at the top
	// level of config.json, where transformers and vLLM ignore it.
	ActivationScaleUBKey = "activation_scale_ub"
)

// compressed-tensors vocabulary.
const (
	quantMethod    = "compressed-tensors"
	formatFloat    = "float-quantized"
	statusCompress = "compressed"
)

// Suffixes of a quantized module's tensors.
const (
	WeightSuffix = ".weight"
	ScaleSuffix  = ".weight_scale"
)

// ffnProjections are the module names the Llama 3 scheme quantizes.
var ffnProjections = [...]string{"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}

// attnProjections are the attention Linear modules, left in BF16.
var attnProjections = [...]string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"}

// Args is a compressed-tensors QuantizationArgs object.
type Args struct {
	NumBits        int             `json:"num_bits"`
	Type           string          `json:"type"`
	Symmetric      bool            `json:"symmetric"`
	Strategy       string          `json:"strategy"`
	Dynamic        json.RawMessage `json:"dynamic"` // true, false (or "local" in newer versions)
	GroupSize      *int            `json:"group_size"`
	BlockStructure json.RawMessage `json:"block_structure"`
	Actorder       json.RawMessage `json:"actorder"`
	Observer       json.RawMessage `json:"observer,omitempty"`
}

// Group is one entry of config_groups.
type Group struct {
	Targets           []string `json:"targets"`
	Weights           *Args    `json:"weights"`
	InputActivations  *Args    `json:"input_activations"`
	OutputActivations *Args    `json:"output_activations"`
	Format            string   `json:"format,omitempty"`
}

// QuantizationConfig is config.json's quantization_config for the
// compressed-tensors method.
type QuantizationConfig struct {
	QuantMethod        string           `json:"quant_method"`
	Format             string           `json:"format"`
	ConfigGroups       map[string]Group `json:"config_groups"`
	Ignore             []string         `json:"ignore"`
	QuantizationStatus string           `json:"quantization_status,omitempty"`
	KVCacheScheme      json.RawMessage  `json:"kv_cache_scheme"`
}

// Scheme is what herd needs of a checkpoint's quantization: which Linear
// modules hold FP8 weights, and how activations are quantized.
type Scheme struct {
	// Ignore lists the modules left unquantized: exact names, or Python
	// regular expressions after "re:" (compiled as Go RE2).
	Ignore []string
	// DynamicActivations: the inputs of quantized modules are quantized
	// per token at run time (FP8 W8A8); false for weight-only FP8.
	DynamicActivations bool
	// ActivationScaleUB caps the per-token amax (0: no cap).
	ActivationScaleUB float32

	ignoreRE []*regexp.Regexp
}

// Quantized reports whether the Linear module (e.g.
// "model.layers.1.mlp.up_proj") holds FP8 weights under this scheme.
func (s *Scheme) Quantized(module string) bool {
	if slices.Contains(s.Ignore, module) {
		return false
	}
	for _, re := range s.ignoreRE {
		if re.MatchString(module) {
			return false
		}
	}
	return true
}

// QuantizedLayer reports whether the Llama 3 scheme quantizes the
// feed-forward projections of layer l of n: all but the first and last.
func QuantizedLayer(l, n int) bool { return l > 0 && l < n-1 }

// LinearModules lists the Linear modules of a configuration, in layout
// order, as Hugging Face names them (the head is "lm_head", or "score" for
// a sequence classifier; it is a Linear module even when tied).
func LinearModules(cfg model.Config) []string {
	var out []string
	for l := range cfg.NumHiddenLayers {
		for _, p := range attnProjections {
			out = append(out, fmt.Sprintf("model.layers.%d.%s", l, p))
		}
		for _, p := range ffnProjections {
			out = append(out, fmt.Sprintf("model.layers.%d.%s", l, p))
		}
	}
	if cfg.HasScoreHead() {
		return append(out, "score")
	}
	return append(out, "lm_head")
}

// Llama3 is the paper's scheme for a configuration: the FFN projections of
// layers 1…n-2 quantized, everything else ignored, dynamic per-token
// activations capped at ub. It needs at least three layers.
func Llama3(cfg model.Config, ub float32) (*Scheme, error) {
	n := cfg.NumHiddenLayers
	if n < 3 {
		return nil, fmt.Errorf("fp8: the model has %d layers; the Llama 3 scheme leaves the first and last unquantized, so it needs at least 3", n)
	}
	if !(ub > 0) || math.IsInf(float64(ub), 0) {
		return nil, fmt.Errorf("fp8: activation scale upper bound must be positive and finite, got %v", ub)
	}
	s := &Scheme{DynamicActivations: true, ActivationScaleUB: ub}
	for _, m := range LinearModules(cfg) {
		var l int
		_, err := fmt.Sscanf(m, "model.layers.%d.mlp.", &l)
		if err == nil && strings.Contains(m, ".mlp.") && QuantizedLayer(l, n) {
			continue
		}
		s.Ignore = append(s.Ignore, m)
	}
	return s, nil
}

// QuantizedModules lists the Linear modules of cfg that s quantizes.
func (s *Scheme) QuantizedModules(cfg model.Config) []string {
	var out []string
	for _, m := range LinearModules(cfg) {
		if s.Quantized(m) {
			out = append(out, m)
		}
	}
	return out
}

// weightArgs and tokenArgs are the FP8 arguments herd writes and accepts.
func weightArgs() *Args {
	return &Args{NumBits: 8, Type: "float", Symmetric: true, Strategy: "channel", Dynamic: json.RawMessage("false"), BlockStructure: json.RawMessage("null"), Actorder: json.RawMessage("null")}
}

func tokenArgs() *Args {
	return &Args{NumBits: 8, Type: "float", Symmetric: true, Strategy: "token", Dynamic: json.RawMessage("true"), BlockStructure: json.RawMessage("null"), Actorder: json.RawMessage("null")}
}

// Config is the quantization_config describing s, as vLLM's
// compressed-tensors loader reads it (one group targeting "Linear").
func (s *Scheme) Config() QuantizationConfig {
	g := Group{Targets: []string{"Linear"}, Weights: weightArgs()}
	if s.DynamicActivations {
		g.InputActivations = tokenArgs()
	}
	return QuantizationConfig{
		QuantMethod: quantMethod, Format: formatFloat,
		ConfigGroups:       map[string]Group{"group_0": g},
		Ignore:             slices.Clone(s.Ignore),
		QuantizationStatus: statusCompress,
		KVCacheScheme:      json.RawMessage("null"),
	}
}

// Extra returns the config.json keys recording s (quantization_config and
// activation_scale_ub), for model.Config.Extra.
func (s *Scheme) Extra() (map[string]json.RawMessage, error) {
	qc, err := json.Marshal(s.Config())
	if err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{QuantizationConfigKey: qc}
	if s.DynamicActivations && s.ActivationScaleUB > 0 {
		ub, err := json.Marshal(s.ActivationScaleUB)
		if err != nil {
			return nil, err
		}
		out[ActivationScaleUBKey] = ub
	}
	return out, nil
}

// FromConfig reads the scheme recorded in a model configuration's Extra
// keys; nil (and no error) when it has no quantization_config.
func FromConfig(cfg model.Config) (*Scheme, error) {
	raw, ok := cfg.Extra[QuantizationConfigKey]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	s, err := parseQuantizationConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("config.json %s: %w", QuantizationConfigKey, err)
	}
	if ub, ok := cfg.Extra[ActivationScaleUBKey]; ok && s.DynamicActivations {
		var v float64
		if err := json.Unmarshal(ub, &v); err != nil || !(v > 0) || v > math.MaxFloat32 {
			return nil, fmt.Errorf("config.json %s: %s is not a positive number (the per-token activation amax cap, e.g. %d)", ActivationScaleUBKey, ub, DefaultActivationScaleUB)
		}
		s.ActivationScaleUB = float32(v)
	}
	return s, nil
}

// parseQuantizationConfig validates a quantization_config object and
// returns the scheme it describes. herd reads the FP8 layout it writes and
// the FP8-dynamic layout of llm-compressor: compressed-tensors,
// float-quantized, one config group targeting Linear with 8-bit float,
// symmetric, static per-channel weights and, optionally, dynamic
// per-token input activations. Anything else is an error saying what is
// not supported.
func parseQuantizationConfig(raw []byte) (*Scheme, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var qc QuantizationConfig
	if err := dec.Decode(&qc); err != nil {
		return nil, fmt.Errorf("not a valid quantization_config object: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the quantization_config object")
	}
	if qc.QuantMethod != quantMethod {
		return nil, fmt.Errorf("quant_method %q is not supported (herd reads %q)", qc.QuantMethod, quantMethod)
	}
	if len(qc.ConfigGroups) != 1 {
		return nil, fmt.Errorf("config_groups has %d groups; herd reads exactly one (FP8 for every quantized Linear module)", len(qc.ConfigGroups))
	}
	var name string
	for name = range qc.ConfigGroups {
	}
	g := qc.ConfigGroups[name]
	format := cmp.Or(g.Format, qc.Format)
	if format != formatFloat {
		return nil, fmt.Errorf("format %q is not supported (herd reads %q)", format, formatFloat)
	}
	if !slices.Equal(g.Targets, []string{"Linear"}) {
		return nil, fmt.Errorf("config_groups.%s.targets is %q; herd reads [\"Linear\"]", name, g.Targets)
	}
	if err := checkArgs(g.Weights, "channel", false); err != nil {
		return nil, fmt.Errorf("config_groups.%s.weights: %w", name, err)
	}
	if g.OutputActivations != nil {
		return nil, fmt.Errorf("config_groups.%s.output_activations: output quantization is not supported", name)
	}
	s := &Scheme{}
	if g.InputActivations != nil {
		if err := checkArgs(g.InputActivations, "token", true); err != nil {
			return nil, fmt.Errorf("config_groups.%s.input_activations: %w", name, err)
		}
		s.DynamicActivations = true
	}
	if len(qc.KVCacheScheme) > 0 && !bytes.Equal(bytes.TrimSpace(qc.KVCacheScheme), []byte("null")) {
		return nil, errors.New("kv_cache_scheme: a quantized KV cache is not supported")
	}
	for i, m := range qc.Ignore {
		if pat, ok := strings.CutPrefix(m, "re:"); ok {
			re, err := regexp.Compile(pat)
			if err != nil {
				return nil, fmt.Errorf("ignore[%d] %q: %w", i, m, err)
			}
			s.ignoreRE = append(s.ignoreRE, re)
		}
		s.Ignore = append(s.Ignore, m)
	}
	return s, nil
}

// checkArgs accepts 8-bit float symmetric arguments of the given strategy
// and dynamism.
func checkArgs(a *Args, strategy string, dynamic bool) error {
	if a == nil {
		return errors.New("missing")
	}
	var dyn bool // compressed-tensors' default when absent
	if len(a.Dynamic) > 0 && json.Unmarshal(a.Dynamic, &dyn) != nil {
		return fmt.Errorf("dynamic is %s; herd reads true or false", a.Dynamic)
	}
	switch {
	case a.NumBits != 8 || a.Type != "float":
		return fmt.Errorf("%d-bit %q; herd reads 8-bit float (E4M3)", a.NumBits, a.Type)
	case !a.Symmetric:
		return errors.New("asymmetric quantization is not supported")
	case a.Strategy != strategy:
		return fmt.Errorf("strategy %q; herd reads %q", a.Strategy, strategy)
	case dyn != dynamic:
		return fmt.Errorf("dynamic is %v; herd reads %v", dyn, dynamic)
	}
	return nil
}
