// Package safetensors reads and writes the safetensors tensor file format:
// an unsigned 64-bit little-endian header length N, N bytes of JSON
// describing every tensor ({name: {dtype, shape, data_offsets}} plus an
// optional "__metadata__" map of strings), then the tensor bytes, with
// offsets relative to the end of the header.
//
// Reading memory-maps the file where the platform allows it (and otherwise
// streams with ReadAt), so a tensor is converted straight into a
// caller-provided []float32 and a large file is never loaded into the heap.
// Writing streams: the header is computed from the tensor list, then each
// tensor's bytes follow. Every header is validated before any data is
// touched; malformed files yield errors, never panics or huge allocations.
package safetensors

import (
	"fmt"
	"math"
)

// DType is a safetensors element type, spelled as in the file header.
type DType string

// The element types of the safetensors format.
const (
	BOOL   DType = "BOOL"
	U8     DType = "U8"
	I8     DType = "I8"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
	F8E8M0 DType = "F8_E8M0"
	I16    DType = "I16"
	U16    DType = "U16"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I32    DType = "I32"
	U32    DType = "U32"
	F32    DType = "F32"
	I64    DType = "I64"
	U64    DType = "U64"
	F64    DType = "F64"
)

// Size is the number of bytes of one element, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case BOOL, U8, I8, F8E4M3, F8E5M2, F8E8M0:
		return 1
	case I16, U16, F16, BF16:
		return 2
	case I32, U32, F32:
		return 4
	case I64, U64, F64:
		return 8
	}
	return 0
}

// Valid reports whether d is a known safetensors type.
func (d DType) Valid() bool { return d.Size() > 0 }

// IsFloat reports whether elements of type d can be converted to float32
// by ReadFloat32 (F64, F32, F16, BF16 and the 8-bit float formats).
func (d DType) IsFloat() bool {
	switch d {
	case F64, F32, F16, BF16, F8E4M3, F8E5M2, F8E8M0:
		return true
	}
	return false
}

// Writable reports whether Writer.WriteFloat32 can encode float32 values as
// type d (F32, F16 and BF16, rounding to nearest even).
func (d DType) Writable() bool { return d == F32 || d == F16 || d == BF16 }

// parseDType validates a dtype string from a header or a user option.
func parseDType(s string) (DType, error) {
	d := DType(s)
	if !d.Valid() {
		return "", fmt.Errorf("unknown safetensors dtype %q (known: BOOL U8 I8 F8_E4M3 F8_E5M2 F8_E8M0 I16 U16 F16 BF16 I32 U32 F32 I64 U64 F64)", s)
	}
	return d, nil
}

// BF16ToFloat32 widens a bfloat16 bit pattern to float32 (exact).
func BF16ToFloat32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// Float32ToBF16 narrows a float32 to bfloat16, rounding to nearest with
// ties to even. NaN stays NaN (quiet), infinities stay infinite, and finite
// values beyond the bfloat16 range round to infinity as IEEE rounding does.
func Float32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 { // NaN: keep sign and top payload, force quiet bit
		return uint16(u>>16) | 0x0040
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// F8E4M3ToFloat32 decodes an OCP "e4m3fn" byte: bias 7, no infinities,
// S.1111.111 is NaN, largest finite 448.
func F8E4M3ToFloat32(b byte) float32 {
	sign := float32(1)
	if b&0x80 != 0 {
		sign = -1
	}
	e := int(b>>3) & 0xf
	m := float32(b & 7)
	switch {
	case e == 0xf && b&7 == 7:
		return float32(math.NaN())
	case e == 0:
		return sign * m / 8 * (1.0 / 64) // subnormal: m/8 · 2^-6
	}
	return sign * (1 + m/8) * float32(math.Ldexp(1, e-7))
}

// F8E5M2ToFloat32 decodes an IEEE-style e5m2 byte: bias 15, with
// infinities and NaNs.
func F8E5M2ToFloat32(b byte) float32 {
	sign := float32(1)
	if b&0x80 != 0 {
		sign = -1
	}
	e := int(b>>2) & 0x1f
	m := float32(b & 3)
	switch {
	case e == 0x1f && b&3 == 0:
		return sign * float32(math.Inf(1))
	case e == 0x1f:
		return float32(math.NaN())
	case e == 0:
		return sign * m / 4 * float32(math.Ldexp(1, -14))
	}
	return sign * (1 + m/4) * float32(math.Ldexp(1, e-15))
}

// F8E8M0ToFloat32 decodes an unsigned power-of-two scale byte (the OCP
// microscaling E8M0 format): 2^(b-127), and 0xff is NaN.
func F8E8M0ToFloat32(b byte) float32 {
	if b == 0xff {
		return float32(math.NaN())
	}
	return float32(math.Ldexp(1, int(b)-127))
}
