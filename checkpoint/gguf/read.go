package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"unicode/utf8"
)

// maxDims is ggml's GGML_MAX_DIMS.
const maxDims = 4

// value is a decoded metadata value: a scalar (uint8 … float64, bool), a
// string, []string, or an array of fixed-size values kept as raw bytes.
type value struct {
	typ  uint32 // GGUF value type
	elem uint32 // element type of an array
	n    uint64 // array length
	v    any    // scalar, string, []string, or []byte (raw array)
}

// header is the parsed front of a GGUF file.
type header struct {
	keys      []string
	kv        map[string]*value
	tensors   []tensorInfo
	byName    map[string]int
	dataStart int64 // file offset of the data section
	size      int64 // file size
}

// formatError is a problem with the file's bytes.
type formatError struct {
	off int64
	msg string
}

func (e *formatError) Error() string {
	return fmt.Sprintf("not a valid GGUF file: %s (at byte %d)", e.msg, e.off)
}

// hreader reads the header sequentially, knowing how many bytes remain so
// that no count or length read from the file can ask for more memory than
// the file could hold.
type hreader struct {
	r    *bufio.Reader
	pos  int64
	size int64
	err  error
	buf  [8]byte
}

func (h *hreader) fail(format string, a ...any) {
	if h.err == nil {
		h.err = &formatError{off: h.pos, msg: fmt.Sprintf(format, a...)}
	}
}

func (h *hreader) left() int64 { return h.size - h.pos }

func (h *hreader) read(b []byte) bool {
	if h.err != nil {
		return false
	}
	if int64(len(b)) > h.left() {
		h.fail("the file ends early (%d bytes needed, %d left)", len(b), h.left())
		return false
	}
	if _, err := io.ReadFull(h.r, b); err != nil {
		h.err = fmt.Errorf("read GGUF header: %w", err)
		return false
	}
	h.pos += int64(len(b))
	return true
}

func (h *hreader) u32() uint32 {
	if !h.read(h.buf[:4]) {
		return 0
	}
	return binary.LittleEndian.Uint32(h.buf[:4])
}

func (h *hreader) u64() uint64 {
	if !h.read(h.buf[:8]) {
		return 0
	}
	return binary.LittleEndian.Uint64(h.buf[:8])
}

// count reads a u64 count of items of at least minSize bytes each and
// checks that they fit in the rest of the file.
func (h *hreader) count(what string, minSize int64) uint64 {
	n := h.u64()
	if h.err == nil && (n > uint64(h.left()) || int64(n)*minSize > h.left()) {
		h.fail("%s count %d does not fit in the %d bytes left", what, n, h.left())
		return 0
	}
	return n
}

func (h *hreader) str(what string) string {
	n := h.count(what+" length", 1)
	if h.err != nil {
		return ""
	}
	b := make([]byte, n)
	if !h.read(b) {
		return ""
	}
	return string(b)
}

// readHeader parses the header of a GGUF file of the given size.
func readHeader(r io.ReaderAt, size int64) (*header, error) {
	h := &hreader{r: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16), size: size}
	var magic [4]byte
	if !h.read(magic[:]) || string(magic[:]) != ggufMagic {
		return nil, &formatError{0, fmt.Sprintf("it does not start with %q", ggufMagic)}
	}
	if v := h.u32(); h.err == nil && v != ggufVersion {
		return nil, &formatError{4, fmt.Sprintf("GGUF version %d; herd reads version %d (re-convert with a current llama.cpp)", v, ggufVersion)}
	}
	nt := h.count("tensor", 24)
	nkv := h.count("metadata", 13)
	if h.err != nil {
		return nil, h.err
	}
	hd := &header{kv: make(map[string]*value, nkv), byName: make(map[string]int, nt), size: size}
	for range nkv {
		key := h.str("key")
		val := h.value(key)
		if h.err != nil {
			return nil, h.err
		}
		if _, dup := hd.kv[key]; dup {
			h.fail("metadata key %q appears twice", key)
			return nil, h.err
		}
		hd.keys = append(hd.keys, key)
		hd.kv[key] = val
	}
	alignment := uint64(ggufAlignment)
	if v, ok := hd.kv["general.alignment"]; ok {
		a, ok := v.v.(uint32)
		if !ok || a == 0 || a&(a-1) != 0 {
			return nil, &formatError{h.pos, fmt.Sprintf("general.alignment must be a u32 power of two, got %v", v.v)}
		}
		alignment = uint64(a)
	}
	hd.tensors = make([]tensorInfo, 0, nt)
	for range nt {
		var t tensorInfo
		t.Name = h.str("tensor name")
		nd := h.u32()
		if h.err == nil && (nd == 0 || nd > maxDims) {
			h.fail("tensor %q has %d dims (1 to %d allowed)", t.Name, nd, maxDims)
		}
		for range nd {
			if h.err != nil {
				break
			}
			t.Dims = append(t.Dims, h.u64())
		}
		t.Type = Type(h.u32())
		t.Offset = h.u64()
		if h.err != nil {
			return nil, h.err
		}
		if _, dup := hd.byName[t.Name]; dup {
			h.fail("tensor %q appears twice", t.Name)
			return nil, h.err
		}
		hd.byName[t.Name] = len(hd.tensors)
		hd.tensors = append(hd.tensors, t)
	}
	hd.dataStart = int64(align(uint64(h.pos), alignment))
	if hd.dataStart > size && nt > 0 {
		return nil, &formatError{h.pos, "the file ends before its data section"}
	}
	dataLen := uint64(size - min(hd.dataStart, size))
	for _, t := range hd.tensors {
		if !t.Type.known() {
			continue // reported when the tensor is read
		}
		n, ok := uint64(1), true
		for _, d := range t.Dims {
			hi, lo := bits.Mul64(n, d)
			ok = ok && hi == 0
			n = lo
		}
		bs := uint64(t.Type.blockSize())
		if !ok || n%bs != 0 || t.Dims[0]%bs != 0 {
			return nil, &formatError{h.pos, fmt.Sprintf("tensor %q has dims %v, which do not split into %v blocks", t.Name, t.Dims, t.Type)}
		}
		nb := n / bs * uint64(t.Type.blockBytes())
		if t.Offset%alignment != 0 || t.Offset > dataLen || nb > dataLen-t.Offset {
			return nil, &formatError{h.pos, fmt.Sprintf("tensor %q (%d bytes at data offset %d) lies outside the %d bytes of data (truncated file?)", t.Name, nb, t.Offset, dataLen)}
		}
	}
	return hd, nil
}

// value reads one typed metadata value.
func (h *hreader) value(key string) *value {
	vt := h.u32()
	if h.err != nil {
		return nil
	}
	switch sz := scalarSize(vt); {
	case sz < 0:
		h.fail("metadata %q has unknown value type %d", key, vt)
		return nil
	case vt == tString:
		s := h.str(key)
		return &value{typ: vt, v: s}
	case vt == tArray:
		et := h.u32()
		esz := scalarSize(et)
		switch {
		case h.err != nil:
			return nil
		case esz < 0 || et == tArray:
			h.fail("metadata %q is an array of unsupported type %d", key, et)
			return nil
		case et == tString:
			n := h.count(key+" array", 8)
			if h.err != nil {
				return nil
			}
			ss := make([]string, 0, n)
			for range n {
				ss = append(ss, h.str(key+" element"))
				if h.err != nil {
					return nil
				}
			}
			return &value{typ: vt, elem: et, n: n, v: ss}
		default:
			n := h.count(key+" array", int64(esz))
			if h.err != nil {
				return nil
			}
			b := make([]byte, n*uint64(esz))
			h.read(b)
			return &value{typ: vt, elem: et, n: n, v: b}
		}
	default:
		b := h.buf[:sz]
		if !h.read(b) {
			return nil
		}
		return &value{typ: vt, v: scalar(vt, b)}
	}
}

// scalar decodes a fixed-size value.
func scalar(vt uint32, b []byte) any {
	le := binary.LittleEndian
	switch vt {
	case tUint8:
		return b[0]
	case tInt8:
		return int8(b[0])
	case tBool:
		return b[0] != 0
	case tUint16:
		return le.Uint16(b)
	case tInt16:
		return int16(le.Uint16(b))
	case tUint32:
		return le.Uint32(b)
	case tInt32:
		return int32(le.Uint32(b))
	case tFloat32:
		return math.Float32frombits(le.Uint32(b))
	case tUint64:
		return le.Uint64(b)
	case tInt64:
		return int64(le.Uint64(b))
	case tFloat64:
		return math.Float64frombits(le.Uint64(b))
	}
	return nil
}

// errMissing reports a required key that is absent.
var errMissing = errors.New("missing")

// str returns a string value.
func (hd *header) str(key string) (string, error) {
	v, ok := hd.kv[key]
	if !ok {
		return "", fmt.Errorf("%s: %w", key, errMissing)
	}
	s, ok := v.v.(string)
	if !ok || v.typ != tString {
		return "", fmt.Errorf("%s must be a string", key)
	}
	return s, nil
}

// uint returns an unsigned or non-negative integer value.
func (hd *header) uint(key string) (uint64, error) {
	v, ok := hd.kv[key]
	if !ok {
		return 0, fmt.Errorf("%s: %w", key, errMissing)
	}
	switch x := v.v.(type) {
	case uint8:
		return uint64(x), nil
	case uint16:
		return uint64(x), nil
	case uint32:
		return uint64(x), nil
	case uint64:
		return x, nil
	case int8:
		if x >= 0 {
			return uint64(x), nil
		}
	case int16:
		if x >= 0 {
			return uint64(x), nil
		}
	case int32:
		if x >= 0 {
			return uint64(x), nil
		}
	case int64:
		if x >= 0 {
			return uint64(x), nil
		}
	}
	return 0, fmt.Errorf("%s must be a non-negative integer, got %v", key, v.v)
}

// float returns a floating-point value.
func (hd *header) float(key string) (float64, error) {
	v, ok := hd.kv[key]
	if !ok {
		return 0, fmt.Errorf("%s: %w", key, errMissing)
	}
	switch x := v.v.(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	}
	return 0, fmt.Errorf("%s must be a float, got %v", key, v.v)
}

// strings returns an array of strings.
func (hd *header) strings(key string) ([]string, error) {
	v, ok := hd.kv[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, errMissing)
	}
	ss, ok := v.v.([]string)
	if !ok {
		return nil, fmt.Errorf("%s must be an array of strings", key)
	}
	for i, s := range ss {
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("%s[%d] is not valid UTF-8", key, i)
		}
	}
	return ss, nil
}

// ints returns an array of integers (any integer element type).
func (hd *header) ints(key string) ([]int64, error) {
	v, ok := hd.kv[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, errMissing)
	}
	b, ok := v.v.([]byte)
	if !ok {
		return nil, fmt.Errorf("%s must be an array of integers", key)
	}
	out := make([]int64, v.n)
	esz := uint64(scalarSize(v.elem))
	for i := range out {
		switch x := scalar(v.elem, b[uint64(i)*esz:]).(type) {
		case uint8:
			out[i] = int64(x)
		case int8:
			out[i] = int64(x)
		case uint16:
			out[i] = int64(x)
		case int16:
			out[i] = int64(x)
		case uint32:
			out[i] = int64(x)
		case int32:
			out[i] = int64(x)
		case uint64:
			out[i] = int64(min(x, math.MaxInt64))
		case int64:
			out[i] = x
		default:
			return nil, fmt.Errorf("%s must be an array of integers", key)
		}
	}
	return out, nil
}

// readTensor decodes tensor t of the file into x (len(x) values), read in
// chunks of whole rows. heads > 0 undoes the RoPE row permutation of a q
// or k matrix of rows rows (see hfRow).
func readTensor(r io.ReaderAt, hd *header, t tensorInfo, x []float32, rows, heads int) error {
	if !t.Type.known() {
		return fmt.Errorf("tensor %s is of type %v; herd reads F32, F16, BF16 and Q8_0 (re-export or requantize the model to one of them)", t.Name, t.Type)
	}
	if t.elems() != uint64(len(x)) || rows < 1 || len(x)%rows != 0 {
		return fmt.Errorf("tensor %s has %d values, expected %d", t.Name, t.elems(), len(x))
	}
	cols := len(x) / rows
	bs, bb := t.Type.blockSize(), t.Type.blockBytes()
	if cols%bs != 0 {
		return fmt.Errorf("tensor %s: rows of %d values do not split into %v blocks", t.Name, cols, t.Type)
	}
	rowBytes := cols / bs * bb
	per := max(chunkValues/cols, 1)
	buf := make([]byte, min(per, rows)*rowBytes)
	for r0 := 0; r0 < rows; r0 += per {
		n := min(per, rows-r0)
		b := buf[:n*rowBytes]
		if _, err := r.ReadAt(b, hd.dataStart+int64(t.Offset)+int64(r0*rowBytes)); err != nil {
			return fmt.Errorf("tensor %s: %w", t.Name, err)
		}
		for k := range n {
			dst := hfRow(r0+k, rows, heads) * cols
			decode(x[dst:dst+cols], b[k*rowBytes:(k+1)*rowBytes], t.Type)
		}
	}
	return nil
}
