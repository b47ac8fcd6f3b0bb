package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
)

// maxHeaderBytes is the largest JSON header accepted (the limit of the
// reference implementation, 100 MB).
const maxHeaderBytes = 100_000_000

// maxRank is the largest number of dimensions accepted in a tensor shape.
const maxRank = 32

// metadataKey is the reserved header key holding the string metadata.
const metadataKey = "__metadata__"

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Begin and End are byte offsets relative to the start of the data
	// section (the byte after the header).
	Begin, End int64
}

// Elements is the number of elements (the product of the shape; 1 for a
// scalar with an empty shape).
func (t TensorInfo) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// Bytes is the length of the tensor's data.
func (t TensorInfo) Bytes() int64 { return t.End - t.Begin }

// Header is a parsed and validated safetensors header.
type Header struct {
	// Tensors in data order (ascending Begin).
	Tensors []TensorInfo
	// Metadata is the "__metadata__" map (nil when absent).
	Metadata map[string]string
	// DataOffset is the file offset of the data section: 8 + header length.
	DataOffset int64
	index      map[string]int
}

// Lookup finds a tensor by name.
func (h *Header) Lookup(name string) (TensorInfo, bool) {
	i, ok := h.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return h.Tensors[i], true
}

// shapeJSON decodes a JSON array of non-negative integers without
// allocating more than maxRank entries, whatever the input.
type shapeJSON []int

func (s *shapeJSON) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return errors.New("shape must be an array of integers")
	}
	body := bytes.TrimSpace(b[1 : len(b)-1])
	out := shapeJSON{}
	if len(body) > 0 {
		for part := range bytes.SplitSeq(body, []byte{','}) {
			if len(out) == maxRank {
				return fmt.Errorf("shape has more than %d dimensions", maxRank)
			}
			v, err := strconv.ParseInt(string(bytes.TrimSpace(part)), 10, 64)
			if err != nil {
				return fmt.Errorf("shape entry %q is not an integer", bytes.TrimSpace(part))
			}
			if v < 0 {
				return fmt.Errorf("shape entry %d is negative", v)
			}
			if int64(int(v)) != v {
				return fmt.Errorf("shape entry %d is too large for this platform", v)
			}
			out = append(out, int(v))
		}
	}
	*s = out
	return nil
}

type tensorJSON struct {
	DType       *string       `json:"dtype"`
	Shape       *shapeJSON    `json:"shape"`
	DataOffsets []json.Number `json:"data_offsets"`
}

// parseHeader decodes and validates the JSON header of a file whose data
// section is dataLen bytes long. The data must be covered exactly by the
// tensors: no overlaps, no gaps and no trailing bytes (as the reference
// implementation requires).
func parseHeader(js []byte, dataLen int64) (*Header, error) {
	if len(js) > maxHeaderBytes {
		return nil, fmt.Errorf("header is %d bytes, more than the %d allowed", len(js), maxHeaderBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("header is not valid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("header is not a JSON object")
	}
	h := &Header{index: map[string]int{}}
	sawMeta := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("header is not valid JSON: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("header is not valid JSON: object key is not a string")
		}
		if name == metadataKey {
			if sawMeta {
				return nil, fmt.Errorf("header has %q twice", metadataKey)
			}
			sawMeta = true
			var m map[string]string
			if err := dec.Decode(&m); err != nil {
				return nil, fmt.Errorf("header %q must map strings to strings: %w", metadataKey, err)
			}
			h.Metadata = m
			continue
		}
		if _, dup := h.index[name]; dup {
			return nil, fmt.Errorf("tensor %q appears twice in the header", name)
		}
		var tj tensorJSON
		if err := dec.Decode(&tj); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("header is not valid JSON: it ends inside the entry of tensor %q", name)
			}
			return nil, fmt.Errorf("tensor %q: bad header entry: %w", name, err)
		}
		t, err := tensorFromJSON(name, tj, dataLen)
		if err != nil {
			return nil, err
		}
		h.index[name] = len(h.Tensors)
		h.Tensors = append(h.Tensors, t)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, fmt.Errorf("header is not valid JSON: unterminated object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("header has data after the JSON object (only space padding is allowed)")
	}
	if err := h.checkCoverage(dataLen); err != nil {
		return nil, err
	}
	return h, nil
}

func tensorFromJSON(name string, tj tensorJSON, dataLen int64) (TensorInfo, error) {
	bad := func(format string, a ...any) (TensorInfo, error) {
		return TensorInfo{}, fmt.Errorf("tensor %q: "+format, append([]any{name}, a...)...)
	}
	if tj.DType == nil {
		return bad("missing \"dtype\"")
	}
	dt, err := parseDType(*tj.DType)
	if err != nil {
		return bad("%v", err)
	}
	if tj.Shape == nil {
		return bad("missing \"shape\"")
	}
	if len(tj.DataOffsets) != 2 {
		return bad("\"data_offsets\" must be [begin, end], got %d numbers", len(tj.DataOffsets))
	}
	var off [2]int64
	for i, n := range tj.DataOffsets {
		v, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || v < 0 {
			return bad("data offset %s is not a non-negative integer", n)
		}
		off[i] = v
	}
	if off[0] > off[1] {
		return bad("data_offsets [%d, %d] end before they begin", off[0], off[1])
	}
	if off[1] > dataLen {
		return bad("data_offsets [%d, %d] reach past the %d bytes of data (truncated file?)", off[0], off[1], dataLen)
	}
	// Shape × element size must equal the byte length; compute without
	// overflow by bounding the product by the byte length.
	limit := (off[1] - off[0]) / int64(dt.Size())
	elems := int64(1)
	if !slices.Contains(*tj.Shape, 0) {
		for _, d := range *tj.Shape {
			if elems > limit/int64(d) {
				return bad("shape %v needs more than the %d bytes given by data_offsets [%d, %d]", []int(*tj.Shape), off[1]-off[0], off[0], off[1])
			}
			elems *= int64(d)
		}
	} else {
		elems = 0
	}
	if elems*int64(dt.Size()) != off[1]-off[0] {
		return bad("shape %v of %s is %d bytes but data_offsets [%d, %d] span %d", []int(*tj.Shape), dt, elems*int64(dt.Size()), off[0], off[1], off[1]-off[0])
	}
	return TensorInfo{Name: name, DType: dt, Shape: []int(*tj.Shape), Begin: off[0], End: off[1]}, nil
}

// checkCoverage sorts the tensors by offset and verifies they tile the
// data section exactly.
func (h *Header) checkCoverage(dataLen int64) error {
	sort.SliceStable(h.Tensors, func(i, j int) bool {
		a, b := h.Tensors[i], h.Tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	var pos int64
	prev := ""
	for i, t := range h.Tensors {
		h.index[t.Name] = i
		switch {
		case t.Begin < pos:
			return fmt.Errorf("tensor %q [%d, %d) overlaps tensor %q (which ends at %d)", t.Name, t.Begin, t.End, prev, pos)
		case t.Begin > pos && prev == "":
			return fmt.Errorf("%d unused bytes before the first tensor %q (data must be contiguous)", t.Begin, t.Name)
		case t.Begin > pos:
			return fmt.Errorf("%d unused bytes between tensors %q and %q (data must be contiguous)", t.Begin-pos, prev, t.Name)
		}
		pos, prev = t.End, t.Name
	}
	if pos != dataLen {
		return fmt.Errorf("%d bytes of data after the last tensor (data must be covered exactly by the tensors)", dataLen-pos)
	}
	return nil
}
