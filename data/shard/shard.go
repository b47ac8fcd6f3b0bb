// Package shard writes and reads the Parquet files curation produces:
// docs-NNNNN.parquet (kept documents) and removed-NNNNN.parquet (removed
// documents with the reason). Files are zstd-compressed, written atomically,
// and byte-identical for identical rows.
package shard

import (
	"fmt"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/herdml/herd/data/document"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/pqcheck"
	"github.com/herdml/herd/internal/version"
)

// Row is one kept document.
type Row struct {
	ID          string  `parquet:"id"`
	Text        string  `parquet:"text"`
	Source      string  `parquet:"source"`
	Origin      string  `parquet:"origin"`
	URL         string  `parquet:"url"`
	Date        string  `parquet:"date"`
	Lang        string  `parquet:"lang"`
	LangScore   float32 `parquet:"lang_score"`
	Quality     float32 `parquet:"quality"`
	Domain      string  `parquet:"domain"`
	DomainScore float32 `parquet:"domain_score"`
	Chars       int64   `parquet:"chars"`
	Bytes       int64   `parquet:"bytes"`
	Words       int64   `parquet:"words"`
	Ordinal     int64   `parquet:"ordinal"`
}

// Removed is one removed document: the Row columns plus why. The embedded
// Row's fields are stored as top-level columns, before reason and detail.
type Removed struct {
	Row
	// Reason is "stage/rule", e.g. "gopher/min_words" or "minhash/near_duplicate".
	Reason string `parquet:"reason"`
	// Detail adds context, e.g. the id of the document kept in its place.
	Detail string `parquet:"detail"`
}

// FromDoc fills a Row from a document.
func FromDoc(d *document.Doc) Row {
	return Row{
		ID: d.ID, Text: d.Text, Source: d.Source, Origin: d.Origin, URL: d.URL, Date: d.Date,
		Lang: d.Lang, LangScore: float32(d.LangScore), Quality: float32(d.Quality),
		Domain: d.Domain, DomainScore: float32(d.DomainScore),
		Chars: int64(d.Chars()), Bytes: int64(len(d.Text)), Words: int64(d.Words()), Ordinal: int64(d.Ordinal),
	}
}

// RemovedFromDoc fills a Removed row.
func RemovedFromDoc(d *document.Doc, reason, detail string) Removed {
	return Removed{Row: FromDoc(d), Reason: reason, Detail: detail}
}

// Writer writes rows of type T to a Parquet file atomically.
type Writer[T any] struct {
	f *atomicfile.File
	w *parquet.GenericWriter[T]
}

// Create starts path. rowGroupRows bounds the rows per row group (and so
// the memory of readers and writers); 0 means 4096. Key/value metadata
// pairs are stored in the footer (e.g. the recipe hash).
func Create[T any](path string, rowGroupRows int, metadata ...string) (*Writer[T], error) {
	if rowGroupRows <= 0 {
		rowGroupRows = 4096
	}
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return nil, err
	}
	opts := []parquet.WriterOption{
		parquet.Compression(&zstd.Codec{Level: zstd.SpeedDefault}),
		parquet.MaxRowsPerRowGroup(int64(rowGroupRows)),
		version.CreatedBy("herd curate"),
	}
	for i := 0; i+1 < len(metadata); i += 2 {
		opts = append(opts, parquet.KeyValueMetadata(metadata[i], metadata[i+1]))
	}
	return &Writer[T]{f: f, w: parquet.NewGenericWriter[T](f, opts...)}, nil
}

// Write appends rows.
func (w *Writer[T]) Write(rows ...T) error {
	if _, err := w.w.Write(rows); err != nil {
		return fmt.Errorf("write %s: %w", w.f.Name(), err)
	}
	return nil
}

// Commit finishes the file and publishes it.
func (w *Writer[T]) Commit() error {
	if err := w.w.Close(); err != nil {
		w.f.Abort()
		return fmt.Errorf("finish parquet %s: %w", w.f.Name(), err)
	}
	return w.f.Commit()
}

// Abort discards the file.
func (w *Writer[T]) Abort() { w.f.Abort() }

// maxReadAllRows bounds the rows ReadAll loads at once.
const maxReadAllRows = 1 << 24

// ReadAll reads every row of a file written by Writer (for tests and
// small files; use a GenericReader for streaming).
func ReadAll[T any](path string) (_ []T, err error) {
	defer pqcheck.Recover(path, &err)
	pf, f, err := pqcheck.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// ReadAll is for small files; a larger row count (or a corrupted
	// footer claiming one) must not turn into a huge allocation.
	if n := pf.NumRows(); n < 0 || n > maxReadAllRows {
		return nil, fmt.Errorf("%s: %d rows; ReadAll reads at most %d (stream larger files with a GenericReader)", path, n, maxReadAllRows)
	}
	r := parquet.NewGenericReader[T](pf)
	defer r.Close()
	rows := make([]T, pf.NumRows())
	n, err := r.Read(rows)
	if int64(n) == pf.NumRows() {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("read parquet %s: %w", path, err)
	}
	return rows, nil
}
