package main

import (
	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/checkpoint/gguf"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
)

// -model may name a GGUF file (llama.cpp / Ollama) instead of a model
// directory: its weights and tokenizer are read by checkpoint/gguf, and
// it has no generation_config.json (sampling defaults are the flags').

// loadModel reads the weights of a model directory or GGUF file and, for
// a GGUF file of F16, BF16 or Q8_0 matrices when rounding is on, the
// rounding of products' inputs that makes herd compute what llama.cpp
// computes from the file (nil otherwise).
func loadModel(path string, rounding bool) (model.Config, *model.Params, model.InputRounder, error) {
	if !gguf.IsGGUF(path) {
		cfg, p, err := checkpoint.LoadModel(path)
		return cfg, p, nil, err
	}
	m, err := gguf.Load(path)
	if err != nil {
		return model.Config{}, nil, nil, err
	}
	if r := m.Rounder(); r != nil && rounding {
		return m.Config, m.Params, r, nil
	}
	return m.Config, m.Params, nil, nil
}

// loadTokenizer reads the tokenizer of a model directory or GGUF file.
func loadTokenizer(path string) (*tokenizer.Tokenizer, error) {
	if !gguf.IsGGUF(path) {
		return tokenizer.Load(path)
	}
	m, err := gguf.LoadTokenizer(path)
	if err != nil {
		return nil, err
	}
	return m.Tokenizer, nil
}
