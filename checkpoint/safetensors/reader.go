package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// chunkBytes bounds the scratch buffer used when streaming a tensor that
// is not memory-mapped.
const chunkBytes = 1 << 20

// File is an open safetensors file. Its methods may be called from several
// goroutines at once.
type File struct {
	Header
	name  string
	ra    io.ReaderAt
	data  []byte // the memory-mapped data section, or nil when streaming
	unmap func() error
	file  *os.File
}

// Open opens and validates a safetensors file, memory-mapping it read-only
// where the platform supports it.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	sf, err := newFile(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	sf.file = f
	if st.Size() > 0 {
		if m, unmap, err := mmapFile(f, st.Size()); err == nil {
			sf.data = m[sf.DataOffset:]
			sf.unmap = unmap
		}
	}
	return sf, nil
}

func newFile(ra io.ReaderAt, size int64, name string) (*File, error) {
	fail := func(err error) (*File, error) { return nil, fmt.Errorf("safetensors file %s: %w", name, err) }
	if size < 8 {
		return fail(fmt.Errorf("file is %d bytes, too short for the 8-byte header length", size))
	}
	var lenBuf [8]byte
	if err := readAt(ra, lenBuf[:], 0); err != nil {
		return fail(fmt.Errorf("read header length: %w", err))
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxHeaderBytes {
		return fail(fmt.Errorf("header length %d exceeds the %d-byte limit (not a safetensors file?)", n, maxHeaderBytes))
	}
	if n > uint64(size-8) {
		return fail(fmt.Errorf("header length %d reaches past the end of the %d-byte file (truncated or not a safetensors file)", n, size))
	}
	js := make([]byte, n)
	if err := readAt(ra, js, 8); err != nil {
		return fail(fmt.Errorf("read header: %w", err))
	}
	h, err := parseHeader(js, size-8-int64(n))
	if err != nil {
		return fail(err)
	}
	h.DataOffset = 8 + int64(n)
	return &File{Header: *h, name: name, ra: ra}, nil
}

// Close releases the mapping and the file.
func (f *File) Close() error {
	var errs []error
	if f.unmap != nil {
		errs = append(errs, f.unmap())
		f.unmap, f.data = nil, nil
	}
	if f.file != nil {
		errs = append(errs, f.file.Close())
		f.file = nil
	}
	return errors.Join(errs...)
}

func (f *File) lookup(name string) (TensorInfo, error) {
	t, ok := f.Lookup(name)
	if !ok {
		return TensorInfo{}, fmt.Errorf("safetensors file %s: no tensor %q", f.name, name)
	}
	return t, nil
}

// ReadFloat32 converts the named tensor of any floating-point dtype (F32,
// F16, BF16, F64, F8_E4M3, F8_E5M2, F8_E8M0) into dst, which must hold
// exactly its number of elements.
func (f *File) ReadFloat32(name string, dst []float32) error {
	t, err := f.lookup(name)
	if err != nil {
		return err
	}
	if int64(len(dst)) != t.Elements() {
		return fmt.Errorf("safetensors file %s: tensor %q has %d elements, destination holds %d", f.name, name, t.Elements(), len(dst))
	}
	if !t.DType.IsFloat() {
		return fmt.Errorf("safetensors file %s: tensor %q: dtype %s is not a floating-point type; read its bytes with ReadRaw", f.name, name, t.DType)
	}
	size := int64(t.DType.Size())
	if f.data != nil {
		return decodeFloats(dst, f.data[t.Begin:t.End], t.DType)
	}
	per := chunkBytes / size
	buf := make([]byte, min(t.Bytes(), per*size))
	for done := int64(0); done < int64(len(dst)); {
		k := min(per, int64(len(dst))-done)
		b := buf[:k*size]
		if err := readAt(f.ra, b, f.DataOffset+t.Begin+done*size); err != nil {
			return fmt.Errorf("safetensors file %s: read tensor %q: %w", f.name, name, err)
		}
		if err := decodeFloats(dst[done:done+k], b, t.DType); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// readAt fills p from off, accepting io.EOF together with a full read as
// io.ReaderAt permits.
func readAt(ra io.ReaderAt, p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	n, err := ra.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
