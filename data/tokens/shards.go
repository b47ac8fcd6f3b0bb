// Package tokens owns token shards: tokens-NNNNN.parquet files of
// tokenized documents with the manifest.json that lists them, the tokenize
// step that makes them from curated document shards, and reading them
// back (the manifest is the truth about which shards a directory holds).
// Pretraining and post-training read their data from here.
package tokens

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/jsonpos"
	"github.com/herdml/herd/internal/pqcheck"
)

// TokenRow is one document of a token shard (tokens-NNNNN.parquet).
type TokenRow struct {
	// ID is the document id of the curated shard.
	ID string `parquet:"id"`
	// Source is the curated document's source label.
	Source string `parquet:"source"`
	// Ordinal is the document's global ordinal from curation.
	Ordinal int64 `parquet:"ordinal"`
	// Quality is the curated quality score (0 when not scored).
	Quality float32 `parquet:"quality"`
	// NumTokens is len(Tokens).
	NumTokens int32 `parquet:"num_tokens"`
	// Tokens are the ids, with BOS and EOS when the tokenize step added them.
	Tokens []int32 `parquet:"tokens,list"`
}

// ManifestFile is the name of the token directory's manifest.
const ManifestFile = "manifest.json"

// ManifestFormat identifies manifest.json documents.
const ManifestFormat = "herd-tokens/1"

// Counts is a number of documents and tokens.
type Counts struct {
	Docs   int64 `json:"docs"`
	Tokens int64 `json:"tokens"`
}

// Add adds o to c.
func (c *Counts) Add(o Counts) { c.Docs += o.Docs; c.Tokens += o.Tokens }

// ShardInfo describes one token shard in the manifest.
type ShardInfo struct {
	File      string            `json:"file"`       // base name, e.g. tokens-00000.parquet
	Input     string            `json:"input"`      // the docs shard it came from
	InputHash string            `json:"input_hash"` // xxh3-128 of the input file's bytes
	Counts                      // documents and tokens in the shard
	Sources   map[string]Counts `json:"sources"`         // per source label
	Bytes     int64             `json:"bytes,omitempty"` // file size (0 in manifests of older versions: not checked)
}

// TokenizerInfo identifies the tokenizer used.
type TokenizerInfo struct {
	// Dir is the tokenizer directory, absolute (older manifests may hold
	// it as typed); Hash identifies its content.
	Dir       string `json:"dir,omitempty"`
	Hash      string `json:"hash"` // xxh3-128 of tokenizer.json
	VocabSize int    `json:"vocab_size"`
	BOS       int32  `json:"bos_id"` // -1 when not added
	EOS       int32  `json:"eos_id"` // -1 when not added
}

// Manifest is manifest.json: what the tokenize step produced.
type Manifest struct {
	Format    string            `json:"format"`
	Tokenizer TokenizerInfo     `json:"tokenizer"`
	Shards    []ShardInfo       `json:"shards"`
	Sources   map[string]Counts `json:"sources"`
	Total     Counts            `json:"total"`
}

// ReadManifest reads dir/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseManifest(data, path)
}

func parseManifest(data []byte, path string) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, jsonpos.Wrap(data, err))
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("%s: format %q, want %q (a manifest written by `pretrain tokenize`)", path, m.Format, ManifestFormat)
	}
	if m.Tokenizer.VocabSize <= 0 {
		return nil, fmt.Errorf("%s: tokenizer.vocab_size must be positive, got %d", path, m.Tokenizer.VocabSize)
	}
	for i, s := range m.Shards {
		if s.File == "" || filepath.Base(s.File) != s.File {
			return nil, fmt.Errorf("%s: shards[%d].file %q must be a plain file name", path, i, s.File)
		}
		if s.Docs < 0 || s.Tokens < 0 {
			return nil, fmt.Errorf("%s: shards[%d] has negative counts", path, i)
		}
	}
	return &m, nil
}

// WriteManifest writes m to dir/manifest.json atomically.
func WriteManifest(dir string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, ManifestFile), append(data, '\n'), 0o644)
}

// expandPaths turns files, directories (their tokens-*.parquet) and glob
// patterns into a sorted list of token shard files.
func expandPaths(paths []string, pattern string) ([]string, error) {
	var out []string
	for _, p := range paths {
		matches := []string{p}
		if strings.ContainsAny(p, "*?[") {
			var err error
			matches, err = filepath.Glob(p)
			if err != nil {
				return nil, fmt.Errorf("pattern %q: %w", p, err)
			}
			if len(matches) == 0 {
				return nil, fmt.Errorf("pattern %q matches no files", p)
			}
		}
		for _, m := range matches {
			st, err := os.Stat(m)
			if err != nil {
				return nil, fmt.Errorf("data path: %w", err)
			}
			if !st.IsDir() {
				out = append(out, m)
				continue
			}
			files, err := filepath.Glob(filepath.Join(m, pattern))
			if err != nil {
				return nil, err
			}
			if len(files) == 0 {
				return nil, fmt.Errorf("directory %s holds no %s files", m, pattern)
			}
			out = append(out, files...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Shard is a token shard listed by a manifest.
type Shard struct {
	Path     string
	Info     ShardInfo
	Manifest *Manifest
	Dir      string // the manifest's directory
}

// Resolve turns a source's paths (directories of token shards,
// shard files or glob patterns) into the shards their manifests list. The
// manifest is the truth: a directory trains on exactly the shards its
// manifest.json lists, a folder without a manifest (an unfinished or
// foreign tokenize) is refused, a named file must be listed by the
// manifest beside it, and every listed shard must exist with the size the
// manifest recorded.
func Resolve(paths []string) ([]Shard, error) {
	manifests := map[string]*Manifest{}
	manifest := func(dir string) (*Manifest, error) {
		if m, ok := manifests[dir]; ok {
			return m, nil
		}
		m, err := ReadManifest(dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s has no %s: its token shards are from an unfinished or foreign tokenize; run `pretrain tokenize` on it to completion", dir, ManifestFile)
		}
		if err != nil {
			return nil, err
		}
		manifests[dir] = m
		return m, nil
	}
	var out []Shard
	seen := map[string]bool{}
	add := func(dir string, m *Manifest, si ShardInfo) error {
		path := filepath.Join(dir, si.File)
		if seen[path] {
			return nil
		}
		seen[path] = true
		st, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("%s lists %s, which cannot be read (%w); re-run `pretrain tokenize` for %s", filepath.Join(dir, ManifestFile), si.File, err, dir)
		}
		if si.Bytes > 0 && st.Size() != si.Bytes {
			return fmt.Errorf("%s has %d bytes but %s recorded %d: the shard changed after tokenize; re-run `pretrain tokenize` for %s", path, st.Size(), filepath.Join(dir, ManifestFile), si.Bytes, dir)
		}
		out = append(out, Shard{Path: path, Info: si, Manifest: m, Dir: dir})
		return nil
	}
	for _, p := range paths {
		matches := []string{p}
		if strings.ContainsAny(p, "*?[") {
			var err error
			if matches, err = filepath.Glob(p); err != nil {
				return nil, fmt.Errorf("pattern %q: %w", p, err)
			}
			if len(matches) == 0 {
				return nil, fmt.Errorf("pattern %q matches no files", p)
			}
			slices.Sort(matches)
		}
		for _, match := range matches {
			st, err := os.Stat(match)
			if err != nil {
				return nil, fmt.Errorf("data path: %w", err)
			}
			if st.IsDir() {
				m, err := manifest(match)
				if err != nil {
					return nil, err
				}
				if len(m.Shards) == 0 {
					return nil, fmt.Errorf("%s lists no token shards", filepath.Join(match, ManifestFile))
				}
				for _, si := range m.Shards {
					if err := add(match, m, si); err != nil {
						return nil, err
					}
				}
				continue
			}
			dir, base := filepath.Split(match)
			dir = filepath.Clean(dir)
			m, err := manifest(dir)
			if err != nil {
				return nil, err
			}
			k := slices.IndexFunc(m.Shards, func(si ShardInfo) bool { return si.File == base })
			if k < 0 {
				return nil, fmt.Errorf("%s is not listed in %s: a stale shard of an earlier tokenize, or not a token shard; remove it or re-run `pretrain tokenize`", match, filepath.Join(dir, ManifestFile))
			}
			if err := add(dir, m, m.Shards[k]); err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(out, func(a, b Shard) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// File is an open token shard.
type File struct {
	path string
	f    *os.File
	pf   *parquet.File
}

// maxGroupRows bounds the rows of one row group, so a corrupted footer
// cannot ask for a huge allocation.
const maxGroupRows = 1 << 22

// Open opens a token shard and checks its schema.
func Open(path string) (_ *File, err error) {
	defer pqcheck.Recover(path, &err)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
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
	if _, ok := pf.Schema().Lookup("tokens", "list", "element"); !ok {
		f.Close()
		return nil, fmt.Errorf("%s: no list column \"tokens\"; token shards are written by `pretrain tokenize`", path)
	}
	if _, ok := pf.Schema().Lookup("id"); !ok {
		f.Close()
		return nil, fmt.Errorf("%s: no column \"id\"; token shards are written by `pretrain tokenize`", path)
	}
	for g, rg := range pf.RowGroups() {
		if n := rg.NumRows(); n < 0 || n > maxGroupRows || n > 64*st.Size() {
			f.Close()
			return nil, fmt.Errorf("%s: row group %d claims %d rows; the file is corrupted (token shards hold at most %d documents per row group)", path, g, n, maxGroupRows)
		}
	}
	return &File{path: path, f: f, pf: pf}, nil
}

// Close closes the file.
func (s *File) Close() error { return s.f.Close() }

// NumRows is the number of documents in the shard.
func (s *File) NumRows() int64 { return s.pf.NumRows() }

// RowGroupRows are the numbers of documents of the shard's row groups.
func (s *File) RowGroupRows() []int {
	rgs := s.pf.RowGroups()
	out := make([]int, len(rgs))
	for i, rg := range rgs {
		out[i] = int(rg.NumRows())
	}
	return out
}

// ReadRowGroup reads every row of row group g, checking that each token is
// below vocab.
func (s *File) ReadRowGroup(g int, vocab int, dst []TokenRow) (_ []TokenRow, err error) {
	defer pqcheck.Recover(s.path, &err)
	rgs := s.pf.RowGroups()
	if g < 0 || g >= len(rgs) {
		return nil, fmt.Errorf("%s: row group %d does not exist (the file has %d); was the shard rewritten during the run?", s.path, g, len(rgs))
	}
	n := int(rgs[g].NumRows())
	dst = slices.Grow(dst[:0], n)[:n]
	r := parquet.NewGenericRowGroupReader[TokenRow](rgs[g])
	defer r.Close()
	got, err := r.Read(dst)
	if got == n && (err == nil || errors.Is(err, io.EOF)) {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: row group %d: %w", s.path, g, err)
	}
	for i := range dst {
		row := &dst[i]
		if int(row.NumTokens) != len(row.Tokens) {
			return nil, fmt.Errorf("%s: row group %d, row %d (document %q): num_tokens %d but %d tokens; re-run `pretrain tokenize`", s.path, g, i, row.ID, row.NumTokens, len(row.Tokens))
		}
		for j, t := range row.Tokens {
			if t < 0 || int(t) >= vocab {
				return nil, fmt.Errorf("%s: row group %d, row %d (document %q), token %d: id %d is outside the model's vocabulary [0, %d); set model.vocab_size to the tokenizer's size", s.path, g, i, row.ID, j, t, vocab)
			}
		}
	}
	return dst, nil
}
