// Package quantize writes a herd / Hugging Face model directory in another
// precision: FP8 the Llama 3 way (package checkpoint/fp8, the
// compressed-tensors layout vLLM loads), or plain BF16/F16/F32 weights;
// and measures what the precision costs, in herd: held-out loss, and the
// distribution of reward-model scores of responses sampled from the BF16
// and the FP8 model (the comparison of the Llama 3 paper, §6.2).
//
// It uses the evaluation pieces of the pretrain (held-out set) and
// posttrain (reward scoring) stages, as scaling uses pretrain's.
package quantize

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/checkpoint/fp8"
	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/outdir"
	"github.com/herdml/herd/model"
)

// Schemes accepted by Options.Scheme.
const (
	SchemeFP8  = "fp8"
	SchemeBF16 = "bf16"
	SchemeF16  = "f16"
	SchemeF32  = "f32"
)

// Options configure Run.
type Options struct {
	// Model is the input model directory (any dtype, or FP8).
	Model string
	// Out is the output directory: new, empty, or a model directory herd
	// wrote (it is replaced as a whole).
	Out string
	// Scheme is fp8, bf16, f16 or f32.
	Scheme string
	// ActivationScaleUB caps the per-token activation amax of the FP8
	// scheme (0: the input's recorded cap, else 1200).
	ActivationScaleUB float32
	// Compare, when it has held-out tokens or a reward model, measures
	// the quantized model against the input in herd; the numbers go into
	// the model card and the returned Report.
	Compare CompareOptions
}

// Report is what Run did and measured.
type Report struct {
	Scheme string `json:"scheme"`
	// Quantized lists the modules stored as FP8.
	Quantized []string       `json:"quantized,omitempty"`
	Compare   *CompareReport `json:"compare,omitempty"`
}

// companions are the tokenizer files copied from the input directory.
var companions = [...]string{tokenizer.TokenizerFile, tokenizer.ConfigFile, checkpoint.SpecialTokensMapFile}

// Run loads o.Model, writes it to o.Out in the chosen scheme, and, when
// asked, compares the two precisions. An FP8 input is dequantized first,
// and re-quantizing it with its own scheme gives back the same bytes.
func Run(ctx context.Context, o Options, log *slog.Logger) (*Report, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Model == "" || o.Out == "" {
		return nil, errors.New("quantize: both the input model and the output directory are required")
	}
	if overlap, err := outdir.Overlaps(o.Out, o.Model); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	} else if overlap {
		return nil, fmt.Errorf("quantize: output %s overlaps the input %s; choose another directory", o.Out, o.Model)
	}
	if err := outdir.CheckReplace(o.Out, outdir.Model); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	cfg, params, err := checkpoint.LoadModel(o.Model)
	if err != nil {
		return nil, err
	}
	opt, err := saveOptions(cfg, o)
	if err != nil {
		return nil, err
	}
	rep := &Report{Scheme: o.Scheme}
	if opt.FP8 != nil {
		rep.Quantized = opt.FP8.QuantizedModules(cfg)
	}
	if o.Compare.enabled() {
		log.Info("comparing precisions", "model", o.Model, "scheme", o.Scheme)
		c, err := compare(ctx, cfg, params, opt, o, log)
		if err != nil {
			return nil, err
		}
		rep.Compare = c
		opt.Card.Eval, opt.Card.EvalNote = c.cardEval(), c.note(o.Compare)
	}
	if err := checkpoint.SaveModel(o.Out, cfg, params, opt); err != nil {
		return nil, err
	}
	log.Info("wrote", "out", o.Out, "scheme", o.Scheme, "fp8_modules", len(rep.Quantized))
	return rep, nil
}

// saveOptions turns the scheme into SaveOptions, with the input's
// tokenizer files, generation config and a model card.
func saveOptions(cfg model.Config, o Options) (checkpoint.SaveOptions, error) {
	var opt checkpoint.SaveOptions
	switch o.Scheme {
	case SchemeFP8:
		prev, err := fp8.FromConfig(cfg)
		if err != nil {
			return opt, err
		}
		ub := o.ActivationScaleUB
		if ub == 0 && prev != nil && prev.ActivationScaleUB > 0 {
			ub = prev.ActivationScaleUB
		}
		if ub == 0 {
			ub = fp8.DefaultActivationScaleUB
		}
		if opt.FP8, err = fp8.Llama3(cfg, ub); err != nil {
			return opt, err
		}
		opt.DType = safetensors.BF16
	case SchemeBF16:
		opt.DType = safetensors.BF16
	case SchemeF16:
		opt.DType = safetensors.F16
	case SchemeF32:
		opt.DType = safetensors.F32
	default:
		return opt, fmt.Errorf("quantize: scheme %q is not one of fp8, bf16, f16, f32", o.Scheme)
	}
	if o.ActivationScaleUB != 0 && o.Scheme != SchemeFP8 {
		return opt, errors.New("quantize: an activation scale bound applies to the fp8 scheme only")
	}
	opt.Extra = map[string][]byte{}
	for _, name := range companions {
		b, err := os.ReadFile(filepath.Join(o.Model, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return opt, fmt.Errorf("quantize: %w", err)
		}
		opt.Extra[name] = b
	}
	if b, err := os.ReadFile(filepath.Join(o.Model, checkpoint.GenerationConfigFile)); err == nil {
		var g checkpoint.GenerationConfig
		if err := json.Unmarshal(b, &g); err != nil {
			return opt, fmt.Errorf("quantize: %s: %w", filepath.Join(o.Model, checkpoint.GenerationConfigFile), err)
		}
		opt.Generation = &g
	} else if !errors.Is(err, os.ErrNotExist) {
		return opt, fmt.Errorf("quantize: %w", err)
	}
	what := map[string]string{
		SchemeFP8:  "FP8 (E4M3) feed-forward weights with per-row scales, the Llama 3 recipe (§6.2: first and last layers, attention, embeddings, norms and head in BF16; activations quantized per token at run time)",
		SchemeBF16: "BF16 weights", SchemeF16: "F16 weights", SchemeF32: "F32 weights",
	}[o.Scheme]
	opt.Card = &checkpoint.ModelCard{
		Summary:   fmt.Sprintf("Converted by `quantize -scheme %s` to %s.", o.Scheme, what),
		BaseModel: filepath.Clean(o.Model),
		Recipe:    "quantize -scheme " + o.Scheme,
	}
	return opt, nil
}

// asSaved returns the configuration and parameters a directory saved with
// opt loads back as (LoadModel): each tensor rounded to opt.DType, and the
// FP8 modules quantized and dequantized; with FP8 the configuration
// records the scheme, so fp8.Emulate quantizes activations too.
func asSaved(cfg model.Config, p *model.Params, opt checkpoint.SaveOptions) (model.Config, *model.Params, error) {
	out := model.NewParams(p.Layout)
	copy(out.Data, p.Data)
	round := func(x []float32) {}
	switch opt.DType {
	case safetensors.BF16:
		round = func(x []float32) {
			for i, v := range x {
				x[i] = safetensors.BF16ToFloat32(safetensors.Float32ToBF16(v))
			}
		}
	case safetensors.F16:
		round = roundF16
	}
	quant := map[string]bool{}
	if opt.FP8 != nil {
		for _, m := range opt.FP8.QuantizedModules(cfg) {
			quant[m+fp8.WeightSuffix] = true
		}
	}
	for i, t := range p.Layout.Tensors {
		x := out.View(i)
		if !quant[t.Name] {
			round(x)
			continue
		}
		rows, cols := t.Shape[0], t.Shape[1]
		q, s := make([]byte, t.Size), make([]float32, rows)
		if err := fp8.QuantizeRows(q, s, p.View(i), rows, cols); err != nil {
			return cfg, nil, fmt.Errorf("quantize %s: %w", t.Name, err)
		}
		if err := fp8.DequantizeRows(x, q, s, rows, cols); err != nil {
			return cfg, nil, err
		}
	}
	if opt.FP8 != nil {
		extra, err := opt.FP8.Extra()
		if err != nil {
			return cfg, nil, err
		}
		cfg.Extra = extra
	} else {
		cfg.Extra = nil
	}
	return cfg, out, nil
}

// schemeName is a short label of saved options, for reports.
func schemeName(opt checkpoint.SaveOptions) string {
	if opt.FP8 != nil {
		return SchemeFP8
	}
	return strings.ToLower(string(opt.DType))
}
