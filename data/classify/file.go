package classify

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/herdml/herd/internal/atomicfile"
	"github.com/zeebo/xxh3"
)

// Model file format (all little-endian):
//
//	magic "HERDFTC\n" | version u32 (=1)
//	dim u32 | buckets u32 | word n-grams u32 | char n-gram min u32 | max u32 |
//	max tokens i32 | epochs u32 | lr f64 | seed u64
//	labels u32, then per label: length u16 + bytes (UTF-8)
//	rows u32 (non-zero input rows), then per row: index u32 (increasing) + dim × f32
//	output matrix: labels × dim × f32
//	xxh3-64 of everything above, u64
//
// Input rows that training never touched are zero and are not stored, so
// files are small even with many buckets.

const (
	fileMagic   = "HERDFTC\n"
	fileVersion = 1
	// MaxFileBytes bounds what LoadFile reads (1 GiB parameters + labels).
	maxFileBytes = 4*maxParams + 8<<20
)

// Save writes the model to w.
func (m *Model) Save(w io.Writer) error {
	var b bytes.Buffer
	put32 := func(v uint32) { b.Write(binary.LittleEndian.AppendUint32(nil, v)) }
	put64 := func(v uint64) { b.Write(binary.LittleEndian.AppendUint64(nil, v)) }
	c := m.cfg
	b.WriteString(fileMagic)
	put32(fileVersion)
	for _, v := range []int{c.Dim, c.Buckets, c.WordNgrams, c.CharNgramMin, c.CharNgramMax, c.MaxTokens, c.Epochs} {
		put32(uint32(int32(v)))
	}
	put64(math.Float64bits(c.LR))
	put64(c.Seed)
	put32(uint32(len(m.labels)))
	for _, l := range m.labels {
		b.Write(binary.LittleEndian.AppendUint16(nil, uint16(len(l))))
		b.WriteString(l)
	}
	d := c.Dim
	var rows []uint32
	for r := range c.Buckets {
		for _, v := range m.in[r*d : r*d+d] {
			if v != 0 {
				rows = append(rows, uint32(r))
				break
			}
		}
	}
	put32(uint32(len(rows)))
	for _, r := range rows {
		put32(r)
		for _, v := range m.in[int(r)*d : int(r)*d+d] {
			put32(math.Float32bits(v))
		}
	}
	for _, v := range m.out {
		put32(math.Float32bits(v))
	}
	put64(xxh3.Hash(b.Bytes()))
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("classify: save model: %w", err)
	}
	return nil
}

// SaveFile writes the model to path atomically.
func (m *Model) SaveFile(path string) error {
	var b bytes.Buffer
	if err := m.Save(&b); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("classify: save model: %w", err)
	}
	return nil
}

// LoadFile reads a model saved with SaveFile.
func LoadFile(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	defer f.Close()
	m, err := load(path, f)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func load(name string, r io.Reader) (*Model, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("classify: read %s: %w", name, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("classify: %s is not a valid model file: %s (retrain or re-copy it)", name, fmt.Sprintf(format, a...))
	}
	if len(data) > maxFileBytes {
		return nil, bad("larger than %d bytes", maxFileBytes)
	}
	if len(data) < len(fileMagic)+4+8 || string(data[:len(fileMagic)]) != fileMagic {
		return nil, bad("missing the %q header", fileMagic)
	}
	body, sum := data[:len(data)-8], binary.LittleEndian.Uint64(data[len(data)-8:])
	if v := binary.LittleEndian.Uint32(data[len(fileMagic):]); v != fileVersion {
		return nil, bad("format version %d, this build reads version %d", v, fileVersion)
	}
	if xxh3.Hash(body) != sum {
		return nil, bad("checksum mismatch (truncated or corrupted)")
	}
	p := parser{b: body[len(fileMagic)+4:]}
	var c Config
	for _, dst := range []*int{&c.Dim, &c.Buckets, &c.WordNgrams, &c.CharNgramMin, &c.CharNgramMax, &c.MaxTokens, &c.Epochs} {
		*dst = int(int32(p.u32()))
	}
	c.LR = math.Float64frombits(p.u64())
	c.Seed = p.u64()
	if p.err != nil {
		return nil, bad("short header")
	}
	if err := c.validate(); err != nil {
		return nil, bad("%v", err)
	}
	nl := int(p.u32())
	if nl < 2 || nl > maxLabels || nl*c.Dim > maxParams {
		return nil, bad("%d labels", nl)
	}
	m := &Model{cfg: c, index: map[string]int{}}
	for i := range nl {
		l := string(p.bytes(int(p.u16())))
		if p.err != nil {
			return nil, bad("label %d truncated", i)
		}
		if l == "" || i > 0 && l <= m.labels[i-1] {
			return nil, bad("labels not sorted and distinct at %q", l)
		}
		m.labels = append(m.labels, l)
		m.index[l] = i
	}
	nr := int(p.u32())
	d := c.Dim
	if p.err != nil || nr > c.Buckets || nr*(4+4*d)+nl*d*4 != len(p.b) {
		return nil, bad("row count %d does not match the %d bytes left", nr, len(p.b))
	}
	m.in = make([]float32, c.Buckets*d)
	prev := -1
	for range nr {
		r := int(p.u32())
		if r <= prev || r >= c.Buckets {
			return nil, bad("row index %d out of order or range", r)
		}
		prev = r
		p.floats(m.in[r*d : r*d+d])
	}
	m.out = make([]float32, nl*d)
	p.floats(m.out)
	if p.err != nil || len(p.b) != 0 {
		return nil, bad("trailing or missing data")
	}
	return m, nil
}

type parser struct {
	b   []byte
	err error
}

var errShort = errors.New("short data")

func (p *parser) bytes(n int) []byte {
	if p.err != nil || n > len(p.b) {
		p.err = errShort
		return nil
	}
	v := p.b[:n]
	p.b = p.b[n:]
	return v
}

func (p *parser) u16() uint16 {
	if b := p.bytes(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (p *parser) u32() uint32 {
	if b := p.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (p *parser) u64() uint64 {
	if b := p.bytes(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (p *parser) floats(dst []float32) {
	b := p.bytes(4 * len(dst))
	if b == nil {
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}
