package gguf

import (
	"encoding/binary"
	"math"

	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/x448/float16"
)

// qk8 is the number of weights in a Q8_0 block.
const qk8 = 32

// encode appends x stored as type t to dst. For Q8_0, len(x) must be a
// multiple of 32.
func encode(dst []byte, x []float32, t Type) []byte {
	switch t {
	case F32:
		return f32bytes(dst, x)
	case F16:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint16(dst, float16.Fromfloat32(v).Bits())
		}
	case BF16:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint16(dst, safetensors.Float32ToBF16(v))
		}
	case Q8_0:
		for b := 0; b+qk8 <= len(x); b += qk8 {
			dst = quantizeQ8Block(dst, x[b:b+qk8])
		}
	}
	return dst
}

// quantizeQ8Block appends one Q8_0 block as ggml's quantize_row_q8_0_ref
// computes it: d = max|x|/127 (float32), id = 1/d (0 when d is 0), the
// scale stored as f16 and each weight as int8 roundf(x·id) (halves away
// from zero).
func quantizeQ8Block(dst []byte, x []float32) []byte {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	dst = binary.LittleEndian.AppendUint16(dst, float16.Fromfloat32(d).Bits())
	for _, v := range x {
		dst = append(dst, byte(int8(math.Round(float64(v*id)))))
	}
	return dst
}

// decode fills x from data stored as type t (len(data) must be the size
// of len(x) values of t).
func decode(x []float32, data []byte, t Type) {
	switch t {
	case F32:
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	case F16:
		for i := range x {
			x[i] = float16.Frombits(binary.LittleEndian.Uint16(data[2*i:])).Float32()
		}
	case BF16:
		for i := range x {
			x[i] = safetensors.BF16ToFloat32(binary.LittleEndian.Uint16(data[2*i:]))
		}
	case Q8_0:
		for b := 0; b*qk8 < len(x); b++ {
			blk := data[b*(2+qk8):]
			d := float16.Frombits(binary.LittleEndian.Uint16(blk)).Float32()
			for j := range qk8 {
				x[b*qk8+j] = float32(int8(blk[2+j])) * d
			}
		}
	}
}
