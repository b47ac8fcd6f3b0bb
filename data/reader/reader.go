// Package reader turns input files into a deterministic stream of
// documents: JSONL (plain, .gz, .zst) with configurable field names, Parquet,
// directories of text files (one document per file, or split at blank
// lines or at a separator) and HTML (files, or an html field of
// JSONL/Parquet records) reduced to its main text.
//
// Inputs are planned into units: one JSONL or Parquet file, or a group of
// consecutive small files. Units are numbered in sorted path order and
// documents within a unit in reading order, so every document gets a stable
// ordinal. A malformed record is not dropped silently: it is delivered as a
// Record with Problem set and its file:line in Origin.
package reader

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"

	"github.com/herdml/herd/data/document"
)

// Config says where documents come from and how records map to fields.
type Config struct {
	Paths        []string `yaml:"paths"`          // files, directories (walked recursively) or globs; $VARS are expanded
	Format       string   `yaml:"format"`         // auto (by extension), jsonl, parquet, text or html (default auto)
	Extensions   []string `yaml:"extensions"`     // for directories: file name suffixes to read (empty: all)
	Exclude      []string `yaml:"exclude"`        // glob patterns on the path relative to the given root (matched on every path element)
	TextField    string   `yaml:"text_field"`     // JSON/Parquet field holding the document text (default "text")
	HTMLField    string   `yaml:"html_field"`     // if set, records carry HTML in this field
	IDField      string   `yaml:"id_field"`       // field holding the document id (default "id")
	URLField     string   `yaml:"url_field"`      // field holding the source URL (default "url")
	DateField    string   `yaml:"date_field"`     // field holding the crawl or publication date (default "date")
	Source       string   `yaml:"source"`         // label for the source column (default: the file's base name)
	FilesPerUnit int      `yaml:"files_per_unit"` // text/HTML files grouped per unit (default 256)
	MaxLineBytes int      `yaml:"max_line_bytes"` // longest JSONL line, or document of a split text file (default 64 MiB); longer ones are malformed records
	// TextSplit says how a text file becomes documents: "file" (the
	// default, also when empty: the whole file is one document), "blank_lines" (each run of lines
	// between blank lines is one: paragraphs, or the chapters of a book
	// laid out that way), or "separator" (the pieces between occurrences of
	// TextSeparator are; line breaks around a piece are dropped, blank
	// pieces skipped). Split text files are streamed; each document's
	// origin is file:line.
	//
	// Both are left out of a printed recipe while unset, so the recipes
	// (and the hashes that name runs) made before they existed stay valid.
	TextSplit string `yaml:"text_split,omitempty"`
	// TextSeparator is the exact byte string between documents when
	// TextSplit is "separator", e.g. "\n%\n" for fortune files (a line
	// holding only %) or "<|endoftext|>".
	TextSeparator string `yaml:"text_separator,omitempty"`
	// Bounds on HTML pages, checked before the extractor sees them:
	// pathological pages (thousands of unclosed tables, 100,000 nested
	// divs) make extractors take minutes or gigabytes. A page beyond a
	// bound is a malformed record with its own reason (html_too_large,
	// html_too_deep, html_too_many_elements, html_timeout).
	HTMLMaxBytes    int     `yaml:"html_max_bytes"`       // largest page (default 8 MiB)
	HTMLMaxDepth    int     `yaml:"html_max_depth"`       // deepest element nesting (default 256)
	HTMLMaxElements int     `yaml:"html_max_elements"`    // most elements (default 100000)
	HTMLTimeout     float64 `yaml:"html_timeout_seconds"` // longest extraction of one page (default 30)
}

// Default returns the default input settings.
func Default() Config {
	return Config{Format: "auto", TextField: "text", IDField: "id", URLField: "url", DateField: "date",
		FilesPerUnit: 256, MaxLineBytes: 64 << 20,
		HTMLMaxBytes: 8 << 20, HTMLMaxDepth: 256, HTMLMaxElements: 100000, HTMLTimeout: 30}
}

// Kind is how a unit's files are read.
type Kind string

// Input kinds.
const (
	JSONL   Kind = "jsonl"
	Parquet Kind = "parquet"
	Text    Kind = "text"
	HTML    Kind = "html"
)

// Unit is a group of input files read as one stream.
type Unit struct {
	Index int
	Kind  Kind
	Files []string
	Bytes int64
}

// Record is one input document, or a malformed record (Problem != "").
type Record struct {
	Doc     document.Doc
	Problem string // "malformed_json", "missing_text", "html_extract", … ; Doc.Text holds the raw bytes (capped)
	Detail  string
	Bytes   int64 // input bytes of the record
	// InvalidUTF8 counts the invalid UTF-8 sequences of the text (or HTML)
	// field as stored in the input: raw bytes that are not UTF-8, and in
	// JSON also \u escapes of unpaired surrogates. Decoding JSON has already
	// replaced each with U+FFFD in Doc.Text; other formats deliver the bytes
	// as they are. The pipeline repairs or drops such documents by recipe.
	InvalidUTF8 int
}

func kindOf(path, format string) (Kind, error) {
	switch format {
	case "", "auto":
	case "jsonl":
		return JSONL, nil
	case "parquet":
		return Parquet, nil
	case "text":
		return Text, nil
	case "html":
		return HTML, nil
	default:
		return "", fmt.Errorf("input.format %q: want auto, jsonl, parquet, text or html", format)
	}
	p := strings.ToLower(path)
	p = strings.TrimSuffix(strings.TrimSuffix(p, ".gz"), ".zst")
	switch {
	case strings.HasSuffix(p, ".jsonl"), strings.HasSuffix(p, ".ndjson"), strings.HasSuffix(p, ".json"):
		return JSONL, nil
	case strings.HasSuffix(p, ".parquet"):
		return Parquet, nil
	case strings.HasSuffix(p, ".html"), strings.HasSuffix(p, ".htm"):
		return HTML, nil
	}
	return Text, nil
}

// ExpandPaths turns input paths into a sorted list of files without
// duplicates: a glob pattern stands for its matches (none is an error), a
// file for itself, and a directory for the entries of its tree that include
// accepts (include may return filepath.SkipDir for a directory).
func ExpandPaths(paths []string, include func(root, path string, d fs.DirEntry) (bool, error)) ([]string, error) {
	var files []string
	for _, p := range paths {
		matches := []string{p}
		if strings.ContainsAny(p, "*?[") {
			m, err := filepath.Glob(p)
			if err != nil {
				return nil, fmt.Errorf("input path %q: %w", p, err)
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("input path %q matches no file", p)
			}
			matches = m
		}
		for _, m := range matches {
			st, err := os.Stat(m)
			if err != nil {
				return nil, fmt.Errorf("input path: %w", err)
			}
			if !st.IsDir() {
				files = append(files, m)
				continue
			}
			err = filepath.WalkDir(m, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				ok, err := include(m, path, d)
				if ok {
					files = append(files, path)
				}
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("walk %s: %w", m, err)
			}
		}
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}

// Plan expands the configured paths into numbered units.
func Plan(cfg Config) ([]Unit, error) {
	if len(cfg.Paths) == 0 {
		return nil, fmt.Errorf("input.paths is empty: give files or directories, e.g. input.paths=[corpus/]")
	}
	if err := checkSplit(cfg); err != nil {
		return nil, err
	}
	paths := make([]string, len(cfg.Paths))
	for i, p := range cfg.Paths {
		paths[i] = os.ExpandEnv(p)
	}
	files, err := ExpandPaths(paths, func(root, path string, d fs.DirEntry) (bool, error) {
		rel, _ := filepath.Rel(root, path)
		if excluded(rel, cfg.Exclude) {
			if d.IsDir() {
				return false, filepath.SkipDir
			}
			return false, nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return false, nil
		}
		return len(cfg.Extensions) == 0 || slices.ContainsFunc(cfg.Extensions, func(e string) bool { return strings.HasSuffix(path, e) }), nil
	})
	if err != nil {
		return nil, err
	}
	per := cfg.FilesPerUnit
	if per <= 0 {
		per = 256
	}
	var units []Unit
	for _, f := range files {
		k, err := kindOf(f, cfg.Format)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		if k == JSONL || k == Parquet {
			units = append(units, Unit{Index: len(units), Kind: k, Files: []string{f}, Bytes: st.Size()})
			continue
		}
		if n := len(units); n > 0 && units[n-1].Kind == k && len(units[n-1].Files) < per {
			units[n-1].Files = append(units[n-1].Files, f)
			units[n-1].Bytes += st.Size()
			continue
		}
		units = append(units, Unit{Index: len(units), Kind: k, Files: []string{f}, Bytes: st.Size()})
	}
	if len(units) == 0 {
		return nil, fmt.Errorf("input paths %v hold no files (check input.extensions and input.exclude)", cfg.Paths)
	}
	if len(units) >= 1<<31 {
		return nil, fmt.Errorf("too many input units (%d)", len(units))
	}
	return units, nil
}

func excluded(rel string, patterns []string) bool {
	if rel == "." {
		return false
	}
	for _, p := range patterns {
		if ok, _ := filepath.Match(p, rel); ok {
			return true
		}
		if ok, _ := filepath.Match(p, filepath.Base(rel)); ok {
			return true
		}
	}
	return false
}

// Read streams the records of unit u to fn, in order, numbering them with
// ordinals of the unit.
func Read(ctx context.Context, u Unit, cfg Config, html HTMLExtractor, fn func(*Record) error) error {
	pg := newPages(ctx, cfg, html)
	index := 0
	emit := func(r *Record) error {
		if index&1023 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		r.Doc.Ordinal = document.Ordinal(u.Index, index)
		index++
		if r.Doc.Source == "" {
			r.Doc.Source = cfg.Source
		}
		return fn(r)
	}
	for _, f := range u.Files {
		var err error
		switch u.Kind {
		case JSONL:
			err = readJSONL(f, cfg, pg, emit)
		case Parquet:
			err = readParquet(f, cfg, pg, emit)
		case Text:
			if cfg.TextSplit == SplitBlankLines || cfg.TextSplit == SplitSeparator {
				err = readSplit(f, cfg, emit)
			} else {
				err = readWhole(f, u.Kind, cfg, pg, emit)
			}
		case HTML:
			err = readWhole(f, u.Kind, cfg, pg, emit)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func base(path string) string { return filepath.Base(path) }

func readWhole(path string, k Kind, cfg Config, pg *pages, emit func(*Record) error) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	r := &Record{Bytes: int64(len(b))}
	r.Doc.ID = path
	r.Doc.Origin = path
	r.Doc.Source = cfg.Source
	if r.Doc.Source == "" {
		r.Doc.Source = filepath.Dir(path)
	}
	r.Doc.Text = string(b)
	if k == HTML {
		if err := pg.set(r, r.Doc.Text); err != nil {
			return err
		}
	}
	return emit(r)
}

// capBytes keeps at most n bytes of s (on a rune boundary where valid).
func capBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// openMaybeCompressed opens path, decompressing .gz and .zst.
func openMaybeCompressed(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	switch {
	case strings.HasSuffix(path, ".gz"):
		z, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: not gzip data: %w", path, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{z, f}, nil
	case strings.HasSuffix(path, ".zst"):
		z, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: not zstd data: %w", path, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{z.IOReadCloser(), f}, nil
	}
	return f, nil
}

func readJSONL(path string, cfg Config, pg *pages, emit func(*Record) error) error {
	rc, err := openMaybeCompressed(path)
	if err != nil {
		return err
	}
	defer rc.Close()
	maxLine := cfg.MaxLineBytes
	if maxLine <= 0 {
		maxLine = 64 << 20
	}
	br := bufio.NewReaderSize(rc, 1<<20)
	src := cfg.Source
	if src == "" {
		src = base(path)
	}
	for line := 1; ; line++ {
		b, tooLong, err := readLine(br, maxLine)
		if err == io.EOF && len(b) == 0 && !tooLong {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if len(strings.TrimSpace(string(b))) == 0 && !tooLong {
			if err == io.EOF {
				return nil
			}
			continue
		}
		r := &Record{Bytes: int64(len(b))}
		if err == nil {
			r.Bytes++ // the line break
		}
		r.Doc.Source = src
		r.Doc.Origin = path + ":" + strconv.Itoa(line)
		if tooLong {
			r.Problem, r.Detail = "line_too_long", fmt.Sprintf("line longer than input.max_line_bytes = %d", maxLine)
		} else if err := parseJSONRecord(b, cfg, pg, r); err != nil {
			return err
		}
		if r.Doc.ID == "" {
			r.Doc.ID = r.Doc.Origin
		}
		if e := emit(r); e != nil {
			return e
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readLine reads one line without the newline; a line longer than max is
// consumed and reported with tooLong.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			return buf, tooLong, err
		}
		if !tooLong {
			if len(buf)+len(chunk) > max {
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		if !isPrefix {
			return buf, tooLong, nil
		}
	}
}

// parseJSONRecord fills r from a JSON line; it fails only when ctx ends
// during HTML extraction.
func parseJSONRecord(b []byte, cfg Config, pg *pages, r *Record) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		r.Problem, r.Detail = "malformed_json", err.Error()
		r.Doc.Text = capBytes(strings.ToValidUTF8(string(b), "\uFFFD"), 1<<16)
		return nil
	}
	str := func(field string) (string, bool) {
		if field == "" {
			return "", false
		}
		v, ok := m[field]
		if !ok || v == nil {
			return "", false
		}
		switch x := v.(type) {
		case string:
			return x, true
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64), true
		case bool:
			return strconv.FormatBool(x), true
		}
		j, _ := json.Marshal(v)
		return string(j), true
	}
	r.Doc.ID, _ = str(cfg.IDField)
	r.Doc.URL, _ = str(cfg.URLField)
	r.Doc.Date, _ = str(cfg.DateField)
	invalid := func(field string) {
		if !utf8.Valid(b) || bytes.Contains(b, []byte(`\u`)) {
			r.InvalidUTF8 = invalidInJSONField(b, field)
		}
	}
	if cfg.HTMLField != "" {
		if h, ok := str(cfg.HTMLField); ok {
			invalid(cfg.HTMLField)
			return pg.set(r, h)
		}
	}
	text, ok := m[cfg.TextField].(string)
	if !ok {
		r.Problem = "missing_text"
		r.Detail = fmt.Sprintf("no string field %q (the record's fields: %s)", cfg.TextField, fieldList(m))
		r.Doc.Text = capBytes(string(b), 1<<16)
		return nil
	}
	r.Doc.Text = text
	invalid(cfg.TextField)
	return nil
}

// fieldList names the fields of a record with their JSON types, sorted,
// at most 12.
func fieldList(m map[string]any) string {
	keys := slices.Sorted(maps.Keys(m))
	more := ""
	if len(keys) > 12 {
		keys, more = keys[:12], fmt.Sprintf(" … (%d in all)", len(keys))
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		typ := "null"
		switch m[k].(type) {
		case string:
			typ = "string"
		case float64:
			typ = "number"
		case bool:
			typ = "bool"
		case []any:
			typ = "array"
		case map[string]any:
			typ = "object"
		}
		parts[i] = strconv.Quote(k) + " " + typ
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ") + more
}

// invalidInJSONField counts the invalid UTF-8 sequences in the raw JSON
// string value of field (the last occurrence, as the decoder keeps):
// bytes that are not UTF-8 and \u escapes of unpaired surrogates.
// encoding/json replaces both with U+FFFD without saying so.
func invalidInJSONField(line []byte, field string) int {
	var m map[string]json.RawMessage
	if json.Unmarshal(line, &m) != nil {
		return 0
	}
	raw := m[field]
	if len(raw) < 2 || raw[0] != '"' {
		return 0
	}
	return countInvalid(raw[1 : len(raw)-1])
}

// countInvalid counts invalid sequences in the body of a JSON string.
func countInvalid(s []byte) int {
	n := 0
	pendingHigh := false // a \uD800-\uDBFF escape waits for its low half
	for i := 0; i < len(s); {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			if s[i+1] == 'u' && i+6 <= len(s) {
				if v, err := strconv.ParseUint(string(s[i+2:i+6]), 16, 16); err == nil {
					switch {
					case v >= 0xD800 && v < 0xDC00:
						if pendingHigh {
							n++
						}
						pendingHigh = true
					case v >= 0xDC00 && v < 0xE000:
						if !pendingHigh {
							n++
						}
						pendingHigh = false
					default:
						if pendingHigh {
							n++
						}
						pendingHigh = false
					}
					i += 6
					continue
				}
			}
			if pendingHigh {
				n++
			}
			pendingHigh = false
			i += 2
			continue
		}
		if pendingHigh {
			n++
			pendingHigh = false
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			n++
		}
		i += size
	}
	if pendingHigh {
		n++
	}
	return n
}
