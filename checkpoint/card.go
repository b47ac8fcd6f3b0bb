package checkpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/herdml/herd/checkpoint/fp8"
	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
)

// Companion files of a Hugging Face model directory.
const (
	SpecialTokensMapFile = "special_tokens_map.json"
	ReadmeFile           = "README.md"
)

// ModelCard is what a caller knows about how a model was made, for the
// README.md model card. Every field is optional; the card states only
// what it is given and what the directory itself shows.
type ModelCard struct {
	// Summary is one paragraph: what the model is and how it was made.
	Summary string
	// Recipe names the recipe or command that made the model.
	Recipe string
	// BaseModel is the directory or name of the model it was made from.
	BaseModel string
	// Data lists the training (or calibration) data.
	Data []string
	// Eval holds evaluation results by metric name.
	Eval map[string]float64
	// EvalNote says what Eval measured (data, sizes, settings).
	EvalNote string
}

// companionFiles returns the files written beside the weights: the
// caller's Extra files, special_tokens_map.json derived from
// tokenizer_config.json when the caller gave none, and a README.md model
// card unless the caller gave one.
func companionFiles(cfg model.Config, dt safetensors.DType, opt SaveOptions) (map[string][]byte, error) {
	files := maps.Clone(opt.Extra)
	if files == nil {
		files = map[string][]byte{}
	}
	if tc, ok := files[tokenizer.ConfigFile]; ok {
		if _, have := files[SpecialTokensMapFile]; !have {
			m, err := specialTokensMap(tc)
			if err != nil {
				return nil, err
			}
			if m != nil {
				files[SpecialTokensMapFile] = m
			}
		}
	}
	if _, have := files[ReadmeFile]; !have {
		files[ReadmeFile] = modelCard(cfg, dt, opt)
	}
	return files, nil
}

// specialTokenKeys are the tokenizer_config.json entries transformers
// copies into special_tokens_map.json, in its order.
var specialTokenKeys = [...]string{"bos_token", "eos_token", "unk_token", "pad_token"}

// specialTokensMap builds special_tokens_map.json from
// tokenizer_config.json as transformers writes it: each special token as
// an AddedToken object {content, lstrip, normalized, rstrip, single_word}.
// It returns nil when the configuration names none.
func specialTokensMap(tokenizerConfig []byte) ([]byte, error) {
	var tc map[string]json.RawMessage
	if err := json.Unmarshal(tokenizerConfig, &tc); err != nil {
		return nil, fmt.Errorf("%s: %w", tokenizer.ConfigFile, err)
	}
	type addedToken struct {
		Content    string `json:"content"`
		Lstrip     bool   `json:"lstrip"`
		Normalized bool   `json:"normalized"`
		Rstrip     bool   `json:"rstrip"`
		SingleWord bool   `json:"single_word"`
	}
	var b bytes.Buffer
	b.WriteString("{")
	n := 0
	for _, key := range specialTokenKeys {
		raw, ok := tc[key]
		if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			continue
		}
		var tok addedToken
		if err := json.Unmarshal(raw, &tok.Content); err != nil {
			if err := json.Unmarshal(raw, &tok); err != nil {
				return nil, fmt.Errorf("%s: %s is neither a string nor an AddedToken object", tokenizer.ConfigFile, key)
			}
		}
		var v bytes.Buffer
		enc := json.NewEncoder(&v)
		enc.SetEscapeHTML(false) // "<|begin_of_text|>" as transformers writes it
		enc.SetIndent("  ", "  ")
		if err := enc.Encode(tok); err != nil {
			return nil, err
		}
		if n > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n  %q: %s", key, bytes.TrimSpace(v.Bytes()))
		n++
	}
	if n == 0 {
		return nil, nil
	}
	b.WriteString("\n}\n")
	return b.Bytes(), nil
}

// modelCard renders README.md: YAML front matter for the Hub, then what
// the model is, how it was made (from opt.Card) and how to load it.
func modelCard(cfg model.Config, dt safetensors.DType, opt SaveOptions) []byte {
	var b strings.Builder
	card := opt.Card
	if card == nil {
		card = &ModelCard{}
	}
	b.WriteString("---\nlibrary_name: transformers\ntags:\n- herd\n- llama\n")
	if opt.FP8 != nil {
		b.WriteString("- fp8\n- compressed-tensors\n")
	}
	b.WriteString("---\n\n")
	kind := "causal language model (LlamaForCausalLM)"
	if cfg.HasScoreHead() {
		kind = fmt.Sprintf("reward model (%s, %d label)", model.SequenceClassifier, cfg.NumLabels)
	}
	fmt.Fprintf(&b, "# herd Llama model\n\nA %s written by [herd](https://github.com/herdml/herd).\n\n", kind)
	if card.Summary != "" {
		b.WriteString(strings.TrimSpace(card.Summary) + "\n\n")
	}
	b.WriteString("## Architecture\n\n| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| parameters | %d |\n| layers | %d |\n| hidden size | %d |\n| FFN size | %d |\n| attention heads (KV) | %d (%d) |\n| vocabulary | %d |\n| context | %d |\n| weights dtype | %s |\n",
		model.NewLayout(cfg).Total, cfg.NumHiddenLayers, cfg.HiddenSize, cfg.IntermediateSize,
		cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.VocabSize, cfg.MaxPositionEmbeddings, dt)
	if opt.FP8 != nil {
		ub := ""
		if opt.FP8.DynamicActivations {
			ub = fmt.Sprintf("; activations quantized per token at run time with a dynamic scale (amax capped at %g, config.json `%s`)", opt.FP8.ActivationScaleUB, fp8.ActivationScaleUBKey)
		}
		fmt.Fprintf(&b, "\n## Quantization\n\nFP8 (E4M3) weights with one scale per output row in the compressed-tensors layout (`quantization_config`), for %d Linear modules; the %d modules listed in `ignore` stay %s%s.\n",
			len(opt.FP8.QuantizedModules(cfg)), len(opt.FP8.Ignore), dt, ub)
	}
	if card.Recipe != "" || card.BaseModel != "" || len(card.Data) > 0 {
		b.WriteString("\n## How it was made\n\n")
		if card.BaseModel != "" {
			fmt.Fprintf(&b, "- base model: `%s`\n", card.BaseModel)
		}
		if card.Recipe != "" {
			fmt.Fprintf(&b, "- recipe: `%s`\n", card.Recipe)
		}
		for _, d := range card.Data {
			fmt.Fprintf(&b, "- data: %s\n", d)
		}
	}
	if len(card.Eval) > 0 {
		b.WriteString("\n## Evaluation\n\n")
		if card.EvalNote != "" {
			b.WriteString(strings.TrimSpace(card.EvalNote) + "\n\n")
		}
		b.WriteString("| metric | value |\n|---|---|\n")
		for _, k := range slices.Sorted(maps.Keys(card.Eval)) {
			fmt.Fprintf(&b, "| %s | %.6g |\n", k, card.Eval[k])
		}
	}
	auto := "AutoModelForCausalLM"
	if cfg.HasScoreHead() {
		auto = "AutoModelForSequenceClassification"
	}
	fmt.Fprintf(&b, "\n## Use\n\n```python\nfrom transformers import %[1]s, AutoTokenizer\n\nmodel = %[1]s.from_pretrained(\"path/to/this/dir\")\ntokenizer = AutoTokenizer.from_pretrained(\"path/to/this/dir\")\n```\n", auto)
	if opt.FP8 != nil {
		b.WriteString("\nServe the FP8 weights with vLLM (`vllm serve path/to/this/dir`); transformers needs the `compressed-tensors` package to load them.\n")
	}
	return []byte(b.String())
}
