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

// loadModel reads the weights of a model directory or GGUF file.
func loadModel(path string) (model.Config, *model.Params, error) {
	if !gguf.IsGGUF(path) {
		return checkpoint.LoadModel(path)
	}
	m, err := gguf.Load(path)
	if err != nil {
		return model.Config{}, nil, err
	}
	return m.Config, m.Params, nil
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
