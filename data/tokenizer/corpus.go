package tokenizer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/herdml/herd/data/reader"
	"github.com/herdml/herd/internal/pqcheck"
)

// Corpus streams text to a function in chunks. A chunk boundary never
// changes pre-tokenization: chunks are cut only where a pre-token must end
// (see cutPoint), so counting the pieces of each chunk equals counting the
// pieces of the whole text. fn must not keep the slice.
type Corpus interface {
	Each(ctx context.Context, fn func(chunk []byte) error) error
}

// chunkSize is the target chunk size when streaming a text; maxChunk the
// size at which a chunk with no safe cut point is cut anyway when counting
// pre-tokens for training (only pathological input: 16 MiB without an
// ASCII letter followed by an ASCII non-letter, and without a line break
// followed by a non-space).
const (
	chunkSize = 1 << 20
	maxChunk  = 16 << 20
)

// isASCIISpace reports whether c is an ASCII byte of \s.
func isASCIISpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

// cutPoint returns the largest p in (0, len(b)) at which a pre-token
// boundary is certain whatever follows b[p], or -1; boundaries after a
// line break win over the others. Two kinds qualify: after a line break
// followed by an ASCII non-space (the whitespace or punctuation piece must
// end at the line break, and nothing can extend a piece across it), and
// after an ASCII letter followed by an ASCII non-letter (space,
// punctuation or digit): no alternative of the pattern matches a letter
// followed by a non-letter, so the piece holding the letter ends there,
// and the pieces from p on depend only on the text from p on.
func cutPoint(b []byte) int {
	fallback := -1
	for p := len(b) - 1; p > 0; p-- {
		c, prev := b[p], b[p-1]
		if c >= 0x80 || prev >= 0x80 {
			continue
		}
		if (prev == '\n' || prev == '\r') && !isASCIISpace(c) {
			return p
		}
		if fallback < 0 && asciiClass[prev] == clsLetter && asciiClass[c] != clsLetter {
			fallback = p
		}
	}
	return fallback
}

// readerCorpus streams one reader.
type readerCorpus struct {
	name string
	open func() (io.ReadCloser, error)
}

// textFile is a Corpus of one text file, streamed.
func textFile(path string) Corpus {
	return readerCorpus{name: path, open: func() (io.ReadCloser, error) { return os.Open(path) }}
}

// ReaderCorpus is a Corpus of one stream (stdin, say); it can be read once.
func ReaderCorpus(name string, r io.Reader) Corpus {
	return readerCorpus{name: name, open: func() (io.ReadCloser, error) { return io.NopCloser(r), nil }}
}

func (c readerCorpus) Each(ctx context.Context, fn func([]byte) error) error {
	r, err := c.open()
	if err != nil {
		return err
	}
	defer r.Close()
	buf := make([]byte, 0, 2*chunkSize)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if cap(buf)-len(buf) < chunkSize {
			nb := make([]byte, len(buf), 2*cap(buf))
			copy(nb, buf)
			buf = nb
		}
		n, rerr := io.ReadFull(r, buf[len(buf):len(buf)+chunkSize])
		buf = buf[:len(buf)+n]
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			if len(buf) > 0 {
				return fn(buf)
			}
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("read %s: %w", c.name, rerr)
		}
		p := cutPoint(buf)
		if p < 0 && len(buf) < maxChunk {
			continue // read more before cutting
		}
		if p < 0 {
			p = len(buf)
		}
		if err := fn(buf[:p]); err != nil {
			return err
		}
		rest := copy(buf, buf[p:])
		buf = buf[:rest]
	}
}

// parquetCorpus streams the string column "text" of Parquet files, one
// document (row) per chunk.
type parquetCorpus struct{ path string }

// parquetFile is a Corpus of the "text" column of a Parquet file (the
// docs-*.parquet shards of the curation stage); each row is a document.
func parquetFile(path string) Corpus { return parquetCorpus{path} }

func (c parquetCorpus) Each(ctx context.Context, fn func([]byte) error) (err error) {
	// The Parquet library panics on some corrupted files; turn that into
	// an error naming the file, but let a panic of fn through.
	inCallback := false
	defer func() {
		if r := recover(); r != nil {
			if inCallback {
				panic(r)
			}
			err = fmt.Errorf("%s: corrupted Parquet file (%v); re-create it", c.path, r)
		}
	}()
	f, err := os.Open(c.path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := pqcheck.Footer(c.path, f, st.Size()); err != nil {
		return err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return fmt.Errorf("%s: not a readable Parquet file: %w", c.path, err)
	}
	leaf, ok := pf.Schema().Lookup("text")
	if !ok {
		return fmt.Errorf("%s: no column \"text\" (columns: %v); tokenizer training reads the string column \"text\"", c.path, pf.Schema().Columns())
	}
	if err := checkTextColumn(leaf); err != nil {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	vals := make([]parquet.Value, 256)
	row := int64(0)
	for g, rg := range pf.RowGroups() {
		pages := rg.ColumnChunks()[leaf.ColumnIndex].Pages()
		err := func() error {
			defer pages.Close()
			for {
				page, err := pages.ReadPage()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return fmt.Errorf("%s: row group %d, near row %d: %w", c.path, g, row, err)
				}
				vr := page.Values()
				for {
					n, err := vr.ReadValues(vals)
					for _, v := range vals[:n] {
						row++
						if v.IsNull() {
							continue
						}
						if v.Kind() != parquet.ByteArray {
							parquet.Release(page)
							return fmt.Errorf("%s: row group %d, row %d: column \"text\" holds a %s value; want a string (BYTE_ARRAY)", c.path, g, row, v.Kind())
						}
						inCallback = true
						err := fn(v.ByteArray())
						inCallback = false
						if err != nil {
							parquet.Release(page)
							return err
						}
					}
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						parquet.Release(page)
						return fmt.Errorf("%s: row group %d, near row %d: %w", c.path, g, row, err)
					}
				}
				parquet.Release(page)
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// checkTextColumn checks that the "text" column holds one string per row:
// a BYTE_ARRAY leaf (any logical annotation, normally STRING) that is not
// repeated. Any other type would be misread as bytes.
func checkTextColumn(leaf parquet.LeafColumn) error {
	if leaf.MaxRepetitionLevel > 0 {
		return errors.New(`column "text" is repeated (a list); want one string (BYTE_ARRAY) per row`)
	}
	typ := leaf.Node.Type()
	if kind := typ.Kind(); kind != parquet.ByteArray {
		desc := kind.String()
		if s := typ.String(); s != desc {
			desc += " (" + s + ")"
		}
		return fmt.Errorf(`column "text" has type %s; want a string (BYTE_ARRAY) column, as in the docs-*.parquet shards of curation`, desc)
	}
	return nil
}

// OpenCorpus maps command-line inputs to corpora: "-" is standard input,
// a directory stands for its docs-*.parquet files (or, if none, its *.txt
// files, or its *.jsonl files), a *.parquet file is read as Parquet, a
// *.jsonl or *.ndjson file (also .gz or .zst) as JSONL whose textField
// ("text" when empty) is the text, anything else as text. Glob patterns
// are expanded.
func OpenCorpus(inputs []string, stdin io.Reader, textField string) ([]Corpus, error) {
	var out []Corpus
	for _, in := range inputs {
		if in == "-" {
			out = append(out, ReaderCorpus("stdin", stdin))
			continue
		}
		paths, err := globInput(in)
		if err != nil {
			return nil, fmt.Errorf("input %w", err)
		}
		for _, p := range paths {
			st, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("input: %w", err)
			}
			if st.IsDir() {
				m, _ := filepath.Glob(filepath.Join(p, "docs-*.parquet"))
				if len(m) == 0 {
					m, _ = filepath.Glob(filepath.Join(p, "*.txt"))
				}
				if len(m) == 0 {
					m, _ = filepath.Glob(filepath.Join(p, "*.jsonl*"))
				}
				if len(m) == 0 {
					return nil, fmt.Errorf("input directory %s has no docs-*.parquet, *.txt or *.jsonl files", p)
				}
				for _, f := range m {
					out = append(out, fileCorpus(f, textField))
				}
				continue
			}
			out = append(out, fileCorpus(p, textField))
		}
	}
	return out, nil
}

// globInput expands a glob pattern (none matching is an error); other
// inputs stand for themselves.
func globInput(in string) ([]string, error) {
	if !strings.ContainsAny(in, "*?[") {
		return []string{in}, nil
	}
	m, err := filepath.Glob(in)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", in, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%q matches no file", in)
	}
	return m, nil
}

func fileCorpus(p, textField string) Corpus {
	switch {
	case strings.HasSuffix(p, ".parquet"):
		return parquetFile(p)
	case isJSONL(p):
		return jsonlFile(p, textField)
	}
	return textFile(p)
}

// jsonlCorpus streams the text field of each line of a JSONL file (plain,
// .gz or .zst), one document per chunk.
type jsonlCorpus struct{ path, field string }

// jsonlFile is a Corpus of the string field named field ("text" when
// empty) of every line of a JSONL file; each line is a document. A line
// that is not a JSON object or lacks the field is an error naming the
// file and line.
func jsonlFile(path, field string) Corpus {
	if field == "" {
		field = "text"
	}
	return jsonlCorpus{path: path, field: field}
}

func (c jsonlCorpus) Each(ctx context.Context, fn func([]byte) error) error {
	cfg := reader.Default()
	cfg.TextField = c.field
	cfg.IDField, cfg.URLField, cfg.DateField = "", "", ""
	cfg.MaxLineBytes = maxChunk * 4
	u := reader.Unit{Kind: reader.JSONL, Files: []string{c.path}}
	return reader.Read(ctx, u, cfg, nil, func(r *reader.Record) error {
		switch r.Problem {
		case "":
			return fn([]byte(r.Doc.Text))
		case "missing_text":
			return fmt.Errorf("%s: %s; pass -text-field with the field that holds the text", r.Doc.Origin, r.Detail)
		}
		return fmt.Errorf("%s: %s: %s", r.Doc.Origin, r.Problem, r.Detail)
	})
}

// isJSONL reports whether a file name is a JSONL file's.
func isJSONL(p string) bool {
	p = strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(p), ".gz"), ".zst")
	return strings.HasSuffix(p, ".jsonl") || strings.HasSuffix(p, ".ndjson")
}

// OpenJSONL maps JSONL inputs (files or glob patterns, whatever their
// names) to corpora of their textField.
func OpenJSONL(inputs []string, textField string) ([]Corpus, error) {
	var out []Corpus
	for _, in := range inputs {
		paths, err := globInput(in)
		if err != nil {
			return nil, fmt.Errorf("-jsonl %w", err)
		}
		for _, p := range paths {
			st, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("-jsonl: %w", err)
			}
			if st.IsDir() {
				return nil, fmt.Errorf("-jsonl %s is a directory: name the files (a glob such as %s works)", p, filepath.Join(p, "*.jsonl"))
			}
			out = append(out, jsonlFile(p, textField))
		}
	}
	return out, nil
}
