// Command tokenizer trains, applies and converts herd's byte-level BPE
// tokenizer (package data/tokenizer).
//
//	tokenizer train -input PATH[,PATH…] -vocab-size N -out DIR [-min-frequency 2] [-workers N] [-chat-template FILE]
//	tokenizer encode -tokenizer DIR [-special] < text            → JSON array of ids
//	tokenizer encode -tokenizer DIR [-special] -jsonl IN.jsonl   → {"ids":[…]} per {"text": …} line
//	tokenizer chat -tokenizer DIR -jsonl IN.jsonl [-masks]       → {"ids":[…]} per chat request line
//	tokenizer decode -tokenizer DIR < ids.json                   → the bytes
//	tokenizer decode -tokenizer DIR -jsonl IN.jsonl              → {"text": …} per {"ids": […]} line
//	tokenizer convert -tiktoken FILE -out DIR                    → tokenizer.json + tokenizer_config.json
//
// Inputs of train: text files, docs-*.parquet shards (column "text"),
// directories holding them, glob patterns, or "-" for standard input.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/herdml/herd/data/tokenizer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "tokenizer:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "tokenizer:", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `usage:
  tokenizer train -input PATH[,PATH...] -vocab-size N -out DIR [-min-frequency 2] [-workers N] [-chat-template FILE]
  tokenizer encode -tokenizer DIR [-special] [-jsonl IN.jsonl] [-workers N]
  tokenizer chat -tokenizer DIR -jsonl IN.jsonl [-masks] [-workers N]
  tokenizer decode -tokenizer DIR [-jsonl IN.jsonl]
  tokenizer convert -tiktoken FILE -out DIR`

// run executes one subcommand.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{usage}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	fs := flag.NewFlagSet("tokenizer "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("tokenizer", "", "tokenizer directory (tokenizer.json [+ tokenizer_config.json])")
	workers := fs.Int("workers", 0, "parallel workers (0: all cores)")
	jsonl := fs.String("jsonl", "", "JSONL input file (\"-\": standard input)")
	parse := func() error {
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		if fs.NArg() > 0 {
			return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
		}
		return nil
	}
	load := func() (*tokenizer.Tokenizer, error) {
		if *dir == "" {
			return nil, usageError{"-tokenizer DIR is required"}
		}
		return tokenizer.Load(*dir)
	}
	// parseLoad parses the flags and loads -tokenizer.
	parseLoad := func() (*tokenizer.Tokenizer, error) {
		if err := parse(); err != nil {
			return nil, err
		}
		return load()
	}
	// withJSONL runs fn on the -jsonl input.
	withJSONL := func(fn func(io.Reader) error) error {
		if *jsonl == "-" {
			if err := fn(stdin); err != nil {
				return fmt.Errorf("standard input: %w", err)
			}
			return nil
		}
		f, err := os.Open(*jsonl)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := fn(f); err != nil {
			return fmt.Errorf("%s: %w", *jsonl, err)
		}
		return nil
	}
	switch args[0] {
	case "train":
		input := fs.String("input", "", "comma-separated inputs: text files, docs-*.parquet, directories, globs, - for stdin")
		vocab := fs.Int("vocab-size", 0, "total vocabulary size, the 256 special tokens included")
		out := fs.String("out", "", "output directory")
		minFreq := fs.Int64("min-frequency", 2, "stop when the best pair occurs fewer times")
		tmpl := fs.String("chat-template", "", "file with the chat template to store: a tokenizer_config.json or a template text file")
		if err := parse(); err != nil {
			return err
		}
		if *input == "" || *vocab == 0 || *out == "" {
			return usageError{"train needs -input, -vocab-size and -out"}
		}
		corpora, err := tokenizer.OpenCorpus(strings.Split(*input, ","), stdin)
		if err != nil {
			return err
		}
		opts := tokenizer.TrainOptions{VocabSize: *vocab, MinFrequency: *minFreq, Workers: *workers, Logger: log}
		if *tmpl != "" {
			if opts.ChatTemplate, err = readTemplate(*tmpl); err != nil {
				return err
			}
		}
		tok, err := tokenizer.Train(ctx, corpora, opts)
		if err != nil {
			return err
		}
		if err := tok.WriteHF(*out); err != nil {
			return err
		}
		log.Info("wrote tokenizer", "dir", *out, "vocab_size", tok.VocabSize(), "bpe_tokens", tok.NumBPE(), "merges", len(tok.Merges()))
		return nil

	case "encode":
		special := fs.Bool("special", false, "recognise special-token texts such as <|eot_id|>")
		tok, err := parseLoad()
		if err != nil {
			return err
		}
		if *jsonl != "" {
			return withJSONL(func(r io.Reader) error { return tok.EncodeJSONL(ctx, r, stdout, *special, *workers) })
		}
		text, err := io.ReadAll(stdin)
		if err != nil {
			return err
		}
		ids, err := tok.EncodeParallel(ctx, text, *special, *workers)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(ids)
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err

	case "chat":
		masks := fs.Bool("masks", false, "also write the \"target\" (SFT loss) and \"format\" (formatting tokens) masks")
		if err := parse(); err != nil {
			return err
		}
		if *jsonl == "" {
			return usageError{"chat needs -jsonl IN.jsonl (\"-\" for standard input)"}
		}
		tok, err := load()
		if err != nil {
			return err
		}
		return withJSONL(func(r io.Reader) error { return tok.ChatJSONL(ctx, r, stdout, *masks, *workers) })

	case "decode":
		tok, err := parseLoad()
		if err != nil {
			return err
		}
		if *jsonl != "" {
			return withJSONL(func(r io.Reader) error { return tok.DecodeJSONL(ctx, r, stdout, *workers) })
		}
		var ids []int32
		if err := json.NewDecoder(stdin).Decode(&ids); err != nil {
			return fmt.Errorf("decode: standard input must be a JSON array of ids: %w", err)
		}
		text, err := tok.Decode(ids)
		if err != nil {
			return err
		}
		_, err = stdout.Write(text)
		return err

	case "convert":
		tt := fs.String("tiktoken", "", "tiktoken ranks file (Llama 3 tokenizer.model)")
		out := fs.String("out", "", "output directory")
		if err := parse(); err != nil {
			return err
		}
		if *tt == "" || *out == "" {
			return usageError{"convert needs -tiktoken FILE and -out DIR"}
		}
		tok, err := tokenizer.LoadTiktoken(*tt, tokenizer.LlamaSpecials(),
			tokenizer.Config{BOS: tokenizer.BeginOfText, EOS: tokenizer.EOT, AddBOS: true})
		if err != nil {
			return err
		}
		return tok.WriteHF(*out)
	}
	return usageError{fmt.Sprintf("unknown command %q\n%s", args[0], usage)}
}

// readTemplate reads a chat template from a tokenizer_config.json (its
// chat_template field) or a plain template file.
func readTemplate(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if strings.HasSuffix(path, ".json") {
		var c struct {
			ChatTemplate *string `json:"chat_template"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		if c.ChatTemplate == nil {
			return "", fmt.Errorf("%s has no string chat_template", path)
		}
		return *c.ChatTemplate, nil
	}
	return string(data), nil
}
