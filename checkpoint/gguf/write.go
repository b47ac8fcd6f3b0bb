package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"reflect"
)

// fileWriter streams a GGUF file: the header (metadata and tensor infos) is
// written by newFileWriter, then the tensors' data in the order they were
// given (BeginTensor, then Write to stream its bytes), then Close
// pads the end.
type fileWriter struct {
	w       *bufio.Writer
	tensors []tensorInfo
	next    int    // index of the next tensor to write
	pos     uint64 // bytes written into the data section
	left    uint64 // bytes the open tensor still needs
	open    bool   // a tensor was begun
	err     error
}

// newFileWriter writes the header of a GGUF v3 file with the given metadata
// and tensors (their Offset fields are computed here) to w.
func newFileWriter(w io.Writer, kvs []metaKV, tensors []tensorInfo) (*fileWriter, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	gw := &fileWriter{w: bw, tensors: make([]tensorInfo, len(tensors))}
	copy(gw.tensors, tensors)
	names := make(map[string]bool, len(tensors))
	var off uint64
	for i := range gw.tensors {
		t := &gw.tensors[i]
		if names[t.Name] {
			return nil, fmt.Errorf("gguf: tensor %s given twice", t.Name)
		}
		names[t.Name] = true
		if !t.Type.known() {
			return nil, fmt.Errorf("gguf: tensor %s: %v is not a type herd writes", t.Name, t.Type)
		}
		if len(t.Dims) == 0 || t.Dims[0]%uint64(t.Type.blockSize()) != 0 {
			return nil, fmt.Errorf("gguf: tensor %s: dims %v do not split into %v blocks of %d", t.Name, t.Dims, t.Type, t.Type.blockSize())
		}
		off = align(off, ggufAlignment)
		t.Offset = off
		off += t.bytes()
	}
	keys := make(map[string]bool, len(kvs))
	gw.raw([]byte(ggufMagic))
	gw.u32(ggufVersion)
	gw.u64(uint64(len(tensors)))
	gw.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		if keys[kv.Key] {
			return nil, fmt.Errorf("gguf: metadata key %s given twice", kv.Key)
		}
		keys[kv.Key] = true
		gw.str(kv.Key)
		if err := gw.value(kv.Value); err != nil {
			return nil, fmt.Errorf("gguf: metadata %s: %w", kv.Key, err)
		}
	}
	for _, t := range gw.tensors {
		gw.str(t.Name)
		gw.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			gw.u64(d)
		}
		gw.u32(uint32(t.Type))
		gw.u64(t.Offset)
	}
	gw.pad(gw.headerLen(kvs))
	return gw, gw.err
}

// headerLen is the size of the header newFileWriter wrote (before padding).
func (g *fileWriter) headerLen(kvs []metaKV) uint64 {
	// Recomputed rather than counted so that pad does not depend on the
	// buffered writer's state.
	n := uint64(4 + 4 + 8 + 8)
	for _, kv := range kvs {
		n += 8 + uint64(len(kv.Key)) + valueLen(kv.Value)
	}
	for _, t := range g.tensors {
		n += 8 + uint64(len(t.Name)) + 4 + 8*uint64(len(t.Dims)) + 4 + 8
	}
	return n
}

// pad writes zeros up to the next multiple of Alignment after n bytes.
func (g *fileWriter) pad(n uint64) {
	var zeros [ggufAlignment]byte
	g.raw(zeros[:align(n, ggufAlignment)-n])
}

// BeginTensor starts the data of the next tensor, which must be named
// name; Write then streams its bytes, exactly its size in all.
func (g *fileWriter) BeginTensor(name string) error {
	if g.err != nil {
		return g.err
	}
	if err := g.finishTensor(); err != nil {
		return err
	}
	if g.next >= len(g.tensors) {
		return fmt.Errorf("gguf: tensor %s written after all %d tensors", name, len(g.tensors))
	}
	t := g.tensors[g.next]
	if t.Name != name {
		return fmt.Errorf("gguf: tensor %s written where %s comes next", name, t.Name)
	}
	var zeros [ggufAlignment]byte
	g.raw(zeros[:t.Offset-g.pos])
	g.pos = t.Offset
	g.left = t.bytes()
	g.next++
	g.open = true
	return g.err
}

// Write writes bytes of the tensor begun by BeginTensor.
func (g *fileWriter) Write(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if !g.open || uint64(len(p)) > g.left {
		return 0, fmt.Errorf("gguf: %d bytes written beyond the size of tensor %s", len(p), g.tensors[max(g.next-1, 0)].Name)
	}
	g.raw(p)
	g.left -= uint64(len(p))
	g.pos += uint64(len(p))
	return len(p), g.err
}

// finishTensor checks that the open tensor got all its bytes.
func (g *fileWriter) finishTensor() error {
	if g.open && g.left != 0 {
		t := g.tensors[g.next-1]
		return fmt.Errorf("gguf: tensor %s got %d of its %d bytes", t.Name, t.bytes()-g.left, t.bytes())
	}
	g.open = false
	return nil
}

// Close pads the data section and flushes; every tensor must have been
// written.
func (g *fileWriter) Close() error {
	if g.err != nil {
		return g.err
	}
	if err := g.finishTensor(); err != nil {
		return err
	}
	if g.next != len(g.tensors) {
		return fmt.Errorf("gguf: %d of %d tensors written (next: %s)", g.next, len(g.tensors), g.tensors[g.next].Name)
	}
	g.pad(g.pos)
	if g.err != nil {
		return g.err
	}
	return g.w.Flush()
}

func (g *fileWriter) raw(b []byte) {
	if g.err == nil {
		_, g.err = g.w.Write(b)
	}
}

func (g *fileWriter) u32(v uint32) { g.raw(binary.LittleEndian.AppendUint32(nil, v)) }
func (g *fileWriter) u64(v uint64) { g.raw(binary.LittleEndian.AppendUint64(nil, v)) }
func (g *fileWriter) str(s string) { g.u64(uint64(len(s))); g.raw([]byte(s)) }

// value writes a metadata value with its type.
func (g *fileWriter) value(v any) error {
	vt, err := valueType(v)
	if err != nil {
		return err
	}
	g.u32(vt)
	switch x := v.(type) {
	case []string:
		g.u32(tString)
		g.u64(uint64(len(x)))
		for _, s := range x {
			g.str(s)
		}
		return nil
	case string:
		g.str(x)
		return nil
	}
	if vt == tArray {
		et, n, b := arrayBytes(v)
		g.u32(et)
		g.u64(uint64(n))
		g.raw(b)
		return nil
	}
	b, _ := binary.Append(nil, binary.LittleEndian, v)
	g.raw(b)
	return nil
}

// valueType is the GGUF value type of a Go value.
func valueType(v any) (uint32, error) {
	switch v.(type) {
	case uint8:
		return tUint8, nil
	case int8:
		return tInt8, nil
	case uint16:
		return tUint16, nil
	case int16:
		return tInt16, nil
	case uint32:
		return tUint32, nil
	case int32:
		return tInt32, nil
	case float32:
		return tFloat32, nil
	case bool:
		return tBool, nil
	case string:
		return tString, nil
	case uint64:
		return tUint64, nil
	case int64:
		return tInt64, nil
	case float64:
		return tFloat64, nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice {
		if et, err := valueType(reflect.Zero(rv.Type().Elem()).Interface()); err == nil && et != tString && et != tArray {
			return tArray, nil
		}
	}
	if _, ok := v.([]string); ok {
		return tArray, nil
	}
	return 0, fmt.Errorf("value of Go type %T has no GGUF type", v)
}

// arrayBytes encodes a slice of fixed-size values: element type, length,
// little-endian bytes.
func arrayBytes(v any) (uint32, int, []byte) {
	rv := reflect.ValueOf(v)
	et, _ := valueType(reflect.Zero(rv.Type().Elem()).Interface())
	b, _ := binary.Append(nil, binary.LittleEndian, v)
	return et, rv.Len(), b
}

// valueLen is the encoded size of a metadata value with its type tag.
func valueLen(v any) uint64 {
	switch x := v.(type) {
	case string:
		return 4 + 8 + uint64(len(x))
	case []string:
		n := uint64(4 + 4 + 8)
		for _, s := range x {
			n += 8 + uint64(len(s))
		}
		return n
	}
	vt, _ := valueType(v)
	if vt == tArray {
		_, _, b := arrayBytes(v)
		return 4 + 4 + 8 + uint64(len(b))
	}
	return 4 + uint64(binary.Size(v))
}

// f32bytes appends the little-endian bytes of x to dst.
func f32bytes(dst []byte, x []float32) []byte {
	for _, v := range x {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
	}
	return dst
}
