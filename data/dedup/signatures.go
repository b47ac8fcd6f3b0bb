package dedup

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
)

// Signature files (stage 1 of distributed MinHash) are record files of
// kind "signature": params = n-gram u32 | char shingles u32 | bands u32 |
// rows u32 | seed u64, records = id u64 | Bands×Rows u64 values, ids
// strictly increasing within a file.

const sigParamsSize = 24

func sigParams(c MinHashConfig) []byte {
	p := make([]byte, sigParamsSize)
	binary.LittleEndian.PutUint32(p[0:], uint32(c.NGram))
	if c.CharShingles {
		binary.LittleEndian.PutUint32(p[4:], 1)
	}
	binary.LittleEndian.PutUint32(p[8:], uint32(c.Bands))
	binary.LittleEndian.PutUint32(p[12:], uint32(c.Rows))
	binary.LittleEndian.PutUint64(p[16:], c.Seed)
	return p
}

// parseSigParams reads the hashing parameters of a signature or band file.
func parseSigParams(name string, p []byte) (MinHashConfig, error) {
	if len(p) < sigParamsSize {
		return MinHashConfig{}, fmt.Errorf("dedup: %s: parameter block of %d bytes, want %d (corrupt file; regenerate it)", name, len(p), sigParamsSize)
	}
	c := MinHashConfig{
		NGram:        int(binary.LittleEndian.Uint32(p[0:])),
		CharShingles: binary.LittleEndian.Uint32(p[4:]) != 0,
		Bands:        int(binary.LittleEndian.Uint32(p[8:])),
		Rows:         int(binary.LittleEndian.Uint32(p[12:])),
		Seed:         binary.LittleEndian.Uint64(p[16:]),
		Threshold:    -1, MaxCompare: 1,
	}
	if err := c.validate(); err != nil {
		return c, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// sameHashing reports whether two configs produce comparable signatures.
func sameHashing(a, b MinHashConfig) bool {
	return a.NGram == b.NGram && a.CharShingles == b.CharShingles && a.Bands == b.Bands && a.Rows == b.Rows && a.Seed == b.Seed
}

// SignatureWriter writes one worker's signature file (stage 1). Ids must
// strictly increase within a file.
type SignatureWriter struct {
	w    *recWriter
	mh   *MinHasher
	rec  []byte
	last uint64
	n    int64
}

// NewSignatureWriter starts the signature file path for cfg.
func NewSignatureWriter(path string, cfg MinHashConfig) (*SignatureWriter, error) {
	mh, err := NewMinHasher(cfg)
	if err != nil {
		return nil, err
	}
	k := mh.Size()
	w, err := createRec(path, kindSignatures, 8+8*k, sigParams(mh.cfg))
	if err != nil {
		return nil, err
	}
	return &SignatureWriter{w: w, mh: mh, rec: make([]byte, 8+8*k)}, nil
}

// Add writes a precomputed signature (from a MinHasher with the same config).
func (s *SignatureWriter) Add(id uint64, sig []uint64) error {
	if len(sig) != s.mh.Size() {
		return fmt.Errorf("dedup: signature file %s: signature of %d values, want %d", s.w.path, len(sig), s.mh.Size())
	}
	if s.n > 0 && id <= s.last {
		return fmt.Errorf("dedup: signature file %s: id %d after %d; ids must strictly increase within a file", s.w.path, id, s.last)
	}
	binary.LittleEndian.PutUint64(s.rec, id)
	for i, v := range sig {
		binary.LittleEndian.PutUint64(s.rec[8+8*i:], v)
	}
	s.last = id
	s.n++
	return s.w.write(s.rec)
}

// Commit finishes the file atomically.
func (s *SignatureWriter) Commit() error { return s.w.commit() }

// Abort discards the file.
func (s *SignatureWriter) Abort() { s.w.abort() }

// signatureReader streams a signature file.
type signatureReader struct {
	r    *recReader
	cfg  MinHashConfig
	sig  []uint64
	last uint64
}

// openSignatures opens a signature file.
func openSignatures(path string) (*signatureReader, error) {
	r, err := openRec(path, kindSignatures, 0)
	if err != nil {
		return nil, err
	}
	sr, err := newSignatureReader(r)
	if err != nil {
		r.close()
		return nil, err
	}
	return sr, nil
}

func newSignatureReader(r *recReader) (*signatureReader, error) {
	cfg, err := parseSigParams(r.name, r.params)
	if err != nil {
		return nil, err
	}
	if k := cfg.Bands * cfg.Rows; r.recSize != 8+8*k {
		return nil, fmt.Errorf("dedup: %s: records of %d bytes do not hold %d hashes (corrupt file; regenerate it)", r.name, r.recSize, k)
	}
	return &signatureReader{r: r, cfg: cfg, sig: make([]uint64, cfg.Bands*cfg.Rows)}, nil
}

// Len is the number of signatures in the file.
func (s *signatureReader) Len() int64 { return int64(s.r.count) }

// Next returns the next id and signature (valid until the next call), or
// io.EOF after the last.
func (s *signatureReader) Next() (uint64, []uint64, error) {
	b, err := s.r.next()
	if err != nil {
		return 0, nil, err
	}
	id := binary.LittleEndian.Uint64(b)
	if s.r.n > 1 && id <= s.last {
		return 0, nil, s.r.errOrder("ids must strictly increase")
	}
	s.last = id
	for i := range s.sig {
		s.sig[i] = binary.LittleEndian.Uint64(b[8+8*i:])
	}
	return id, s.sig, nil
}

// Close closes the file.
func (s *signatureReader) Close() error { return s.r.close() }

// SignatureIndex looks signatures up by id across signature files, for
// verifying candidate pairs. It keeps the ids in memory (8 bytes per
// document plus a file number) and reads signatures with ReadAt.
type SignatureIndex struct {
	cfg   MinHashConfig
	files []*os.File
	names []string
	offs  []int64
	ids   []uint64
	where []uint32 // file index per ids entry
	pos   []uint32 // record index within that file
	rec   []byte
}

// OpenSignatureIndex indexes signature files that share one configuration.
// It reads each file once, checking its checksum.
func OpenSignatureIndex(paths []string) (*SignatureIndex, error) {
	x := &SignatureIndex{}
	type entry struct {
		id   uint64
		file uint32
		pos  uint32
	}
	var all []entry
	for fi, p := range paths {
		sr, err := openSignatures(p)
		if err != nil {
			x.Close()
			return nil, err
		}
		if fi == 0 {
			x.cfg = sr.cfg
		} else if !sameHashing(x.cfg, sr.cfg) {
			sr.Close()
			x.Close()
			return nil, fmt.Errorf("dedup: %s was written with different MinHash settings than %s", p, paths[0])
		}
		if sr.Len() >= 1<<32 {
			sr.Close()
			x.Close()
			return nil, fmt.Errorf("dedup: %s holds %d signatures; split it (at most 2³² per file)", p, sr.Len())
		}
		for pos := uint32(0); ; pos++ {
			id, _, err := sr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				sr.Close()
				x.Close()
				return nil, err
			}
			all = append(all, entry{id, uint32(fi), pos})
		}
		x.files = append(x.files, sr.r.closer.(*os.File))
		x.names = append(x.names, p)
		x.offs = append(x.offs, sr.r.dataOff)
	}
	slices.SortFunc(all, func(a, b entry) int { return cmpU64(a.id, b.id) })
	x.ids = make([]uint64, len(all))
	x.where = make([]uint32, len(all))
	x.pos = make([]uint32, len(all))
	for i, e := range all {
		if i > 0 && e.id == all[i-1].id {
			x.Close()
			return nil, fmt.Errorf("dedup: document id %d has signatures in both %s and %s", e.id, paths[all[i-1].file], paths[e.file])
		}
		x.ids[i], x.where[i], x.pos[i] = e.id, e.file, e.pos
	}
	x.rec = make([]byte, 8+8*x.cfg.Bands*x.cfg.Rows)
	return x, nil
}

// Lookup reads the signature of id into dst; ok is false if id is unknown.
func (x *SignatureIndex) Lookup(id uint64, dst []uint64) ([]uint64, bool, error) {
	i, found := slices.BinarySearch(x.ids, id)
	if !found {
		return dst, false, nil
	}
	f := x.where[i]
	off := x.offs[f] + int64(x.pos[i])*int64(len(x.rec))
	if _, err := x.files[f].ReadAt(x.rec, off); err != nil {
		return dst, false, fmt.Errorf("dedup: read signature of %d from %s: %w", id, x.names[f], err)
	}
	if got := binary.LittleEndian.Uint64(x.rec); got != id {
		return dst, false, fmt.Errorf("dedup: %s changed while indexed (id %d where %d was)", x.names[f], got, id)
	}
	k := (len(x.rec) - 8) / 8
	if cap(dst) < k {
		dst = make([]uint64, k)
	}
	dst = dst[:k]
	for j := range dst {
		dst[j] = binary.LittleEndian.Uint64(x.rec[8+8*j:])
	}
	return dst, true, nil
}

// Close closes the files.
func (x *SignatureIndex) Close() error {
	var first error
	for _, f := range x.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	x.files = nil
	return first
}
