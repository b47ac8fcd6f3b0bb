package safetensors

// Whole-file helpers for the tests: herd itself streams tensors with
// Open/ReadFloat32 and NewWriter.

import (
	"bufio"
	"fmt"
	"io"

	"github.com/herdml/herd/internal/atomicfile"
)

// Tensor is an in-memory tensor for Write: F32 holds float32 values to be
// encoded as DType (F32, F16 or BF16), or Raw holds the stored bytes.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	F32   []float32
	Raw   []byte
}

// Write streams a complete safetensors file to w.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	specs := make([]TensorSpec, len(tensors))
	byName := make(map[string]int, len(tensors))
	for i, t := range tensors {
		specs[i] = TensorSpec{Name: t.Name, DType: t.DType, Shape: t.Shape}
		byName[t.Name] = i
	}
	bw := bufio.NewWriterSize(w, chunkBytes)
	sw, err := NewWriter(bw, specs, metadata)
	if err != nil {
		return err
	}
	for _, t := range sw.Order() {
		src := tensors[byName[t.Name]]
		if src.Raw != nil || !t.DType.Writable() {
			err = sw.WriteRaw(t.Name, src.Raw)
		} else {
			err = sw.WriteFloat32(t.Name, src.F32)
		}
		if err != nil {
			return err
		}
	}
	if err := sw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	return nil
}

// WriteFile atomically writes a complete safetensors file at path.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := Write(f, tensors, metadata); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Commit()
}

// ReadFile opens path and returns every floating-point tensor converted to
// float32, keyed by name. Intended for small files (tests, tools); use Open
// and ReadFloat32 to place large tensors into existing buffers.
func ReadFile(path string) (map[string][]float32, *Header, error) {
	f, err := Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	out := make(map[string][]float32, len(f.Tensors))
	for _, t := range f.Tensors {
		if !t.DType.IsFloat() {
			continue
		}
		v := make([]float32, t.Elements())
		if err := f.ReadFloat32(t.Name, v); err != nil {
			return nil, nil, err
		}
		out[t.Name] = v
	}
	h := f.Header
	return out, &h, nil
}

// NewReader validates the safetensors file held by ra (size bytes long);
// name is used in error messages. Tensors are read with ReadAt.
func NewReader(ra io.ReaderAt, size int64, name string) (*File, error) {
	return newFile(ra, size, name)
}

// ReadRaw copies the named tensor's bytes, as stored (little-endian), into
// dst, which must be exactly as long as the tensor's data.
func (f *File) ReadRaw(name string, dst []byte) error {
	t, err := f.lookup(name)
	if err != nil {
		return err
	}
	if int64(len(dst)) != t.Bytes() {
		return fmt.Errorf("safetensors file %s: tensor %q is %d bytes, destination holds %d", f.name, name, t.Bytes(), len(dst))
	}
	if f.data != nil {
		copy(dst, f.data[t.Begin:t.End])
		return nil
	}
	if err := readAt(f.ra, dst, f.DataOffset+t.Begin); err != nil {
		return fmt.Errorf("safetensors file %s: read tensor %q: %w", f.name, name, err)
	}
	return nil
}
