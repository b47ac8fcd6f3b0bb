package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fileBytes assembles a safetensors file from a header string and data.
func fileBytes(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func parse(b []byte) (*File, error) {
	return NewReader(bytes.NewReader(b), int64(len(b)), "test.safetensors")
}

// nearestBF16 is an independent oracle: the bfloat16 value nearest to x by
// float64 distance, ties to the even bit pattern.
func nearestBF16(x float32) uint16 {
	lo := uint16(math.Float32bits(x) >> 16) // truncation: toward zero
	hi := lo + 1
	dl := math.Abs(float64(BF16ToFloat32(lo)) - float64(x))
	hv := float64(BF16ToFloat32(hi))
	if math.IsInf(hv, 0) { // rounding with an unbounded exponent would give ±2^128
		hv = math.Copysign(math.Ldexp(1, 128), hv)
	}
	dh := math.Abs(hv - float64(x))
	switch {
	case dl < dh:
		return lo
	case dh < dl:
		return hi
	case lo%2 == 0:
		return lo
	}
	return hi
}

func TestBF16Rounding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []float32{0, 1, -1, 1.00390625, 1.001953125, 1.005859375, 3.4e38, 1e-40, -2.5e-39}
	for range 100000 {
		cases = append(cases, math.Float32frombits(rng.Uint32()&0x7f7fffff|rng.Uint32()&0x80000000))
	}
	for _, x := range cases {
		if math.IsInf(float64(x), 0) || math.IsNaN(float64(x)) {
			continue
		}
		got, want := Float32ToBF16(x), nearestBF16(x)
		if got != want {
			t.Fatalf("Float32ToBF16(%g) = %#04x, want %#04x", x, got, want)
		}
	}
	if b := Float32ToBF16(float32(math.NaN())); !math.IsNaN(float64(BF16ToFloat32(b))) {
		t.Errorf("NaN became %#04x", b)
	}
	if b := Float32ToBF16(float32(math.Inf(-1))); b != 0xff80 {
		t.Errorf("-Inf became %#04x", b)
	}
}

func TestF8Decode(t *testing.T) {
	tests := []struct {
		name string
		f    func(byte) float32
		b    byte
		want float64
	}{
		{"e4m3 one", F8E4M3ToFloat32, 0x38, 1},
		{"e4m3 max", F8E4M3ToFloat32, 0x7e, 448},
		{"e4m3 -max", F8E4M3ToFloat32, 0xfe, -448},
		{"e4m3 min subnormal", F8E4M3ToFloat32, 0x01, math.Ldexp(1, -9)},
		{"e4m3 max subnormal", F8E4M3ToFloat32, 0x07, 7 * math.Ldexp(1, -9)},
		{"e4m3 min normal", F8E4M3ToFloat32, 0x08, math.Ldexp(1, -6)},
		{"e4m3 1.875*128", F8E4M3ToFloat32, 0x77, 240},
		{"e4m3 nan", F8E4M3ToFloat32, 0x7f, math.NaN()},
		{"e5m2 one", F8E5M2ToFloat32, 0x3c, 1},
		{"e5m2 max", F8E5M2ToFloat32, 0x7b, 57344},
		{"e5m2 inf", F8E5M2ToFloat32, 0x7c, math.Inf(1)},
		{"e5m2 -inf", F8E5M2ToFloat32, 0xfc, math.Inf(-1)},
		{"e5m2 nan", F8E5M2ToFloat32, 0x7d, math.NaN()},
		{"e5m2 min subnormal", F8E5M2ToFloat32, 0x01, math.Ldexp(1, -16)},
		{"e5m2 -1.5", F8E5M2ToFloat32, 0xbe, -1.5},
		{"e8m0 one", F8E8M0ToFloat32, 127, 1},
		{"e8m0 min", F8E8M0ToFloat32, 0, math.Ldexp(1, -127)},
		{"e8m0 nan", F8E8M0ToFloat32, 0xff, math.NaN()},
	}
	for _, tt := range tests {
		got := float64(tt.f(tt.b))
		if math.IsNaN(tt.want) && !math.IsNaN(got) || !math.IsNaN(tt.want) && got != tt.want {
			t.Errorf("%s: decode(%#02x) = %g, want %g", tt.name, tt.b, got, tt.want)
		}
	}
}

// TestRoundTrip writes tensors in every writable dtype, reads them back
// through the memory map and through ReadAt, and compares with the
// expected rounding.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	big := make([]float32, 300_000) // larger than one streaming chunk
	for i := range big {
		big[i] = float32(rng.NormFloat64())
	}
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 65520, 1e-8, 6e-5, float32(math.Inf(1)), 3.14159}
	want := func(d DType, x float32) float32 {
		switch d {
		case BF16:
			return BF16ToFloat32(nearestBF16Sat(x))
		case F16:
			return float64ToF16Oracle(x)
		}
		return x
	}
	for _, d := range []DType{F32, F16, BF16} {
		t.Run(string(d), func(t *testing.T) {
			tensors := []Tensor{
				{Name: "b.big", DType: d, Shape: []int{300, 1000}, F32: big},
				{Name: "a.special", DType: d, Shape: []int{len(special)}, F32: special},
				{Name: "c.empty", DType: d, Shape: []int{0, 5}, F32: []float32{}},
				{Name: "d.scalar", DType: d, Shape: []int{}, F32: []float32{2.5}},
				{Name: "e.raw", DType: I32, Shape: []int{2}, Raw: []byte{1, 0, 0, 0, 255, 255, 255, 255}},
			}
			path := filepath.Join(t.TempDir(), "x.safetensors")
			if err := WriteFile(path, tensors, map[string]string{"format": "pt", "note": "héllo \"q\""}); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if n := binary.LittleEndian.Uint64(raw); n%8 != 0 {
				t.Errorf("header length %d not a multiple of 8", n)
			}
			mapped, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer mapped.Close()
			streamed, err := parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if mapped.Metadata["note"] != "héllo \"q\"" {
				t.Errorf("metadata = %v", mapped.Metadata)
			}
			for _, f := range []*File{mapped, streamed} {
				for _, tn := range tensors[:4] {
					got := make([]float32, len(tn.F32))
					if err := f.ReadFloat32(tn.Name, got); err != nil {
						t.Fatal(err)
					}
					for i, x := range tn.F32 {
						w := want(d, x)
						if math.Float32bits(got[i]) != math.Float32bits(w) {
							t.Fatalf("%s[%d]: wrote %g, read %g, want %g", tn.Name, i, x, got[i], w)
						}
					}
				}
				rawGot := make([]byte, 8)
				if err := f.ReadRaw("e.raw", rawGot); err != nil || !bytes.Equal(rawGot, tensors[4].Raw) {
					t.Errorf("raw tensor = %v, %v", rawGot, err)
				}
				if err := f.ReadFloat32("e.raw", make([]float32, 2)); err == nil || !strings.Contains(err.Error(), "ReadRaw") {
					t.Errorf("ReadFloat32 of I32: %v", err)
				}
				if err := f.ReadFloat32("a.special", make([]float32, 3)); err == nil {
					t.Error("short destination accepted")
				}
				if err := f.ReadFloat32("nope", nil); err == nil || !strings.Contains(err.Error(), "nope") {
					t.Errorf("missing tensor: %v", err)
				}
			}
			// Storage order: element size descending, then name.
			var names []string
			for _, tn := range mapped.Tensors {
				names = append(names, tn.Name)
			}
			wantOrder := []string{"a.special", "b.big", "c.empty", "d.scalar", "e.raw"}
			if d != F32 {
				wantOrder = []string{"e.raw", "a.special", "b.big", "c.empty", "d.scalar"}
			}
			if !slices.Equal(names, wantOrder) {
				t.Errorf("storage order %v, want %v", names, wantOrder)
			}
		})
	}
}

func nearestBF16Sat(x float32) uint16 {
	if math.IsInf(float64(x), 0) {
		return uint16(math.Float32bits(x) >> 16)
	}
	return nearestBF16(x)
}

// float64ToF16Oracle rounds x to the nearest IEEE half by searching the
// 65536 patterns' neighbourhood arithmetically (independent of x448).
func float64ToF16Oracle(x float32) float32 {
	v := float64(x)
	if math.IsInf(v, 0) || v == 0 {
		return x
	}
	a := math.Abs(v)
	// Spacing of halves at magnitude a.
	e := math.Floor(math.Log2(a))
	if e < -14 {
		e = -14
	}
	ulp := math.Ldexp(1, int(e)-10)
	q := a / ulp
	r := math.RoundToEven(q) * ulp
	if r >= 65520 { // 65504 + half an ulp rounds to infinity
		r = math.Inf(1)
	}
	return float32(math.Copysign(r, v))
}

func TestWriterErrors(t *testing.T) {
	var buf bytes.Buffer
	for _, tc := range []struct {
		name  string
		specs []TensorSpec
		want  string
	}{
		{"duplicate", []TensorSpec{{"a", F32, []int{1}}, {"a", F32, []int{1}}}, "twice"},
		{"reserved", []TensorSpec{{"__metadata__", F32, []int{1}}}, "reserved"},
		{"dtype", []TensorSpec{{"a", "F31", []int{1}}}, "unknown dtype"},
		{"negative", []TensorSpec{{"a", F32, []int{-1}}}, "negative"},
		{"huge", []TensorSpec{{"a", F32, []int{1 << 31, 1 << 31, 4}}}, "too large"},
	} {
		if _, err := NewWriter(&buf, tc.specs, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	w, err := NewWriter(&buf, []TensorSpec{{"b", F32, []int{2}}, {"a", BF16, []int{1}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFloat32("a", []float32{1}); err == nil || !strings.Contains(err.Error(), `next tensor is "b"`) {
		t.Errorf("out of order: %v", err)
	}
	if err := w.WriteFloat32("b", []float32{1}); err == nil || !strings.Contains(err.Error(), "declares 2") {
		t.Errorf("wrong length: %v", err)
	}
	if err := w.WriteFloat32("b", []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "not written") {
		t.Errorf("incomplete close: %v", err)
	}
	if err := w.WriteRaw("a", []byte{0, 0}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRaw("c", nil); err == nil {
		t.Error("extra tensor accepted")
	}
	if _, err := parse(buf.Bytes()); err != nil {
		t.Errorf("written file does not parse: %v", err)
	}
}

// hostile lists malformed files with the error each must produce.
func hostile() []struct {
	name string
	file []byte
	want string
} {
	f32 := func(n int) []byte { return make([]byte, 4*n) }
	lenOnly := func(n uint64, rest string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, n)
		return append(b, rest...)
	}
	return []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"short", []byte{1, 2, 3}, "too short"},
		{"huge header length", lenOnly(1<<62, "{}"), "exceeds"},
		{"header past end", lenOnly(1000, "{}"), "past the end"},
		{"max uint64 length", lenOnly(math.MaxUint64, "{}"), "exceeds"},
		{"bad json", fileBytes(`{"a":`, nil), "not valid JSON"},
		{"not object", fileBytes(`[1,2]   `, nil), "not a JSON object"},
		{"unterminated", fileBytes(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`, nil), "JSON"},
		{"trailing garbage", fileBytes(`{} x`, nil), "after the JSON object"},
		{"two objects", fileBytes(`{}{}`, nil), "after the JSON object"},
		{"unknown dtype", fileBytes(`{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}`, f32(1)), "unknown safetensors dtype"},
		{"dtype not string", fileBytes(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, f32(1)), "bad header entry"},
		{"missing dtype", fileBytes(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, f32(1)), "missing \"dtype\""},
		{"missing shape", fileBytes(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, f32(1)), "missing \"shape\""},
		{"missing offsets", fileBytes(`{"a":{"dtype":"F32","shape":[1]}}`, f32(1)), "data_offsets"},
		{"three offsets", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, f32(1)), "data_offsets"},
		{"negative shape", fileBytes(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, f32(1)), "negative"},
		{"fractional shape", fileBytes(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, f32(1)), "not an integer"},
		{"shape not array", fileBytes(`{"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}`, f32(1)), "array"},
		{"nested shape", fileBytes(`{"a":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}}`, f32(1)), "not an integer"},
		{"huge shape entry", fileBytes(`{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}`, f32(1)), "not an integer"},
		{"overflowing shape", fileBytes(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}`, f32(1)), "needs more than"},
		{"too many dims", fileBytes(`{"a":{"dtype":"F32","shape":[`+strings.Repeat("1,", 40)+`1],"data_offsets":[0,4]}}`, f32(1)), "dimensions"},
		{"shape vs bytes", fileBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, f32(1)), "needs more than"},
		{"bytes vs shape", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}`, f32(2)), "span 8"},
		{"partial element", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,5]}}`, make([]byte, 5)), "span 5"},
		{"negative offset", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, nil), "non-negative"},
		{"reversed offsets", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, f32(1)), "end before"},
		{"offsets past data", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, nil), "past the 0 bytes"},
		{"offset overflow", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}}`, nil), "non-negative"},
		{"overlap", fileBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32(2)), "overlaps"},
		{"same range", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32(1)), "overlaps"},
		{"gap", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, f32(3)), "unused bytes between"},
		{"leading gap", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32(2)), "before the first"},
		{"trailing data", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32(2)), "after the last tensor"},
		{"data without tensors", fileBytes(`{}`, f32(1)), "after the last tensor"},
		{"duplicate tensor", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32(2)), "twice"},
		{"duplicate metadata", fileBytes(`{"__metadata__":{},"__metadata__":{}}`, nil), "twice"},
		{"metadata not strings", fileBytes(`{"__metadata__":{"a":1}}`, nil), "strings to strings"},
		{"metadata array", fileBytes(`{"__metadata__":[]}`, nil), "strings to strings"},
		{"entry not object", fileBytes(`{"a":[1]}`, nil), "bad header entry"},
	}
}

func TestHostileHeaders(t *testing.T) {
	for _, tc := range hostile() {
		_, err := parse(tc.file)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func TestValidEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		name string
		file []byte
		n    int
	}{
		{"empty object", fileBytes(`{}`, nil), 0},
		{"padded", fileBytes(`{}      `, nil), 0},
		{"null metadata", fileBytes(`{"__metadata__":null}`, nil), 0},
		{"scalar", fileBytes(`{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)), 1},
		{"zero-size twice", fileBytes(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"I64","shape":[3,0],"data_offsets":[0,0]}}`, nil), 2},
		{"unknown entry field", fileBytes(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"x":1}}`, []byte{7, 9}), 1},
		{"out of name order", fileBytes(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{7, 9}), 2},
	} {
		f, err := parse(tc.file)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(f.Tensors) != tc.n {
			t.Errorf("%s: %d tensors, want %d", tc.name, len(f.Tensors), tc.n)
		}
	}
}

// FuzzSafetensors feeds arbitrary bytes to the reader. A file that parses
// must have readable tensors, and rewriting it must give a file that
// parses to the same tensors.
func FuzzSafetensors(f *testing.F) {
	for _, tc := range hostile() {
		f.Add(tc.file)
	}
	var buf bytes.Buffer
	if err := Write(&buf, []Tensor{
		{Name: "w", DType: BF16, Shape: []int{2, 2}, F32: []float32{1, 2, 3, 4}},
		{Name: "x", DType: F32, Shape: []int{3}, F32: []float32{-1, 0.5, 9}},
		{Name: "q", DType: F8E4M3, Shape: []int{2}, Raw: []byte{0x38, 0x7f}},
		{Name: "s", DType: F16, Shape: []int{}, F32: []float32{1}},
	}, map[string]string{"format": "pt"}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(fileBytes(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}`, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := parse(data)
		if err != nil {
			return
		}
		var tensors []Tensor
		for _, ti := range sf.Tensors {
			if ti.Begin < 0 || ti.End > int64(len(data))-sf.DataOffset || ti.Elements()*int64(ti.DType.Size()) != ti.Bytes() {
				t.Fatalf("accepted inconsistent tensor %+v", ti)
			}
			raw := make([]byte, ti.Bytes())
			if err := sf.ReadRaw(ti.Name, raw); err != nil {
				t.Fatal(err)
			}
			if ti.DType.IsFloat() {
				if err := sf.ReadFloat32(ti.Name, make([]float32, ti.Elements())); err != nil {
					t.Fatal(err)
				}
			}
			tensors = append(tensors, Tensor{Name: ti.Name, DType: ti.DType, Shape: ti.Shape, Raw: raw})
		}
		var out bytes.Buffer
		if err := Write(&out, tensors, sf.Metadata); err != nil {
			t.Fatalf("rewrite: %v", err)
		}
		again, err := parse(out.Bytes())
		if err != nil {
			t.Fatalf("rewritten file does not parse: %v", err)
		}
		if len(again.Tensors) != len(sf.Tensors) {
			t.Fatalf("rewrite has %d tensors, want %d", len(again.Tensors), len(sf.Tensors))
		}
		for _, tn := range tensors {
			ti, ok := again.Lookup(tn.Name)
			if !ok || ti.DType != tn.DType || !slices.Equal(ti.Shape, tn.Shape) {
				t.Fatalf("tensor %q changed in rewrite: %+v", tn.Name, ti)
			}
			raw := make([]byte, ti.Bytes())
			if err := again.ReadRaw(tn.Name, raw); err != nil || !bytes.Equal(raw, tn.Raw) {
				t.Fatalf("tensor %q bytes changed in rewrite", tn.Name)
			}
		}
	})
}
