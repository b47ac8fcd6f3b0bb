// Command tokenizer trains, applies and converts herd's byte-level BPE
// tokenizer (package data/tokenizer).
//
//	tokenizer train -input PATH[,PATH…] -vocab-size N -out DIR [-min-frequency 2] [-workers N] [-chat-template FILE]
//	tokenizer train -jsonl IN.jsonl[,…] [-text-field text] -vocab-size N -out DIR
//	tokenizer encode -tokenizer DIR [-special] [-add-bos=false] < text          → JSON array of ids
//	tokenizer encode -tokenizer DIR [-special] [-add-bos=false] -jsonl IN.jsonl → {"ids":[…]} per {"text": …} line
//	tokenizer chat -tokenizer DIR -jsonl IN.jsonl [-masks]       → {"ids":[…]} per chat request line
//	tokenizer decode -tokenizer DIR < ids.json                   → the bytes
//	tokenizer decode -tokenizer DIR -jsonl IN.jsonl              → {"text": …} per {"ids": […]} line
//	tokenizer convert -tiktoken FILE -out DIR                    → tokenizer.json + tokenizer_config.json
//
// encode starts the ids with <|begin_of_text|> when the tokenizer's
// tokenizer.json post-processor adds it, as Hugging Face's
// tokenizer(text) / encode(text) do by default (add_special_tokens=True);
// -add-bos=false gives the bare ids (add_special_tokens=False).
//
// Inputs of train: text files, docs-*.parquet shards (column "text"),
// JSONL files (.jsonl, .ndjson, also .gz and .zst: the -text-field of each
// line; -jsonl takes JSONL files of any name), directories holding them,
// glob patterns, or "-" for standard input.
//
// Ranges, checked before any input is read: -vocab-size 513 to 1048576
// (the 256 bytes and 256 special tokens take 512 ids), -min-frequency at
// least 1, -workers 0 (all cores) to 1024, -max-line and -max-segment 1 to
// 1073741824 bytes (default 32 MiB). Plain encode input is read and
// encoded in bounded pieces cut where the encoding cannot change, so its
// memory does not grow with the input; -jsonl lines longer than -max-line
// are errors naming the line.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
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
  tokenizer train -jsonl IN.jsonl[,...] [-text-field text] -vocab-size N -out DIR [...]
  tokenizer encode -tokenizer DIR [-special] [-add-bos=false] [-workers N] [-max-segment BYTES] < text
  tokenizer encode -tokenizer DIR [-special] [-add-bos=false] -jsonl IN.jsonl [-workers N] [-max-line BYTES]
  tokenizer chat -tokenizer DIR -jsonl IN.jsonl [-masks] [-workers N] [-max-line BYTES]
  tokenizer decode -tokenizer DIR [-jsonl IN.jsonl [-workers N] [-max-line BYTES]]
  tokenizer convert -tiktoken FILE -out DIR`

// run executes one subcommand. Each subcommand defines only the flags it
// uses, and checks their ranges before reading any input.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{usage}
	}
	c := &command{fs: flag.NewFlagSet("tokenizer "+args[0], flag.ContinueOnError), args: args[1:],
		stdin: stdin, stdout: stdout, log: slog.New(slog.NewTextHandler(stderr, nil))}
	c.fs.SetOutput(stderr)
	switch args[0] {
	case "train":
		return c.train(ctx)
	case "encode":
		return c.encode(ctx)
	case "chat":
		return c.chat(ctx)
	case "decode":
		return c.decode(ctx)
	case "convert":
		return c.convert()
	}
	return usageError{fmt.Sprintf("unknown command %q\n%s", args[0], usage)}
}

// command holds one subcommand's flags and streams.
type command struct {
	fs     *flag.FlagSet
	args   []string
	stdin  io.Reader
	stdout io.Writer
	log    *slog.Logger
}

// parse parses the flags; positional arguments are errors.
func (c *command) parse() error {
	if err := c.fs.Parse(c.args); err != nil {
		return usageError{err.Error()}
	}
	if c.fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", c.fs.Args())}
	}
	return nil
}

// isSet reports whether the named flag was given.
func (c *command) isSet(name string) bool {
	set := false
	c.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// inRange returns a usage error naming the flag, its value and the allowed
// range when v is outside [lo, hi].
func inRange(flagName string, v, lo, hi int64, want string) error {
	if v < lo || v > hi {
		return usageError{fmt.Sprintf("-%s %d is out of range: want %s", flagName, v, want)}
	}
	return nil
}

// workersFlag defines -workers; check validates it.
func (c *command) workersFlag() *int {
	return c.fs.Int("workers", 0, fmt.Sprintf("parallel workers, 0 to %d (0: all cores)", tokenizer.MaxWorkers))
}

func checkWorkers(w int) error {
	return inRange("workers", int64(w), 0, tokenizer.MaxWorkers, fmt.Sprintf("0 (all cores) to %d", tokenizer.MaxWorkers))
}

// maxLineFlag defines -max-line.
func (c *command) maxLineFlag() *int {
	return c.fs.Int("max-line", tokenizer.DefaultMaxLine, fmt.Sprintf("longest -jsonl input line in bytes, 1 to %d", tokenizer.MaxLimit))
}

func checkLimit(flagName string, v int) error {
	return inRange(flagName, int64(v), 1, tokenizer.MaxLimit, fmt.Sprintf("1 to %d bytes", tokenizer.MaxLimit))
}

// tokenizerFlag defines -tokenizer; load loads it.
func (c *command) tokenizerFlag() *string {
	return c.fs.String("tokenizer", "", "tokenizer directory (tokenizer.json [+ tokenizer_config.json])")
}

func load(dir string) (*tokenizer.Tokenizer, error) {
	if dir == "" {
		return nil, usageError{"-tokenizer DIR is required"}
	}
	return tokenizer.Load(dir)
}

// withJSONL runs fn on the -jsonl input path ("-": standard input); errors
// name the input, and a line over the limit says which flag raises it.
func (c *command) withJSONL(path string, fn func(io.Reader) error) error {
	name := path
	r := c.stdin
	if path == "-" {
		name = "standard input"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if err := fn(r); err != nil {
		if errors.Is(err, tokenizer.ErrTooLong) {
			return fmt.Errorf("%s: %w; raise -max-line (bytes) to accept longer lines", name, err)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (c *command) train(ctx context.Context) error {
	input := c.fs.String("input", "", "comma-separated inputs: text files, docs-*.parquet, *.jsonl (the -text-field of each line), directories, globs, - for stdin")
	jsonl := c.fs.String("jsonl", "", "comma-separated JSONL inputs (also .gz, .zst, globs): the -text-field of each line is a document, whatever the file names")
	textField := c.fs.String("text-field", "text", "the field holding the text in JSONL inputs")
	vocab := c.fs.Int("vocab-size", 0, fmt.Sprintf("total vocabulary size, the 256 special tokens included, %d to %d", tokenizer.MinVocabSize, tokenizer.MaxVocabSize))
	out := c.fs.String("out", "", "output directory")
	minFreq := c.fs.Int64("min-frequency", 2, "stop when the best pair occurs fewer times (at least 1)")
	workers := c.workersFlag()
	tmpl := c.fs.String("chat-template", "", "file with the chat template to store: a tokenizer_config.json or a template text file")
	if err := c.parse(); err != nil {
		return err
	}
	if *input == "" && *jsonl == "" || *vocab == 0 || *out == "" {
		return usageError{"train needs -input (or -jsonl), -vocab-size and -out"}
	}
	if *textField == "" {
		return usageError{"-text-field must name a field"}
	}
	for _, err := range []error{
		inRange("vocab-size", int64(*vocab), tokenizer.MinVocabSize, tokenizer.MaxVocabSize,
			fmt.Sprintf("%d to %d (the 256 bytes and %d special tokens take %d ids, so a vocabulary needs more for at least one merge; Llama 3 has 128256)",
				tokenizer.MinVocabSize, tokenizer.MaxVocabSize, tokenizer.NumSpecial, 256+tokenizer.NumSpecial)),
		inRange("min-frequency", *minFreq, 1, math.MaxInt64, "at least 1"),
		checkWorkers(*workers),
	} {
		if err != nil {
			return err
		}
	}
	var corpora []tokenizer.Corpus
	if *input != "" {
		cs, err := tokenizer.OpenCorpus(strings.Split(*input, ","), c.stdin, *textField)
		if err != nil {
			return err
		}
		corpora = append(corpora, cs...)
	}
	if *jsonl != "" {
		cs, err := tokenizer.OpenJSONL(strings.Split(*jsonl, ","), *textField)
		if err != nil {
			return err
		}
		corpora = append(corpora, cs...)
	}
	opts := tokenizer.TrainOptions{VocabSize: *vocab, MinFrequency: *minFreq, Workers: *workers, Logger: c.log}
	if *tmpl != "" {
		var err error
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
	c.log.Info("wrote tokenizer", "dir", *out, "vocab_size", tok.VocabSize(), "bpe_tokens", tok.NumBPE(), "merges", len(tok.Merges()))
	return nil
}

// encode writes the ids of standard input as one JSON array, reading and
// encoding it in bounded pieces (see tokenizer.EncodeStream), or with
// -jsonl one {"ids": […]} line per {"text": …} line. On an error the
// output written so far is incomplete.
func (c *command) encode(ctx context.Context) error {
	dir := c.tokenizerFlag()
	special := c.fs.Bool("special", false, "recognise special-token texts such as <|eot_id|>")
	addBOS := c.fs.Bool("add-bos", true, "start with the BOS tokenizer.json's post-processor adds, as Hugging Face's add_special_tokens=True (false: the bare ids)")
	jsonl := c.fs.String("jsonl", "", "JSONL input file (\"-\": standard input)")
	workers := c.workersFlag()
	maxLine := c.maxLineFlag()
	maxSeg := c.fs.Int("max-segment", tokenizer.DefaultMaxSegment, fmt.Sprintf(
		"without -jsonl: the most bytes held before a place to cut the text safely is found, 1 to %d (only a single huge pre-token or text without ASCII spaces, punctuation and line breaks needs more)", tokenizer.MaxLimit))
	if err := c.parse(); err != nil {
		return err
	}
	for _, err := range []error{checkWorkers(*workers), checkLimit("max-line", *maxLine), checkLimit("max-segment", *maxSeg)} {
		if err != nil {
			return err
		}
	}
	switch {
	case *jsonl != "" && c.isSet("max-segment"):
		return usageError{"-max-segment applies to standard input without -jsonl; use -max-line with -jsonl"}
	case *jsonl == "" && c.isSet("max-line"):
		return usageError{"-max-line applies to -jsonl input; use -max-segment for plain text"}
	}
	tok, err := load(*dir)
	if err != nil {
		return err
	}
	if *jsonl != "" {
		return c.withJSONL(*jsonl, func(r io.Reader) error {
			return tok.EncodeJSONL(ctx, r, c.stdout, tokenizer.EncodeOptions{AllowSpecial: *special, AddBOS: *addBOS}, tokenizer.LineOptions{Workers: *workers, MaxLine: *maxLine})
		})
	}
	bw := bufio.NewWriterSize(c.stdout, 1<<16)
	bw.WriteByte('[')
	var buf []byte
	first := true
	err = tok.EncodeStream(ctx, c.stdin, tokenizer.StreamOptions{AllowSpecial: *special, AddBOS: *addBOS, Workers: *workers, MaxSegment: *maxSeg}, func(ids []int32) error {
		buf = buf[:0]
		for _, id := range ids {
			if !first {
				buf = append(buf, ',')
			}
			first = false
			buf = strconv.AppendInt(buf, int64(id), 10)
		}
		_, err := bw.Write(buf)
		return err
	})
	if err != nil {
		bw.Flush()
		if errors.Is(err, tokenizer.ErrTooLong) {
			return fmt.Errorf("standard input: %w; raise -max-segment (bytes) to encode it", err)
		}
		return fmt.Errorf("standard input: %w", err)
	}
	bw.WriteString("]\n")
	return bw.Flush()
}

func (c *command) chat(ctx context.Context) error {
	dir := c.tokenizerFlag()
	jsonl := c.fs.String("jsonl", "", "JSONL input file of chat requests (\"-\": standard input)")
	masks := c.fs.Bool("masks", false, "also write the \"target\" (SFT loss) and \"format\" (formatting tokens) masks")
	workers := c.workersFlag()
	maxLine := c.maxLineFlag()
	if err := c.parse(); err != nil {
		return err
	}
	if *jsonl == "" {
		return usageError{"chat needs -jsonl IN.jsonl (\"-\" for standard input)"}
	}
	for _, err := range []error{checkWorkers(*workers), checkLimit("max-line", *maxLine)} {
		if err != nil {
			return err
		}
	}
	tok, err := load(*dir)
	if err != nil {
		return err
	}
	return c.withJSONL(*jsonl, func(r io.Reader) error {
		return tok.ChatJSONL(ctx, r, c.stdout, *masks, tokenizer.LineOptions{Workers: *workers, MaxLine: *maxLine})
	})
}

func (c *command) decode(ctx context.Context) error {
	dir := c.tokenizerFlag()
	jsonl := c.fs.String("jsonl", "", "JSONL input file of {\"ids\": […]} lines (\"-\": standard input)")
	workers := c.workersFlag()
	maxLine := c.maxLineFlag()
	if err := c.parse(); err != nil {
		return err
	}
	for _, err := range []error{checkWorkers(*workers), checkLimit("max-line", *maxLine)} {
		if err != nil {
			return err
		}
	}
	tok, err := load(*dir)
	if err != nil {
		return err
	}
	if *jsonl != "" {
		return c.withJSONL(*jsonl, func(r io.Reader) error {
			return tok.DecodeJSONL(ctx, r, c.stdout, tokenizer.LineOptions{Workers: *workers, MaxLine: *maxLine})
		})
	}
	var ids []int32
	if err := json.NewDecoder(c.stdin).Decode(&ids); err != nil {
		return fmt.Errorf("decode: standard input must be a JSON array of ids: %w", err)
	}
	text, err := tok.Decode(ids)
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(text)
	return err
}

func (c *command) convert() error {
	tt := c.fs.String("tiktoken", "", "tiktoken ranks file (Llama 3 tokenizer.model)")
	out := c.fs.String("out", "", "output directory")
	if err := c.parse(); err != nil {
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
