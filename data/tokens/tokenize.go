package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/zeebo/xxh3"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/dirlock"
	"github.com/herdml/herd/internal/outdir"
	"github.com/herdml/herd/internal/pqcheck"
	"github.com/herdml/herd/internal/version"
)

// TokenizeOptions configure Tokenize.
type TokenizeOptions struct {
	// Inputs are docs-*.parquet files, directories holding them, or glob
	// patterns. Each input file becomes one token shard.
	Inputs []string
	// Out is the output directory (tokens-NNNNN.parquet + manifest.json).
	Out string
	// Tokenizer encodes the "text" column.
	Tokenizer *tokenizer.Tokenizer
	// TokenizerDir is recorded in the manifest (and used to hash
	// tokenizer.json when TokenizerHash is empty).
	TokenizerDir string
	// BOS and EOS add the tokenizer's BOS/EOS token around every document.
	BOS, EOS bool
	// Workers encode in parallel (0 = all cores).
	Workers int
	// RowGroupDocs is the number of documents per Parquet row group, the
	// unit the data loader shuffles and reads (default 1024).
	RowGroupDocs int
	// Logger receives progress (default: discard).
	Logger *slog.Logger
	// Progress, when set, is called after each shard with the number done.
	Progress func(done, total int)
}

// docRow is the part of a curated docs shard the tokenize step reads.
type docRow struct {
	ID      string  `parquet:"id"`
	Text    string  `parquet:"text"`
	Source  string  `parquet:"source"`
	Ordinal int64   `parquet:"ordinal"`
	Quality float32 `parquet:"quality"`
}

// footer metadata keys of a token shard.
const (
	metaInput  = "herd.input"
	metaHash   = "herd.input_hash"
	metaConfig = "herd.tokenize_config"
	metaCounts = "herd.counts"
)

// Tokenize turns curated document shards into token shards: for every
// input file, tokens-NNNNN.parquet (NNNNN = the input's index in sorted
// order) with one row per non-empty document, then manifest.json with the
// token counts per shard and source. A shard whose footer shows it was made
// from the same input bytes with the same tokenizer and settings is kept,
// so an interrupted run resumes where it stopped.
func Tokenize(ctx context.Context, opt TokenizeOptions) (*Manifest, error) {
	if opt.Tokenizer == nil {
		return nil, errors.New("tokenize: no tokenizer")
	}
	if opt.Out == "" {
		return nil, errors.New("tokenize: no output directory")
	}
	if opt.RowGroupDocs <= 0 {
		opt.RowGroupDocs = 1024
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	inputs, err := expandPaths(opt.Inputs, "docs-*.parquet")
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	if len(inputs) == 0 {
		return nil, errors.New("tokenize: no input files")
	}
	for _, in := range inputs {
		if err := checkDocsShard(in); err != nil {
			return nil, fmt.Errorf("tokenize: %w", err)
		}
	}
	tok := opt.Tokenizer
	info := TokenizerInfo{VocabSize: tok.VocabSize(), BOS: -1, EOS: -1}
	if opt.TokenizerDir != "" {
		// Stored absolute: a run resolves it later from anywhere.
		if info.Dir, err = filepath.Abs(opt.TokenizerDir); err != nil {
			return nil, fmt.Errorf("tokenize: %w", err)
		}
		if data, err := os.ReadFile(filepath.Join(opt.TokenizerDir, tokenizer.TokenizerFile)); err == nil {
			info.Hash = fmt.Sprintf("%016x", xxh3.Hash(data))
		}
	}
	if info.Hash == "" {
		tj, _, err := tok.MarshalHF()
		if err != nil {
			return nil, fmt.Errorf("tokenize: %w", err)
		}
		info.Hash = fmt.Sprintf("%016x", xxh3.Hash(tj))
	}
	special := func(on bool, name, what string) (int32, error) {
		if !on {
			return -1, nil
		}
		if name == "" {
			return 0, fmt.Errorf("tokenize: the tokenizer has no %s token configured; turn %s off or use a tokenizer with one", what, what)
		}
		id, ok := tok.SpecialID(name)
		if !ok {
			return 0, fmt.Errorf("tokenize: %s token %q is not in the vocabulary", what, name)
		}
		return id, nil
	}
	if info.BOS, err = special(opt.BOS, tok.Config().BOS, "BOS"); err != nil {
		return nil, err
	}
	if info.EOS, err = special(opt.EOS, tok.Config().EOS, "EOS"); err != nil {
		return nil, err
	}
	// The output is herd's own token folder or a new/empty one, written by
	// one process at a time.
	if err := outdir.CheckReplace(opt.Out, outdir.Tokens); err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	lock, err := dirlock.Acquire(opt.Out, "token shard directory")
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	defer lock.Release()
	if err := outdir.Claim(opt.Out, outdir.Tokens); err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	if removed, err := atomicfile.RemoveTemps(opt.Out); err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	} else if len(removed) > 0 {
		log.Info("removed leftovers of an interrupted tokenize", "dir", opt.Out, "files", len(removed))
	}
	// Until this run's manifest is written the folder is incomplete: a
	// training run refuses it instead of reading a mix of old and new shards.
	if err := os.Remove(filepath.Join(opt.Out, ManifestFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	cfgKey := fmt.Sprintf("tokenizer=%s bos=%d eos=%d row_group_docs=%d", info.Hash, info.BOS, info.EOS, opt.RowGroupDocs)
	man := &Manifest{Format: ManifestFormat, Tokenizer: info, Sources: map[string]Counts{}}
	for i, in := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out := filepath.Join(opt.Out, fmt.Sprintf("tokens-%05d.parquet", i))
		hash, err := fileHash(in)
		if err != nil {
			return nil, fmt.Errorf("tokenize: %w", err)
		}
		si, ok := existingShard(out, in, hash, cfgKey)
		if ok {
			log.Info("token shard up to date", "shard", out, "docs", si.Docs, "tokens", si.Tokens)
		} else {
			si, err = tokenizeShard(ctx, in, out, hash, cfgKey, info, opt)
			if err != nil {
				return nil, err
			}
			log.Info("tokenized", "input", in, "shard", out, "docs", si.Docs, "tokens", si.Tokens)
		}
		man.Shards = append(man.Shards, si)
		man.Total.Add(si.Counts)
		for name, c := range si.Sources {
			cur := man.Sources[name]
			cur.Add(c)
			man.Sources[name] = cur
		}
		if opt.Progress != nil {
			opt.Progress(i+1, len(inputs))
		}
	}
	if err := WriteManifest(opt.Out, man); err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	if err := removeStaleShards(opt.Out, man, log); err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	return man, nil
}

// checkDocsShard refuses an input that is not a Parquet file, saying that
// tokenize reads curate's output: JSONL or text must be curated first.
func checkDocsShard(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if string(head[:n]) == "PAR1" {
		return nil
	}
	what := "it is not a Parquet file"
	switch {
	case n == 0:
		what = "it is empty"
	case head[0] == '{' || head[0] == '[':
		what = "it holds JSON, not Parquet"
	}
	return fmt.Errorf("%s: %s; tokenize reads the docs-*.parquet shards that curate writes, so run curate first, e.g. `curate -recipe curate_web -out curated/ input.paths=[%s]`, then tokenize curated/", path, what, path)
}

// removeStaleShards deletes the token shards of earlier runs in dir (a
// herd token folder) that the new manifest does not list, e.g. when there
// are fewer inputs than before.
func removeStaleShards(dir string, man *Manifest, log *slog.Logger) error {
	files, err := filepath.Glob(filepath.Join(dir, "tokens-*.parquet"))
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, si := range man.Shards {
		listed[si.File] = true
	}
	for _, f := range files {
		if listed[filepath.Base(f)] {
			continue
		}
		if err := os.Remove(f); err != nil {
			return err
		}
		log.Info("removed a token shard of an earlier tokenize", "shard", f)
	}
	return nil
}

func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := xxh3.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return fmt.Sprintf("%016x", h.Sum64()), nil
}

// existingShard reports whether out was already made from this input with
// this configuration, returning its counts from the footer.
func existingShard(out, in, hash, cfgKey string) (_ ShardInfo, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false // a corrupted shard is made again
		}
	}()
	sf, err := Open(out)
	if err != nil {
		return ShardInfo{}, false
	}
	defer sf.Close()
	if h, _ := sf.pf.Lookup(metaHash); h != hash {
		return ShardInfo{}, false
	}
	if c, _ := sf.pf.Lookup(metaConfig); c != cfgKey {
		return ShardInfo{}, false
	}
	raw, ok := sf.pf.Lookup(metaCounts)
	if !ok {
		return ShardInfo{}, false
	}
	var si ShardInfo
	if json.Unmarshal([]byte(raw), &si) != nil {
		return ShardInfo{}, false
	}
	st, err := os.Stat(out)
	if err != nil {
		return ShardInfo{}, false
	}
	si.File, si.Input, si.InputHash, si.Bytes = filepath.Base(out), in, hash, st.Size()
	return si, true
}

// tokenizeShard encodes one docs shard into a token shard.
func tokenizeShard(ctx context.Context, in, out, hash, cfgKey string, info TokenizerInfo, opt TokenizeOptions) (_ ShardInfo, err error) {
	defer pqcheck.Recover(in, &err)
	si := ShardInfo{File: filepath.Base(out), Input: in, InputHash: hash, Sources: map[string]Counts{}}
	f, err := os.Open(in)
	if err != nil {
		return si, fmt.Errorf("tokenize: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return si, fmt.Errorf("tokenize: %w", err)
	}
	if err := pqcheck.Footer(in, f, st.Size()); err != nil {
		return si, fmt.Errorf("tokenize: %w", err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return si, fmt.Errorf("tokenize: %s: not a readable Parquet file: %w", in, err)
	}
	if leaf, ok := pf.Schema().Lookup("text"); !ok || leaf.MaxRepetitionLevel > 0 {
		return si, fmt.Errorf("tokenize: %s: no string column \"text\" (columns: %v); inputs are the docs-*.parquet shards of `curate`", in, pf.Schema().Columns())
	}
	af, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return si, fmt.Errorf("tokenize: %w", err)
	}
	defer af.Abort()
	w := parquet.NewGenericWriter[TokenRow](af,
		parquet.Compression(&zstd.Codec{Level: zstd.SpeedDefault}),
		parquet.MaxRowsPerRowGroup(int64(opt.RowGroupDocs)),
		version.CreatedBy("herd pretrain tokenize"),
		parquet.KeyValueMetadata(metaInput, filepath.Base(in)),
		parquet.KeyValueMetadata(metaHash, hash),
		parquet.KeyValueMetadata(metaConfig, cfgKey))
	r := parquet.NewGenericReader[docRow](pf)
	defer r.Close()
	docs := make([]docRow, opt.RowGroupDocs)
	texts := make([][]byte, 0, opt.RowGroupDocs)
	rows := make([]TokenRow, 0, opt.RowGroupDocs)
	rowNum := int64(0)
	for {
		n, rerr := r.Read(docs)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return si, fmt.Errorf("tokenize: %s: near row %d: %w", in, rowNum+int64(n), rerr)
		}
		texts = texts[:0]
		for _, d := range docs[:n] {
			texts = append(texts, []byte(d.Text))
		}
		ids, err := opt.Tokenizer.EncodeBatch(ctx, texts, false, opt.Workers)
		if err != nil {
			return si, err
		}
		rows = rows[:0]
		for k, d := range docs[:n] {
			if len(ids[k]) == 0 {
				continue // an empty document adds nothing to learn from
			}
			toks := make([]int32, 0, len(ids[k])+2)
			if info.BOS >= 0 {
				toks = append(toks, info.BOS)
			}
			toks = append(toks, ids[k]...)
			if info.EOS >= 0 {
				toks = append(toks, info.EOS)
			}
			id := d.ID
			if id == "" {
				id = fmt.Sprintf("%s#%d", filepath.Base(in), rowNum+int64(k))
			}
			rows = append(rows, TokenRow{ID: id, Source: d.Source, Ordinal: d.Ordinal, Quality: d.Quality, NumTokens: int32(len(toks)), Tokens: toks})
			c := si.Sources[d.Source]
			c.Add(Counts{Docs: 1, Tokens: int64(len(toks))})
			si.Sources[d.Source] = c
			si.Add(Counts{Docs: 1, Tokens: int64(len(toks))})
		}
		if len(rows) > 0 {
			if _, err := w.Write(rows); err != nil {
				return si, fmt.Errorf("tokenize: write %s: %w", out, err)
			}
		}
		rowNum += int64(n)
		if errors.Is(rerr, io.EOF) || n == 0 {
			break
		}
	}
	counts, err := json.Marshal(ShardInfo{Counts: si.Counts, Sources: si.Sources})
	if err != nil {
		return si, err
	}
	w.SetKeyValueMetadata(metaCounts, string(counts))
	if err := w.Close(); err != nil {
		return si, fmt.Errorf("tokenize: finish %s: %w", out, err)
	}
	if err := af.Commit(); err != nil {
		return si, fmt.Errorf("tokenize: %w", err)
	}
	ost, err := os.Stat(out)
	if err != nil {
		return si, fmt.Errorf("tokenize: %w", err)
	}
	si.Bytes = ost.Size()
	return si, nil
}

// SortedSources returns the manifest's source labels in order.
func SortedSources(m *Manifest) []string {
	return slices.Sorted(maps.Keys(m.Sources))
}
