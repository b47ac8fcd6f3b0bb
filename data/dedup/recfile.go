package dedup

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/herdml/herd/internal/atomicfile"
	"github.com/zeebo/xxh3"
)

// Every file this package writes (key files, signature files, band bucket
// files, edge files, removal files) shares one layout of fixed-size
// little-endian records:
//
//	header  magic "HDDP" | version u16 (=1) | kind u16 | record size u32 |
//	        params length u32 | params (kind specific, ≤ 4096 bytes)
//	records count × record size bytes
//	footer  count u64 | xxh3-64 of header+records u64 | "HDDPEND\n"
//
// Readers check the magic, version, kind, record size, that the file size
// matches the footer's count, that the checksum matches, and (for sorted
// kinds) that records are in order, and name the file and record on error.

// File kinds.
const (
	kindKeys       uint16 = 1 // KeyRecord, sorted by (Key, Order, ID)
	kindSignatures uint16 = 2 // id + signature, ids strictly increasing
	kindBands      uint16 = 3 // bandRec, sorted by (Hash, ID)
	kindEdges      uint16 = 4 // Edge, unsorted
	kindRemovals   uint16 = 5 // Removal, IDs strictly increasing
)

var kindNames = map[uint16]string{
	kindKeys: "key", kindSignatures: "signature", kindBands: "band bucket",
	kindEdges: "edge", kindRemovals: "removal",
}

const (
	recMagic       = "HDDP"
	recVersion     = 1
	recHeaderFixed = 4 + 2 + 2 + 4 + 4
	recFooterSize  = 8 + 8 + 8
	recFooterMagic = "HDDPEND\n"
	maxParams      = 4096
	maxRecordSize  = 1 << 16
)

// recWriter writes one record file atomically.
type recWriter struct {
	path    string
	f       *atomicfile.File
	w       *bufio.Writer
	h       *xxh3.Hasher
	recSize int
	n       uint64
}

func createRec(path string, kind uint16, recSize int, params []byte) (*recWriter, error) {
	if len(params) > maxParams || recSize <= 0 || recSize > maxRecordSize {
		return nil, fmt.Errorf("dedup: write %s: bad record layout (record %d bytes, params %d bytes)", path, recSize, len(params))
	}
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return nil, err
	}
	w := &recWriter{path: path, f: f, w: bufio.NewWriterSize(f, 1<<16), h: xxh3.New(), recSize: recSize}
	hdr := make([]byte, recHeaderFixed, recHeaderFixed+len(params))
	copy(hdr, recMagic)
	binary.LittleEndian.PutUint16(hdr[4:], recVersion)
	binary.LittleEndian.PutUint16(hdr[6:], kind)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(recSize))
	binary.LittleEndian.PutUint32(hdr[12:], uint32(len(params)))
	hdr = append(hdr, params...)
	if err := w.raw(hdr); err != nil {
		f.Abort()
		return nil, err
	}
	return w, nil
}

func (w *recWriter) raw(b []byte) error {
	w.h.Write(b)
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("dedup: write %s: %w", w.path, err)
	}
	return nil
}

func (w *recWriter) write(rec []byte) error {
	if len(rec) != w.recSize {
		return fmt.Errorf("dedup: write %s: record of %d bytes, want %d", w.path, len(rec), w.recSize)
	}
	w.n++
	return w.raw(rec)
}

func (w *recWriter) commit() error {
	var foot [recFooterSize]byte
	binary.LittleEndian.PutUint64(foot[0:], w.n)
	binary.LittleEndian.PutUint64(foot[8:], w.h.Sum64())
	copy(foot[16:], recFooterMagic)
	if _, err := w.w.Write(foot[:]); err != nil {
		w.f.Abort()
		return fmt.Errorf("dedup: write %s: %w", w.path, err)
	}
	if err := w.w.Flush(); err != nil {
		w.f.Abort()
		return fmt.Errorf("dedup: write %s: %w", w.path, err)
	}
	return w.f.Commit()
}

func (w *recWriter) abort() { w.f.Abort() }

// recReader streams the records of one record file.
type recReader struct {
	name    string
	kind    uint16
	params  []byte
	recSize int
	count   uint64
	sum     uint64
	dataOff int64
	ra      io.ReaderAt
	closer  io.Closer
	r       *bufio.Reader
	h       *xxh3.Hasher
	n       uint64
	buf     []byte
}

// openRec opens path and checks its header and footer against the wanted kind.
// recSize 0 accepts any record size (the caller validates it from params).
func openRec(path string, kind uint16, recSize int) (*recReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dedup: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("dedup: %w", err)
	}
	r, err := newRecReader(path, f, st.Size(), kind, recSize)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

func newRecReader(name string, ra io.ReaderAt, size int64, kind uint16, recSize int) (*recReader, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("dedup: %s is not a valid %s file: %s (the file is corrupt or truncated; regenerate it)", name, kindNames[kind], fmt.Sprintf(format, a...))
	}
	if size < recHeaderFixed+recFooterSize {
		return nil, bad("only %d bytes", size)
	}
	var hdr [recHeaderFixed]byte
	if _, err := ra.ReadAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("dedup: read %s: %w", name, err)
	}
	if string(hdr[:4]) != recMagic {
		return nil, bad("bad magic %q", hdr[:4])
	}
	if v := binary.LittleEndian.Uint16(hdr[4:]); v != recVersion {
		return nil, bad("version %d, this build reads version %d", v, recVersion)
	}
	if k := binary.LittleEndian.Uint16(hdr[6:]); k != kind {
		got := kindNames[k]
		if got == "" {
			got = fmt.Sprintf("unknown kind %d", k)
		}
		return nil, bad("it holds %s records", got)
	}
	rs := int(binary.LittleEndian.Uint32(hdr[8:]))
	if rs <= 0 || rs > maxRecordSize || (recSize != 0 && rs != recSize) {
		return nil, bad("record size %d", rs)
	}
	pl := int64(binary.LittleEndian.Uint32(hdr[12:]))
	if pl > maxParams || recHeaderFixed+pl+recFooterSize > size {
		return nil, bad("parameter block of %d bytes", pl)
	}
	params := make([]byte, pl)
	if _, err := ra.ReadAt(params, recHeaderFixed); err != nil {
		return nil, fmt.Errorf("dedup: read %s: %w", name, err)
	}
	var foot [recFooterSize]byte
	if _, err := ra.ReadAt(foot[:], size-recFooterSize); err != nil {
		return nil, fmt.Errorf("dedup: read %s: %w", name, err)
	}
	if string(foot[16:]) != recFooterMagic {
		return nil, bad("missing footer (truncated write?)")
	}
	count := binary.LittleEndian.Uint64(foot[0:])
	dataOff := recHeaderFixed + pl
	dataLen := size - recFooterSize - dataOff
	if dataLen%int64(rs) != 0 || uint64(dataLen/int64(rs)) != count {
		return nil, bad("footer says %d records of %d bytes but %d data bytes are present", count, rs, dataLen)
	}
	r := &recReader{
		name: name, kind: kind, params: params, recSize: rs, count: count,
		sum: binary.LittleEndian.Uint64(foot[8:]), dataOff: dataOff, ra: ra,
		r: bufio.NewReaderSize(io.NewSectionReader(ra, dataOff, dataLen), 1<<16),
		h: xxh3.New(), buf: make([]byte, rs),
	}
	r.h.Write(hdr[:])
	r.h.Write(params)
	return r, nil
}

// next returns the next record (valid until the following call) or io.EOF
// once all records are read and the checksum matched.
func (r *recReader) next() ([]byte, error) {
	if r.n == r.count {
		if r.h.Sum64() != r.sum {
			return nil, fmt.Errorf("dedup: %s: checksum mismatch over %d records (the file is corrupt; regenerate it)", r.name, r.count)
		}
		return nil, io.EOF
	}
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return nil, fmt.Errorf("dedup: read %s record %d: %w", r.name, r.n, err)
	}
	r.h.Write(r.buf)
	r.n++
	return r.buf, nil
}

// errOrder reports a sort-order violation at the record just read.
func (r *recReader) errOrder(what string) error {
	return fmt.Errorf("dedup: %s: record %d is out of order (%s); the file is corrupt, regenerate it", r.name, r.n-1, what)
}

func (r *recReader) close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// readAll reads every record of a reader with a decode callback.
func (r *recReader) each(fn func(rec []byte) error) error {
	for {
		rec, err := r.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}
