// Command generate runs a herd / Hugging Face Llama model directory on token
// ids: it writes the logits of every position (-logits) and/or continues
// the ids with the KV-cache decoder (-max-tokens).
//
//	generate -model DIR -ids 1,2,3 -logits OUT.json
//	generate -model DIR -ids 1,2,3 -max-tokens 32 -temperature 0.8 -top-p 0.95 -seed 1
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}

// logitsFile is the -logits output: {"shape":[T,V],"logits":[[…],…]}.
type logitsFile struct {
	Shape  [2]int      `json:"shape"`
	Logits [][]float32 `json:"logits"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("model", "", "model directory (config.json + model.safetensors)")
	idsFlag := fs.String("ids", "", "comma-separated input token ids")
	logitsOut := fs.String("logits", "", "write the logits of every position to this JSON file")
	maxTokens := fs.Int("max-tokens", 0, "number of tokens to generate after the ids")
	temperature := fs.Float64("temperature", 0, "sampling temperature (0 = greedy)")
	topK := fs.Int("top-k", 0, "keep the K most likely tokens (0 = all)")
	topP := fs.Float64("top-p", 1, "nucleus sampling threshold")
	seed := fs.Uint64("seed", 0, "sampling seed")
	stopFlag := fs.String("stop", "", "comma-separated stop token ids")
	threads := fs.Int("threads", 0, "worker goroutines (0 = all cores)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *idsFlag == "" {
		return errors.New("-model and -ids are required (see -help)")
	}
	if *logitsOut == "" && *maxTokens == 0 {
		return errors.New("nothing to do: give -logits OUT.json and/or -max-tokens N")
	}
	ids, err := parseIDs("-ids", *idsFlag)
	if err != nil {
		return err
	}
	stopIDs, err := parseIDs("-stop", *stopFlag)
	if err != nil {
		return err
	}
	cfg, params, err := checkpoint.LoadModel(*dir)
	if err != nil {
		return err
	}
	be := kernels.NewCPU(*threads)
	defer be.Close()
	m, err := model.NewWithParams(cfg, params, be)
	if err != nil {
		return err
	}
	if *logitsOut != "" {
		if _, err := m.Forward(&model.Batch{B: 1, T: len(ids), Tokens: ids}); err != nil {
			return fmt.Errorf("-ids: %w", err)
		}
		V := cfg.VocabSize
		lg := m.Logits()
		out := logitsFile{Shape: [2]int{len(ids), V}, Logits: make([][]float32, len(ids))}
		for i := range ids {
			out.Logits[i] = lg[i*V : (i+1)*V]
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(*logitsOut, append(b, '\n'), 0o644); err != nil {
			return err
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
