package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/model"
)

// tinyModel saves a small random Llama (vocabulary 50, context 16) in a new
// directory; edit may change its weights first.
func tinyModel(t *testing.T, edit func(*model.Params)) string {
	t.Helper()
	cfg := model.Config{VocabSize: 50, HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 1,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, MaxPositionEmbeddings: 16}
	cfg.Normalize()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 1)
	if edit != nil {
		edit(p)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := checkpoint.SaveModel(dir, cfg, p, checkpoint.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRejectsBadValues: every flag value outside its range, and a model
// that is not a usable Llama, is an error naming the flag (or the field,
// or the tensor) and what is allowed — never a silent no-op, a wrong
// message or token 0 forever.
func TestRejectsBadValues(t *testing.T) {
	good := tinyModel(t, nil)
	nan := tinyModel(t, func(p *model.Params) { p.Get("model.layers.0.mlp.up_proj.weight")[7] = float32(math.NaN()) })
	inf := tinyModel(t, func(p *model.Params) { p.Get("model.norm.weight")[3] = float32(math.Inf(-1)) })
	mistral := tinyModel(t, nil)
	var cfg map[string]any
	readJSON(t, filepath.Join(mistral, "config.json"), &cfg)
	cfg["model_type"] = "mistral"
	b, _ := json.Marshal(cfg)
	os.WriteFile(filepath.Join(mistral, "config.json"), b, 0o644)
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		args []string // after -model DIR -ids 1,2,3 (-model and -ids may be given again)
		want []string // substrings of the error
	}{
		{"max-tokens negative", []string{"-max-tokens", "-5"}, []string{"-max-tokens -5", ">= 0"}},
		{"max-tokens MaxInt64", []string{"-max-tokens", "9223372036854775807"}, []string{"-max-tokens 9223372036854775807", "at most 13", "max_position_embeddings 16"}},
		{"max-tokens past context", []string{"-max-tokens", "14"}, []string{"-max-tokens 14", "at most 13"}},
		{"top-p NaN", []string{"-max-tokens", "2", "-temperature", "1", "-top-p", "NaN"}, []string{"-top-p NaN", "(0, 1]"}},
		{"top-p zero", []string{"-max-tokens", "2", "-temperature", "1", "-top-p", "0"}, []string{"-top-p 0", "(0, 1]"}},
		{"top-p above 1", []string{"-max-tokens", "2", "-top-p", "1.5"}, []string{"-top-p 1.5"}},
		{"temperature NaN", []string{"-max-tokens", "2", "-temperature", "NaN"}, []string{"-temperature NaN", ">= 0"}},
		{"temperature negative", []string{"-max-tokens", "2", "-temperature", "-0.7"}, []string{"-temperature -0.7"}},
		{"temperature Inf", []string{"-max-tokens", "2", "-temperature", "+Inf"}, []string{"-temperature +Inf"}},
		{"top-k negative", []string{"-max-tokens", "2", "-top-k", "-3"}, []string{"-top-k -3", ">= 0"}},
		{"workers negative", []string{"-max-tokens", "2", "-workers", "-4"}, []string{"-workers -4", "0 (all cores)"}},
		{"workers absurd", []string{"-max-tokens", "2", "-workers", "100000000"}, []string{"-workers 100000000"}},
		{"threads alias", []string{"-max-tokens", "2", "-threads", "-4"}, []string{"-workers -4"}},
		{"ids outside vocabulary", []string{"-max-tokens", "2", "-ids", "1,50"}, []string{"-ids", "50", "vocabulary"}},
		{"ids longer than context", []string{"-logits", "-", "-ids", strings.Repeat("1,", 16) + "1"}, []string{"-ids", "17 tokens", "max_position_embeddings 16"}},
		{"stop outside vocabulary", []string{"-max-tokens", "2", "-stop", "7,500"}, []string{"-stop", "500", "vocabulary"}},
		{"NaN weights", []string{"-model", nan, "-max-tokens", "2"}, []string{"model.layers.0.mlp.up_proj.weight", "NaN", "corrupt"}},
		{"Inf weights, logits", []string{"-model", inf, "-logits", "-"}, []string{"model.norm.weight", "Inf"}},
		{"mistral", []string{"-model", mistral, "-max-tokens", "2"}, []string{`model_type "mistral"`}},
		{"logits into a FIFO", []string{"-logits", fifo}, []string{"-logits", fifo, "named pipe", "-logits -"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"-model", good, "-ids", "1,2,3"}, tc.args...)
			err := run(context.Background(), args, &stdout, &stderr)
			if err == nil {
				t.Fatalf("no error; stdout %.200q", stdout.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("the FIFO given to -logits was replaced: %v %v", fi.Mode(), err)
	}
}

// TestEdgeValuesAccepted: the limits themselves are fine.
func TestEdgeValuesAccepted(t *testing.T) {
	dir := tinyModel(t, nil)
	for _, args := range [][]string{
		{"-max-tokens", "13"}, // fills the context exactly
		{"-max-tokens", "1", "-temperature", "0.5", "-top-p", "1", "-top-k", "0", "-workers", "1"},
		{"-max-tokens", "3", "-temperature", "1e-3", "-top-p", "1e-9", "-stop", "0,49"},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), append([]string{"-model", dir, "-ids", "1,2,3"}, args...), &stdout, &stderr); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// TestLogitsToStdout: -logits - writes the logits to standard output (and
// no file named "-"), followed by the generation when -max-tokens asks.
func TestLogitsToStdout(t *testing.T) {
	dir := tinyModel(t, nil)
	t.Chdir(t.TempDir())
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-model", dir, "-ids", "1,2,3", "-logits", "-", "-max-tokens", "2"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat("-"); err == nil {
		t.Error(`-logits - created a file named "-"`)
	}
	dec := json.NewDecoder(&stdout)
	var lg logitsFile
	if err := dec.Decode(&lg); err != nil || lg.Shape != [2]int{3, 50} || len(lg.Logits) != 3 {
		t.Fatalf("logits on stdout: shape %v, %v", lg.Shape, err)
	}
	var gen struct{ IDs []int32 }
	if err := dec.Decode(&gen); err != nil || len(gen.IDs) != 2 {
		t.Fatalf("generation after the logits: %v %v", gen, err)
	}
}
