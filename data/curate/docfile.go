package curate

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/klauspost/compress/s2"

	"github.com/herdml/herd/data/document"
	"github.com/herdml/herd/internal/atomicfile"
)

// A docfile holds the documents between two passes (or the removed
// documents of one pass): S2-compressed records of length-prefixed fields
// (S2, a Snappy extension, compresses text about half as well as zstd but
// several times faster, and these files live only until the run ends).
// It is internal to a run and written atomically.

const docfileMagic = "herd-docs-v2\n"

type docRec struct {
	doc    document.Doc
	reason string // removed files only
	detail string
}

type docWriter struct {
	f   *atomicfile.File
	z   *s2.Writer
	w   *bufio.Writer
	buf []byte
	n   int
}

func createDocfile(path string) (*docWriter, error) {
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return nil, err
	}
	z := s2.NewWriter(f, s2.WriterConcurrency(1))
	w := bufio.NewWriterSize(z, 256<<10)
	w.WriteString(docfileMagic)
	return &docWriter{f: f, z: z, w: w}, nil
}

func (w *docWriter) put(r *docRec) error {
	d := &r.doc
	b := w.buf[:0]
	b = binary.AppendUvarint(b, d.Ordinal)
	for _, s := range []string{d.ID, d.Source, d.Origin, d.URL, d.Date, d.Lang, d.Domain, r.reason, r.detail, d.Text} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, f := range []float64{d.LangScore, d.Quality, d.DomainScore} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(b)))
	w.w.Write(hdr[:n])
	_, err := w.w.Write(b)
	w.buf = b
	w.n++
	if err != nil {
		return fmt.Errorf("write %s: %w", w.f.Name(), err)
	}
	return nil
}

func (w *docWriter) commit() error {
	if err := w.w.Flush(); err != nil {
		w.f.Abort()
		return fmt.Errorf("write %s: %w", w.f.Name(), err)
	}
	if err := w.z.Close(); err != nil {
		w.f.Abort()
		return fmt.Errorf("write %s: %w", w.f.Name(), err)
	}
	return w.f.Commit()
}

func (w *docWriter) abort() {
	w.z.Close()
	w.f.Abort()
}

type docReader struct {
	path string
	f    *os.File
	r    *bufio.Reader
	buf  []byte
}

func openDocfile(path string) (*docReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(s2.NewReader(f), 256<<10)
	magic := make([]byte, len(docfileMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != docfileMagic {
		f.Close()
		return nil, fmt.Errorf("%s: not a herd intermediate file (delete the work directory to start over)", path)
	}
	return &docReader{path: path, f: f, r: r}, nil
}

// next reads one record; io.EOF at the end.
func (r *docReader) next(rec *docRec) error {
	n, err := binary.ReadUvarint(r.r)
	if err == io.EOF {
		return io.EOF
	}
	if err != nil {
		return fmt.Errorf("%s: %w", r.path, err)
	}
	if n > 1<<32 {
		return fmt.Errorf("%s: corrupt record length %d", r.path, n)
	}
	if uint64(cap(r.buf)) < n {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return fmt.Errorf("%s: truncated record: %w", r.path, err)
	}
	bad := errors.New("corrupt record")
	d := &rec.doc
	v, k := binary.Uvarint(b)
	if k <= 0 {
		return fmt.Errorf("%s: %w", r.path, bad)
	}
	d.Ordinal, b = v, b[k:]
	for _, s := range []*string{&d.ID, &d.Source, &d.Origin, &d.URL, &d.Date, &d.Lang, &d.Domain, &rec.reason, &rec.detail, &d.Text} {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return fmt.Errorf("%s: %w", r.path, bad)
		}
		*s = string(b[k : k+int(l)])
		b = b[k+int(l):]
	}
	for _, f := range []*float64{&d.LangScore, &d.Quality, &d.DomainScore} {
		if len(b) < 8 {
			return fmt.Errorf("%s: %w", r.path, bad)
		}
		*f = math.Float64frombits(binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	return nil
}

func (r *docReader) close() { r.f.Close() }
