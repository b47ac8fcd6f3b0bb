// Command export converts a herd / Hugging Face Llama model directory (or
// a GGUF file) for serving engines:
//
//	export -model DIR -format gguf -type f32|f16|bf16|q8_0 -out FILE.gguf   (llama.cpp, LM Studio)
//	export -model DIR -format ollama -type q8_0 -out DIR                    (model.gguf + Modelfile)
//	export -model FILE.gguf -format hf -out DIR                             (back to a Hugging Face directory)
//
// A model directory without tokenizer.json takes it from -tokenizer DIR.
// Outputs are written atomically; an existing -out is replaced only when
// herd wrote it (a GGUF file from herd, a directory with herd's marker of
// the same kind).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/herdml/herd/checkpoint/gguf"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "export:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelPath := fs.String("model", "", "model directory (config.json + safetensors) or .gguf file")
	tokDir := fs.String("tokenizer", "", "directory with tokenizer.json when the model directory has none")
	format := fs.String("format", gguf.FormatGGUF, "output format: gguf, ollama or hf")
	typ := fs.String("type", "f32", "weight type: f32, f16, bf16 or q8_0 (gguf/ollama); f32, f16 or bf16 (hf)")
	out := fs.String("out", "", "output file (gguf) or directory (ollama, hf)")
	name := fs.String("name", "", "general.name of the GGUF (default: the model's base name)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags go before it; see -help)", fs.Arg(0))
	}
	if *modelPath == "" || *out == "" {
		return errors.New("-model and -out are required (see -help)")
	}
	t, err := gguf.ParseType(*typ)
	if err != nil {
		return fmt.Errorf("-type: %w", err)
	}
	if err := gguf.Convert(gguf.ConvertOptions{Model: *modelPath, Tokenizer: *tokDir, Format: *format, Type: t, Out: *out, Name: *name}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%s, %s)\n", *out, *format, t)
	return nil
}
