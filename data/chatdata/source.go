package chatdata

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"

	"github.com/herdml/herd/data/reader"
	"github.com/herdml/herd/internal/pqcheck"
)

// Pos is a read position in the inputs: the epoch, the index of the file
// in that epoch's file order, and the records (JSONL lines, blank ones
// included, or Parquet rows) of that file already consumed.
type Pos struct {
	Epoch  int   `json:"epoch"`
	File   int   `json:"file"`
	Offset int64 `json:"offset"`
}

// ListFiles expands paths (files, directories walked recursively, globs)
// into the sorted input files: *.jsonl, *.ndjson, *.json (each optionally
// .gz or .zst) and *.parquet. A file named explicitly must have one of
// these extensions.
func ListFiles(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no input paths: give JSONL (.gz/.zst) or Parquet files or directories")
	}
	files, err := reader.ExpandPaths(paths, func(_, path string, d fs.DirEntry) (bool, error) {
		if !d.Type().IsRegular() {
			return false, nil
		}
		_, err := kindOf(path)
		return err == nil, nil
	})
	if err != nil {
		return nil, err
	}
	// A file named explicitly (not found in a directory) must be an input.
	for _, f := range files {
		if _, err := kindOf(f); err != nil {
			return nil, err
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("input paths %v hold no .jsonl, .jsonl.gz, .jsonl.zst or .parquet file", paths)
	}
	return files, nil
}

type fileKind int

const (
	kindJSONL fileKind = iota
	kindParquet
)

func kindOf(path string) (fileKind, error) {
	p := strings.ToLower(path)
	p = strings.TrimSuffix(strings.TrimSuffix(p, ".gz"), ".zst")
	switch {
	case strings.HasSuffix(p, ".jsonl"), strings.HasSuffix(p, ".ndjson"), strings.HasSuffix(p, ".json"):
		return kindJSONL, nil
	case strings.HasSuffix(p, ".parquet"):
		return kindParquet, nil
	}
	return 0, fmt.Errorf("%s: unknown input format: want .jsonl, .ndjson or .json (optionally .gz or .zst) or .parquet", path)
}

// record is one input row: a JSON line, Parquet fields, or a bad row.
type record struct {
	line []byte    // JSONL: the line (valid until the next read)
	f    fields    // Parquet: the row's columns
	bad  *rowError // a row that could not be read (too long)
}

// fileReader reads the records of one file.
type fileReader interface {
	next() (record, error) // io.EOF at the end
	skip(n int64) error    // skip the next n records
	Close() error
}

// source reads the records of every file, epoch after epoch, from a Pos.
type source struct {
	files   []string
	seed    uint64
	epochs  int // 0: unlimited
	maxLine int
	pos     Pos
	order   []int // file order of pos.Epoch
	cur     fileReader
	rng     *rand.Rand
	pcg     *rand.PCG
}

func newSource(files []string, seed uint64, epochs, maxLine int, pos Pos) (*source, error) {
	if pos.Epoch < 0 || pos.File < 0 || pos.Offset < 0 || pos.File > len(files) {
		return nil, fmt.Errorf("read position %+v is invalid for %d files", pos, len(files))
	}
	pcg := rand.NewPCG(0, 0)
	s := &source{files: files, seed: seed, epochs: epochs, maxLine: maxLine, pos: pos,
		order: make([]int, len(files)), pcg: pcg, rng: rand.New(pcg)}
	s.shuffleFiles()
	return s, nil
}

// shuffleFiles sets the file order of the current epoch: a permutation
// seeded by (seed, epoch).
func (s *source) shuffleFiles() {
	for i := range s.order {
		s.order[i] = i
	}
	s.pcg.Seed(s.seed^0x66696c65, uint64(s.pos.Epoch))
	s.rng.Shuffle(len(s.order), func(i, j int) { s.order[i], s.order[j] = s.order[j], s.order[i] })
}

// file returns the path of the current file.
func (s *source) file() string { return s.files[s.order[s.pos.File]] }

// loc names the record last read: file:line or file:rowN.
func (s *source) loc() string {
	f := s.file()
	if k, _ := kindOf(f); k == kindParquet {
		return f + ":row" + strconv.FormatInt(s.pos.Offset, 10)
	}
	return f + ":" + strconv.FormatInt(s.pos.Offset, 10)
}

// next returns the next record, moving through files and epochs; io.EOF
// after the last epoch.
func (s *source) next() (record, error) {
	for {
		if s.epochs > 0 && s.pos.Epoch >= s.epochs {
			return record{}, io.EOF
		}
		if s.pos.File >= len(s.files) {
			s.pos = Pos{Epoch: s.pos.Epoch + 1}
			s.shuffleFiles()
			continue
		}
		if s.cur == nil {
			r, err := openFile(s.file(), s.maxLine)
			if err != nil {
				return record{}, err
			}
			if err := r.skip(s.pos.Offset); err != nil {
				r.Close()
				return record{}, fmt.Errorf("%s: resume at record %d: %w", s.file(), s.pos.Offset, err)
			}
			s.cur = r
		}
		rec, err := s.cur.next()
		if err == io.EOF {
			err = s.cur.Close()
			s.cur = nil
			if err != nil {
				return record{}, fmt.Errorf("%s: %w", s.file(), err)
			}
			s.pos.File++
			s.pos.Offset = 0
			continue
		}
		if err != nil {
			if strings.HasPrefix(err.Error(), s.file()+":") {
				return record{}, err // a Parquet error naming the file
			}
			return record{}, fmt.Errorf("%s:%d: %w", s.file(), s.pos.Offset+1, err)
		}
		s.pos.Offset++
		return rec, nil
	}
}

// Close closes the open file.
func (s *source) Close() error {
	if s.cur == nil {
		return nil
	}
	err := s.cur.Close()
	s.cur = nil
	return err
}

func openFile(path string, maxLine int) (fileReader, error) {
	k, err := kindOf(path)
	if err != nil {
		return nil, err
	}
	if k == kindParquet {
		return openParquet(path, maxLine)
	}
	return openJSONL(path, maxLine)
}

// jsonlReader reads the lines of a JSONL file (.gz and .zst decompressed).
type jsonlReader struct {
	c       io.Closer
	zc      func()
	br      *bufio.Reader
	maxLine int
	buf     []byte
}

func openJSONL(path string, maxLine int) (*jsonlReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	r := &jsonlReader{c: f, maxLine: maxLine}
	var in io.Reader = f
	switch {
	case strings.HasSuffix(path, ".gz"):
		z, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: not gzip data: %w", path, err)
		}
		in = z
	case strings.HasSuffix(path, ".zst"):
		z, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: not zstd data: %w", path, err)
		}
		in, r.zc = z, z.Close
	}
	r.br = bufio.NewReaderSize(in, 1<<16)
	return r, nil
}

// Close closes the decompressor and the file.
func (r *jsonlReader) Close() error {
	if r.zc != nil {
		r.zc()
	}
	return r.c.Close()
}

// readLine reads one line without its newline; a line longer than maxLine
// is consumed and reported with tooLong. It returns io.EOF only when no
// byte is left.
func (r *jsonlReader) readLine() (line []byte, tooLong bool, err error) {
	r.buf = r.buf[:0]
	started := false
	for {
		chunk, isPrefix, err := r.br.ReadLine()
		if err != nil {
			if err == io.EOF && started {
				return r.buf, tooLong, nil
			}
			return nil, false, err
		}
		started = true
		if !tooLong {
			if len(r.buf)+len(chunk) > r.maxLine {
				tooLong, r.buf = true, r.buf[:0]
			} else {
				r.buf = append(r.buf, chunk...)
			}
		}
		if !isPrefix {
			return r.buf, tooLong, nil
		}
	}
}

// next returns the next line; a blank line is a record with neither line
// nor error (the caller skips it), so line numbers count every line.
func (r *jsonlReader) next() (record, error) {
	line, tooLong, err := r.readLine()
	if err != nil {
		return record{}, err
	}
	if tooLong {
		return record{bad: rowErr(ReasonLineTooLong, "line longer than MaxLineBytes = %d bytes", r.maxLine)}, nil
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return record{}, nil
	}
	return record{line: line}, nil
}

func (r *jsonlReader) skip(n int64) error {
	for i := int64(0); i < n; i++ {
		if _, _, err := r.readLine(); err != nil {
			if err == io.EOF {
				return fmt.Errorf("the file has only %d lines: was it changed since the position was saved?", i)
			}
			return err
		}
	}
	return nil
}

// parquetColumns are the columns a Parquet row may carry.
var parquetColumns = []string{"messages", "prompt", "completion", "chosen", "rejected", "edited", "tools"}

// parquetReader reads the rows of a Parquet file. Columns are strings
// (BYTE_ARRAY); "messages" holds a JSON list of messages, "tools" a JSON
// list of tool schemas, and a prompt,
// completion or response value that is a JSON array of objects is read as
// a list of messages (TRL's conversational format); any other value is
// plain text.
type parquetReader struct {
	path    string
	f       *os.File
	pf      *parquet.File
	cols    []int // column index of each parquetColumns entry, -1 if absent
	groups  []parquet.RowGroup
	group   int
	rows    parquet.Rows
	buf     []parquet.Row
	n, i    int
	maxLine int
	eof     bool
}

func openParquet(path string, maxLine int) (r *parquetReader, err error) {
	defer pqcheck.Recover(path, &err)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read input: %w", err)
	}
	if err := pqcheck.Footer(path, f, st.Size()); err != nil {
		f.Close()
		return nil, err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: not a readable Parquet file: %w", path, err)
	}
	r = &parquetReader{path: path, f: f, pf: pf, groups: pf.RowGroups(), buf: make([]parquet.Row, 16), maxLine: maxLine}
	found := false
	for _, name := range parquetColumns {
		c := -1
		if lc, ok := pf.Schema().Lookup(name); ok {
			c = lc.ColumnIndex
			found = true
		}
		r.cols = append(r.cols, c)
	}
	if !found {
		f.Close()
		return nil, fmt.Errorf("%s: no column of %v (SFT files have messages or prompt+completion, preference files prompt+chosen+rejected[+edited])", path, parquetColumns)
	}
	return r, nil
}

// Close closes the open row group and the file.
func (r *parquetReader) Close() error {
	if r.rows != nil {
		r.rows.Close()
		r.rows = nil
	}
	return r.f.Close()
}

// fill reads the next rows into buf; io.EOF after the last row group.
func (r *parquetReader) fill() (err error) {
	defer pqcheck.Recover(r.path, &err)
	for {
		if r.rows == nil {
			if r.group >= len(r.groups) {
				return io.EOF
			}
			r.rows = r.groups[r.group].Rows()
			r.eof = false
		}
		if !r.eof {
			n, err := r.rows.ReadRows(r.buf)
			r.n, r.i = n, 0
			if errors.Is(err, io.EOF) {
				r.eof = true
			} else if err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
		}
		r.rows.Close()
		r.rows = nil
		r.group++
	}
}

func (r *parquetReader) next() (record, error) {
	if r.i >= r.n {
		if err := r.fill(); err != nil {
			return record{}, err
		}
	}
	row := r.buf[r.i]
	r.i++
	f := fields{}
	for k, c := range r.cols {
		if c < 0 {
			continue
		}
		for _, v := range row {
			if v.Column() != c || v.IsNull() {
				continue
			}
			if v.Kind() != parquet.ByteArray {
				return record{bad: rowErr(ReasonInvalidField, "column %q is %v, want a string (BYTE_ARRAY)", parquetColumns[k], v.Kind())}, nil
			}
			b := v.ByteArray()
			if len(b) > r.maxLine {
				return record{bad: rowErr(ReasonLineTooLong, "column %q holds %d bytes, more than MaxLineBytes = %d", parquetColumns[k], len(b), r.maxLine)}, nil
			}
			f[parquetColumns[k]] = parquetValue(parquetColumns[k], b)
			break
		}
	}
	return record{f: f}, nil
}

// parquetValue turns a string column value into the JSON of the field.
func parquetValue(name string, b []byte) json.RawMessage {
	t := bytes.TrimSpace(b)
	if name == "messages" || name == "tools" || (len(t) > 0 && t[0] == '[' && isObjectArray(t)) {
		return json.RawMessage(bytes.Clone(t))
	}
	s, _ := json.Marshal(string(b))
	return s
}

// isObjectArray reports whether b is a JSON array of objects.
func isObjectArray(b []byte) bool {
	var elems []json.RawMessage
	if json.Unmarshal(b, &elems) != nil {
		return false
	}
	for _, e := range elems {
		if len(e) == 0 || e[0] != '{' {
			return false
		}
	}
	return true
}

func (r *parquetReader) skip(n int64) (err error) {
	defer pqcheck.Recover(r.path, &err)
	for n > 0 && r.group < len(r.groups) {
		rows := r.groups[r.group].NumRows()
		if n >= rows {
			n -= rows
			r.group++
			continue
		}
		r.rows = r.groups[r.group].Rows()
		r.eof = false
		if err := r.rows.SeekToRow(n); err != nil {
			return err
		}
		return nil
	}
	if n > 0 {
		return errors.New("the file has fewer rows: was it changed since the position was saved?")
	}
	return nil
}
