// Command generate runs a herd / Hugging Face Llama model directory: on
// text with the directory's tokenizer (streamed, the sampling defaults and
// stop ids from generation_config.json, a chat with the Llama 3.1
// template), or on token ids, writing the logits of every position
// (-logits) and/or continuing the ids with the KV-cache decoder
// (-max-tokens).
//
//	generate -model DIR -prompt "package main"
//	generate -model FILE.gguf -prompt "package main"     (a llama.cpp / Ollama GGUF file)
//	generate -model DIR -chat -prompt "Max: 3 9 2" [-system "…"]
//	generate -model DIR -chat                      (one user message per line of stdin)
//	generate -model DIR -jsonl prompts.jsonl [-batch 16]
//	generate -model DIR -ids 1,2,3 -logits OUT.json
//	generate -model DIR -ids 1,2,3 -max-tokens 32 -temperature 0.8 -top-p 0.95 -seed 1
//	generate -model DIR -prompt "package main" -decode-weights bf16
//
// -decode-weights bf16 decodes one sequence (and batches of up to 7) with
// a BF16 copy of the weight matrices, made as each decoding call starts
// (milliseconds for a model of 100 MB): each token reads half
// the bytes, so single-stream decoding, bound by memory bandwidth, is up
// to twice as fast, with logits within BF16's rounding of F32's. Prompt
// prefill, larger batches and -logits keep the F32 weights. The default,
// f32, decodes with the weights as they are. The fast BF16 kernels need a
// GOEXPERIMENT=simd build on an AVX2 or AVX-512 CPU; elsewhere bf16 is
// slower than f32, and generate says so.
//
// -logits - writes the logits to standard output, before the generated ids
// when -max-tokens is given too. A -logits file is replaced atomically, so
// it must be a new or regular file (or a symlink to one); FIFOs, devices
// and directories are refused. Every flag value outside its documented
// range, ids outside the vocabulary, a prompt plus -max-tokens beyond the
// model's max_position_embeddings and weights holding NaN or infinities are
// errors.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/herdml/herd/checkpoint/fp8"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := runIO(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}

// logitsFile is the -logits output: {"shape":[T,V],"logits":[[…],…]}.
type logitsFile struct {
	Shape  [2]int      `json:"shape"`
	Logits [][]float32 `json:"logits"`
}

// maxThreads bounds -workers: more workers than this only costs memory
// and scheduling.
const maxThreads = 1024

// run is runIO with an empty standard input.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runIO(ctx, args, strings.NewReader(""), stdout, stderr)
}

func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("model", "", "model directory (config.json + model.safetensors) or GGUF file")
	idsFlag := fs.String("ids", "", "comma-separated input token ids")
	logitsOut := fs.String("logits", "", "write the logits of every position to this JSON file (- for standard output)")
	maxTokens := fs.Int("max-tokens", 0, "number of tokens to generate after the ids (at most max_position_embeddings minus the number of ids)")
	temperature := fs.Float64("temperature", 0, "sampling temperature, >= 0 (0 = greedy)")
	topK := fs.Int("top-k", 0, "keep the K most likely tokens (0 = all)")
	topP := fs.Float64("top-p", 1, "nucleus sampling threshold in (0, 1] (1 = no limit)")
	seed := fs.Uint64("seed", 0, "sampling seed")
	stopFlag := fs.String("stop", "", "comma-separated stop token ids")
	threads := fs.Int("workers", 0, fmt.Sprintf("compute goroutines, 0 to %d (0 = all cores)", maxThreads))
	fs.Func("threads", "deprecated alias of -workers", func(v string) error {
		fmt.Fprintln(stderr, "note: -threads is deprecated; use -workers")
		return fs.Set("workers", v)
	})
	prompt := fs.String("prompt", "", "text to continue with the model directory's tokenizer (BOS added), streamed to stdout")
	chat := fs.Bool("chat", false, "chat with the Llama 3.1 template: answer -prompt, or each line of stdin keeping the conversation")
	system := fs.String("system", "", "with -chat: the system message")
	jsonlIn := fs.String("jsonl", "", `answer every line of this JSONL file ({"prompt": text} or {"messages": [...]}; - for stdin) in batches, one {"line","response"} line each`)
	batch := fs.Int("batch", 16, "with -jsonl: lines decoded together (1..1024)")
	decodeWeights := fs.String("decode-weights", "f32", "weights of the matrix-vector decoding steps (one token for up to 7 sequences): f32 (as loaded) or bf16 (a copy rounded to BF16: half the bytes per token, logits within BF16 rounding of F32's)")
	ggmlRounding := fs.Bool("ggml-rounding", true, "with a GGUF file of F16, BF16 or Q8_0 matrices: round each product's input as llama.cpp's CPU backend does (to F16/BF16, or to Q8_0 blocks), so herd computes what llama.cpp computes; false multiplies unrounded F32 inputs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	wt, err := kernels.ParseWeightType(*decodeWeights)
	if err != nil {
		return fmt.Errorf("-decode-weights %s: must be f32 or bf16", *decodeWeights)
	}
	if wt == kernels.BF16 && !kernels.BF16Fast() {
		fmt.Fprintln(stderr, "note: -decode-weights bf16 has no SIMD kernel in this build or on this CPU (build with GOEXPERIMENT=simd on an AVX2 or AVX-512 CPU): it decodes slower than f32 here")
	}
	if *prompt != "" || *chat || *jsonlIn != "" {
		if *idsFlag != "" || *logitsOut != "" {
			return errors.New("-prompt/-chat generate text; -ids and -logits work on token ids: use one or the other")
		}
		if *dir == "" {
			return errors.New("-model is required (see -help)")
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected argument %q (flags go before it; see -help)", fs.Arg(0))
		}
		mt := *maxTokens
		if !set["max-tokens"] {
			mt = 256
		}
		if err := checkFlags(mt, *temperature, *topK, *topP, *threads); err != nil {
			return err
		}
		stopIDs, err := parseIDs("-stop", *stopFlag)
		if err != nil {
			return err
		}
		m, closeModel, err := loadChecked(*dir, *threads, *ggmlRounding, wt, nil, stopIDs, 0)
		if err != nil {
			return err
		}
		defer closeModel()
		cfg := m.Config
		if !set["max-tokens"] {
			mt = min(mt, cfg.MaxPositionEmbeddings/2)
		}
		if *jsonlIn != "" {
			if *prompt != "" || *chat {
				return errors.New("-jsonl answers its own lines; drop -prompt and -chat")
			}
			if *batch < 1 || *batch > 1024 {
				return fmt.Errorf("-batch %d: must be in [1, 1024]", *batch)
			}
			in, name := stdin, "stdin"
			if *jsonlIn != "-" {
				f, err := os.Open(*jsonlIn)
				if err != nil {
					return err
				}
				defer f.Close()
				in, name = f, *jsonlIn
			}
			return runJSONL(ctx, *dir, m, textOptions{maxTokens: mt, set: set,
				sample: model.SampleOptions{Temperature: *temperature, TopK: *topK, TopP: *topP, Seed: *seed, StopTokens: stopIDs}}, in, name, *batch, stdout)
		}
		return runText(ctx, *dir, m, textOptions{prompt: *prompt, system: *system, chat: *chat, maxTokens: mt, set: set,
			sample: model.SampleOptions{Temperature: *temperature, TopK: *topK, TopP: *topP, Seed: *seed, StopTokens: stopIDs}}, stdin, stdout)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags go before it; see -help)", fs.Arg(0))
	}
	if *dir == "" || *idsFlag == "" {
		return errors.New("-model and -ids are required (see -help)")
	}
	if err := checkFlags(*maxTokens, *temperature, *topK, *topP, *threads); err != nil {
		return err
	}
	if *logitsOut == "" && *maxTokens == 0 {
		return errors.New("nothing to do: give -logits OUT.json and/or -max-tokens N")
	}
	if *logitsOut != "" && *logitsOut != "-" {
		// Fail before loading the model, not after the forward pass.
		if err := atomicfile.Check(*logitsOut); err != nil {
			return fmt.Errorf("-logits: %w (write -logits - for standard output)", err)
		}
	}
	ids, err := parseIDs("-ids", *idsFlag)
	if err != nil {
		return err
	}
	stopIDs, err := parseIDs("-stop", *stopFlag)
	if err != nil {
		return err
	}
	m, closeModel, err := loadChecked(*dir, *threads, *ggmlRounding, wt, ids, stopIDs, *maxTokens)
	if err != nil {
		return err
	}
	defer closeModel()
	cfg := m.Config
	if *logitsOut != "" {
		if _, err := m.Forward(&model.Batch{B: 1, T: len(ids), Tokens: ids}); err != nil {
			return fmt.Errorf("-ids: %w", err)
		}
		V := cfg.VocabSize
		lg := m.Logits()
		out := logitsFile{Shape: [2]int{len(ids), V}, Logits: make([][]float32, len(ids))}
		for i := range ids {
			out.Logits[i] = lg[i*V : (i+1)*V]
			if j := model.FirstNonFinite(out.Logits[i]); j >= 0 {
				return fmt.Errorf("the logit of token %d at position %d is %v: the model's weights are probably corrupt, check the checkpoint in %s", j, i, out.Logits[i][j], *dir)
			}
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if *logitsOut == "-" {
			if _, err := stdout.Write(b); err != nil {
				return fmt.Errorf("-logits -: %w", err)
			}
		} else if err := atomicfile.WriteFile(*logitsOut, b, 0o644); err != nil {
			return fmt.Errorf("-logits: %w", err)
		}
	}
	if *maxTokens > 0 {
		gens, err := m.Generate(ctx, [][]int32{ids}, model.SampleOptions{
			Temperature: *temperature, TopK: *topK, TopP: *topP, Seed: *seed,
			MaxTokens: *maxTokens, StopTokens: stopIDs,
		})
		if err != nil {
			return err
		}
		b, _ := json.Marshal(map[string]any{"ids": gens[0].Tokens, "stopped": gens[0].Stopped})
		fmt.Fprintln(stdout, string(b))
	}
	return nil
}

// checkFlags reports the first numeric flag outside its range.
func checkFlags(maxTokens int, temperature float64, topK int, topP float64, threads int) error {
	switch {
	case maxTokens < 0:
		return fmt.Errorf("-max-tokens %d: must be >= 0 (the number of tokens to generate)", maxTokens)
	case !(temperature >= 0) || math.IsInf(temperature, 0):
		return fmt.Errorf("-temperature %v: must be a finite number >= 0 (0 = greedy)", temperature)
	case topK < 0:
		return fmt.Errorf("-top-k %d: must be >= 0 (0 = all tokens)", topK)
	case !(topP > 0 && topP <= 1):
		return fmt.Errorf("-top-p %v: must be in (0, 1] (1 = no limit)", topP)
	case threads < 0 || threads > maxThreads:
		return fmt.Errorf("-workers %d: must be 0 (all cores) or a count from 1 to %d", threads, maxThreads)
	}
	return nil
}

// checkIDs checks the token ids against the model: in its vocabulary, and
// the prompt plus maxTokens new tokens within its context.
func checkIDs(cfg model.Config, ids, stop []int32, maxTokens int) error {
	V, ctxLen := cfg.VocabSize, cfg.MaxPositionEmbeddings
	for _, f := range []struct {
		name string
		ids  []int32
	}{{"-ids", ids}, {"-stop", stop}} {
		for i, id := range f.ids {
			if int(id) >= V {
				return fmt.Errorf("%s: item %d (%d) is outside the model's vocabulary [0, %d)", f.name, i+1, id, V)
			}
		}
	}
	if len(ids) > ctxLen {
		return fmt.Errorf("-ids has %d tokens, more than the model's context (max_position_embeddings %d)", len(ids), ctxLen)
	}
	if maxTokens > ctxLen-len(ids) {
		return fmt.Errorf("-max-tokens %d: the %d ids and the new tokens must fit in the model's context (max_position_embeddings %d), so at most %d new tokens fit",
			maxTokens, len(ids), ctxLen, ctxLen-len(ids))
	}
	return nil
}

// loadChecked loads the model directory (or GGUF file, with llama.cpp's
// input rounding when rounding is set), checks its weights and the ids
// against it, and returns the model on a CPU backend of threads workers,
// decoding with weights of type wt, with the function that releases the
// backend.
func loadChecked(dir string, threads int, rounding bool, wt kernels.WeightType, ids, stop []int32, maxTokens int) (*model.Model, func(), error) {
	cfg, params, rounder, err := loadModel(dir, rounding)
	if err != nil {
		return nil, nil, err
	}
	if err := checkWeights(dir, params); err != nil {
		return nil, nil, err
	}
	if err := checkIDs(cfg, ids, stop, maxTokens); err != nil {
		return nil, nil, err
	}
	be := kernels.NewCPU(threads)
	m, err := model.NewWithParams(cfg, params, be)
	if err != nil {
		be.Close()
		return nil, nil, err
	}
	m.InputRounder = rounder
	if err := m.SetDecodeWeights(wt); err != nil {
		be.Close()
		return nil, nil, err
	}
	// An FP8 directory runs as an FP8 engine would: feed-forward inputs
	// quantized per token (the weights are already E4M3 times their scale).
	if _, err := fp8.Emulate(m); err != nil {
		be.Close()
		return nil, nil, err
	}
	return m, be.Close, nil
}

// checkWeights reports the first tensor holding a NaN or an infinity,
// which would make every logit NaN (greedy decoding then emits token 0
// forever).
func checkWeights(dir string, p *model.Params) error {
	for i, t := range p.Layout.Tensors {
		x := p.View(i)
		if j := model.FirstNonFinite(x); j >= 0 {
			return fmt.Errorf("model %s: tensor %s holds %v at element %d (of %d): the checkpoint is corrupt (re-export it, or use an earlier one)", dir, t.Name, x[j], j, t.Size)
		}
	}
	return nil
}

func parseIDs(flagName, s string) ([]int32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var ids []int32
	for i, f := range strings.Split(s, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%s: item %d (%q) is not a non-negative token id", flagName, i+1, f)
		}
		ids = append(ids, int32(v))
	}
	return ids, nil
}
