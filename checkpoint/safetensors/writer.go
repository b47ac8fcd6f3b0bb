package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
)

// TensorSpec declares a tensor to be written.
type TensorSpec struct {
	Name  string
	DType DType
	Shape []int
}

// Writer streams a safetensors file: NewWriter writes the header, then each
// tensor's data is written in the order given by Order, then Close checks
// that every tensor was written.
//
// Tensors are stored ordered by element size (largest first), then by name,
// as the reference implementation orders them; for a file with a single
// dtype this is plain name order. The header is padded with spaces to a
// multiple of 8 bytes so the data section starts 8-byte aligned.
type Writer struct {
	w       io.Writer
	order   []TensorInfo
	next    int
	scratch []byte
}

// NewWriter validates the tensor list, computes the layout and writes the
// header (with metadata, if non-nil, under "__metadata__").
func NewWriter(w io.Writer, specs []TensorSpec, metadata map[string]string) (*Writer, error) {
	order, err := plan(specs)
	if err != nil {
		return nil, err
	}
	hdr, err := encodeHeader(order, metadata)
	if err != nil {
		return nil, err
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return nil, fmt.Errorf("safetensors: write header: %w", err)
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("safetensors: write header: %w", err)
	}
	return &Writer{w: w, order: order}, nil
}

// plan validates specs and returns them in storage order with their data
// offsets. It is what NewWriter uses; callers may use it to size files.
func plan(specs []TensorSpec) ([]TensorInfo, error) {
	seen := make(map[string]bool, len(specs))
	order := make([]TensorInfo, 0, len(specs))
	for _, s := range specs {
		if s.Name == metadataKey {
			return nil, fmt.Errorf("safetensors: tensor name %q is reserved", s.Name)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("safetensors: tensor %q listed twice", s.Name)
		}
		seen[s.Name] = true
		if !s.DType.Valid() {
			return nil, fmt.Errorf("safetensors: tensor %q: unknown dtype %q", s.Name, s.DType)
		}
		if len(s.Shape) > maxRank {
			return nil, fmt.Errorf("safetensors: tensor %q has %d dimensions, more than %d", s.Name, len(s.Shape), maxRank)
		}
		n := int64(s.DType.Size())
		for _, d := range s.Shape {
			if d < 0 {
				return nil, fmt.Errorf("safetensors: tensor %q has negative dimension in shape %v", s.Name, s.Shape)
			}
			if d > 0 && n > (1<<62)/int64(d) {
				return nil, fmt.Errorf("safetensors: tensor %q of shape %v is too large", s.Name, s.Shape)
			}
			n *= int64(d)
		}
		order = append(order, TensorInfo{Name: s.Name, DType: s.DType, Shape: append([]int(nil), s.Shape...), End: n})
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if a.DType.Size() != b.DType.Size() {
			return a.DType.Size() > b.DType.Size()
		}
		return a.Name < b.Name
	})
	var pos int64
	for i := range order {
		n := order[i].End
		if pos > (1<<62)-n {
			return nil, errors.New("safetensors: total size of the tensors is too large")
		}
		order[i].Begin, order[i].End = pos, pos+n
		pos += n
	}
	return order, nil
}

// encodeHeader renders the JSON header, metadata first, then tensors in
// storage order, padded with spaces to a multiple of 8 bytes.
func encodeHeader(order []TensorInfo, metadata map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if metadata != nil {
		m, err := json.Marshal(metadata)
		if err != nil {
			return nil, fmt.Errorf("safetensors: metadata: %w", err)
		}
		b.WriteString(`"` + metadataKey + `":`)
		b.Write(m)
	}
	for i, t := range order {
		if i > 0 || metadata != nil {
			b.WriteByte(',')
		}
		name, err := json.Marshal(t.Name)
		if err != nil {
			return nil, fmt.Errorf("safetensors: tensor name %q: %w", t.Name, err)
		}
		b.Write(name)
		b.WriteString(`:{"dtype":"` + string(t.DType) + `","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, t.Begin, t.End)
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > maxHeaderBytes {
		return nil, fmt.Errorf("safetensors: header would be %d bytes, more than the %d allowed", b.Len(), maxHeaderBytes)
	}
	return b.Bytes(), nil
}

// Order is the sequence in which tensor data must be written, with the
// offsets recorded in the header.
func (w *Writer) Order() []TensorInfo { return w.order }

func (w *Writer) expect(name string, n int64, unit string) (TensorInfo, error) {
	if w.next >= len(w.order) {
		return TensorInfo{}, fmt.Errorf("safetensors: tensor %q written but every declared tensor is already written", name)
	}
	t := w.order[w.next]
	if t.Name != name {
		return TensorInfo{}, fmt.Errorf("safetensors: tensor %q written out of order; the next tensor is %q (see Writer.Order)", name, t.Name)
	}
	want := t.Elements()
	if unit == "bytes" {
		want = t.Bytes()
	}
	if n != want {
		return TensorInfo{}, fmt.Errorf("safetensors: tensor %q has %d %s, the header declares %d", name, n, unit, want)
	}
	return t, nil
}

// WriteFloat32 encodes src as the next tensor, converting to its dtype
// (F32, F16 or BF16, rounding to nearest even).
func (w *Writer) WriteFloat32(name string, src []float32) error {
	t, err := w.expect(name, int64(len(src)), "elements")
	if err != nil {
		return err
	}
	if !t.DType.Writable() {
		return fmt.Errorf("safetensors: tensor %q: cannot encode float32 as %s; use WriteRaw", name, t.DType)
	}
	size := t.DType.Size()
	per := chunkBytes / size
	if w.scratch == nil {
		w.scratch = make([]byte, chunkBytes)
	}
	for len(src) > 0 {
		k := min(per, len(src))
		b := w.scratch[:k*size]
		if err := encodeFloats(b, src[:k], t.DType); err != nil {
			return err
		}
		if _, err := w.w.Write(b); err != nil {
			return fmt.Errorf("safetensors: write tensor %q: %w", name, err)
		}
		src = src[k:]
	}
	w.next++
	return nil
}

// WriteRaw writes the next tensor's bytes as stored (little-endian).
func (w *Writer) WriteRaw(name string, data []byte) error {
	if _, err := w.expect(name, int64(len(data)), "bytes"); err != nil {
		return err
	}
	if _, err := w.w.Write(data); err != nil {
		return fmt.Errorf("safetensors: write tensor %q: %w", name, err)
	}
	w.next++
	return nil
}

// Close reports an error if a declared tensor was not written. It does not
// close the underlying writer.
func (w *Writer) Close() error {
	if w.next < len(w.order) {
		return fmt.Errorf("safetensors: %d of %d tensors not written (next: %q)", len(w.order)-w.next, len(w.order), w.order[w.next].Name)
	}
	return nil
}
