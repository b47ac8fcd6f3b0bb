package gguf

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/outdir"
	"github.com/herdml/herd/model"
)

// Output formats of Convert.
const (
	FormatGGUF   = "gguf"   // one GGUF file
	FormatOllama = "ollama" // a directory: model.gguf + Modelfile
	FormatHF     = "hf"     // a Hugging Face model directory with the tokenizer files
)

// ollamaKind is the outdir kind of an Ollama directory herd wrote.
const ollamaKind = "ollama"

// Ollama directory file names.
const (
	ollamaModelFile = "model.gguf"
	modelfileName   = "Modelfile"
)

// ConvertOptions says what Convert reads and writes.
type ConvertOptions struct {
	// Model is a Hugging Face model directory (config.json + safetensors)
	// or a .gguf file.
	Model string
	// Tokenizer is the directory holding tokenizer.json for a model
	// directory without one ("" = Model).
	Tokenizer string
	// Format is FormatGGUF, FormatOllama or FormatHF.
	Format string
	// Type of the weight matrices: F32, F16, BF16 or Q8_0 for GGUF (Q8_0
	// is not a Hugging Face dtype).
	Type Type
	// Out is the file (gguf) or directory (ollama, hf) to write.
	Out string
	// Name is general.name ("" = the model's base name).
	Name string
}

// sourceModel is a model read for conversion.
type sourceModel struct {
	Config     model.Config
	Params     *model.Params
	Tokenizer  *tokenizer.Tokenizer
	Generation *checkpoint.GenerationConfig // nil when the source has none
	Name       string
}

// IsGGUF reports whether path names a GGUF file rather than a model
// directory: it ends in .gguf, or is a regular file starting with the
// GGUF magic.
func IsGGUF(path string) bool {
	if strings.EqualFold(filepath.Ext(path), ".gguf") {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	n, _ := f.Read(b[:])
	return n == 4 && string(b[:]) == ggufMagic
}

// readSourceModel reads a model directory (with the tokenizer of tokDir, ""
// meaning the model directory) or a GGUF file.
func readSourceModel(path, tokDir string) (*sourceModel, error) {
	name := strings.TrimSuffix(filepath.Base(filepath.Clean(path)), filepath.Ext(path))
	if IsGGUF(path) {
		m, err := Load(path)
		if err != nil {
			return nil, err
		}
		if tokDir != "" {
			return nil, errors.New("a GGUF file carries its tokenizer; drop -tokenizer")
		}
		return &sourceModel{Config: m.Config, Params: m.Params, Tokenizer: m.Tokenizer, Name: cmpOr(m.Name, name)}, nil
	}
	cfg, p, err := checkpoint.LoadModel(path)
	if err != nil {
		return nil, err
	}
	if tokDir == "" {
		tokDir = path
	}
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		return nil, fmt.Errorf("%w (a GGUF file needs the tokenizer: give -tokenizer DIR when the model directory has none)", err)
	}
	gen, err := readGeneration(path)
	if err != nil {
		return nil, err
	}
	return &sourceModel{Config: cfg, Params: p, Tokenizer: tok, Generation: gen, Name: name}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// readGeneration reads generation_config.json of a model directory, nil
// when it has none.
func readGeneration(dir string) (*checkpoint.GenerationConfig, error) {
	path := filepath.Join(dir, checkpoint.GenerationConfigFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var g checkpoint.GenerationConfig
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &g, nil
}

// Convert reads opt.Model and writes it in opt.Format to opt.Out. The
// output is checked before the model is read: a GGUF file may replace
// only a GGUF file herd wrote, a directory only one herd made of the same
// kind.
func Convert(opt ConvertOptions) error {
	if opt.Model == "" || opt.Out == "" {
		return errors.New("give the model (-model) and the output (-out)")
	}
	var dtype safetensors.DType
	switch opt.Format {
	case FormatGGUF:
		if err := checkOutput(opt.Out); err != nil {
			return err
		}
	case FormatOllama:
		if err := outdir.CheckReplace(opt.Out, ollamaKind); err != nil {
			return err
		}
	case FormatHF:
		switch opt.Type {
		case F32:
			dtype = safetensors.F32
		case F16:
			dtype = safetensors.F16
		case BF16:
			dtype = safetensors.BF16
		default:
			return fmt.Errorf("a Hugging Face directory stores F32, F16 or BF16, not %v", opt.Type)
		}
		if err := outdir.CheckReplace(opt.Out, outdir.Model); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown format %q (use gguf, ollama or hf)", opt.Format)
	}
	src, err := readSourceModel(opt.Model, opt.Tokenizer)
	if err != nil {
		return err
	}
	eo := Options{Type: opt.Type, Name: cmpOr(opt.Name, src.Name)}
	switch opt.Format {
	case FormatGGUF:
		return Export(opt.Out, src.Config, src.Params, src.Tokenizer, eo)
	case FormatOllama:
		return writeOllama(opt.Out, src, eo)
	}
	tj, cj, err := src.Tokenizer.MarshalHF()
	if err != nil {
		return err
	}
	return checkpoint.SaveModel(opt.Out, src.Config, src.Params, checkpoint.SaveOptions{DType: dtype, Generation: src.Generation,
		Extra: map[string][]byte{tokenizer.TokenizerFile: tj, tokenizer.ConfigFile: cj}})
}

// writeOllama writes dir as an Ollama model directory: model.gguf and a
// Modelfile (FROM ./model.gguf, the Llama 3.1 chat template in Ollama's
// template language, stop parameters for the end-of-turn tokens, the
// sampling defaults of generation_config.json). Create it with
// `ollama create NAME -f DIR/Modelfile`.
func writeOllama(dir string, src *sourceModel, opt Options) error {
	if err := outdir.Claim(dir, ollamaKind); err != nil {
		return err
	}
	if err := Export(filepath.Join(dir, ollamaModelFile), src.Config, src.Params, src.Tokenizer, opt); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, modelfileName), []byte(modelfile(src)), 0o644)
}

// ollamaTemplate is the Llama 3.1 chat format (as the official Jinja
// template renders a chat without tools) in Ollama's Go template language.
// Ollama's runner adds <|begin_of_text|> itself (add_bos_token).
const ollamaTemplate = `<|start_header_id|>system<|end_header_id|>

Cutting Knowledge Date: December 2023
Today Date: 26 Jul 2024

{{ if .System }}{{ .System }}{{ end }}<|eot_id|>
{{- range .Messages }}
{{- if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}
{{- end }}<|start_header_id|>assistant<|end_header_id|>

`

// modelfile is the Ollama Modelfile of src.
func modelfile(src *sourceModel) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s, exported by herd. Create the Ollama model with: ollama create %s -f Modelfile\n", src.Name, strings.ToLower(src.Name))
	b.WriteString("FROM ./" + ollamaModelFile + "\n")
	b.WriteString(`TEMPLATE """` + ollamaTemplate + `"""` + "\n")
	for _, name := range []string{tokenizer.EOT, tokenizer.EOM, tokenizer.EndOfText} {
		if _, ok := src.Tokenizer.SpecialID(name); ok {
			fmt.Fprintf(&b, "PARAMETER stop %q\n", name)
		}
	}
	gen := src.Generation
	if gen == nil {
		gen = checkpoint.DefaultGenerationConfig(src.Config)
	}
	temp := 0.0
	if gen.DoSample {
		temp = gen.Temperature
	}
	fmt.Fprintf(&b, "PARAMETER temperature %s\n", strconv.FormatFloat(temp, 'g', -1, 64))
	if gen.DoSample && gen.TopP > 0 {
		fmt.Fprintf(&b, "PARAMETER top_p %s\n", strconv.FormatFloat(gen.TopP, 'g', -1, 64))
	}
	if gen.DoSample && gen.TopK > 0 {
		fmt.Fprintf(&b, "PARAMETER top_k %d\n", gen.TopK)
	}
	fmt.Fprintf(&b, "PARAMETER num_ctx %d\n", src.Config.MaxPositionEmbeddings)
	return b.String()
}
