package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// decodeFloats converts len(dst) little-endian elements of type d from src
// (which holds exactly len(dst)·d.Size() bytes) into dst.
func decodeFloats(dst []float32, src []byte, d DType) error {
	le := binary.LittleEndian
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = float16.Frombits(le.Uint16(src[2*i:])).Float32()
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToFloat32(le.Uint16(src[2*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	case F8E4M3:
		for i := range dst {
			dst[i] = F8E4M3ToFloat32(src[i])
		}
	case F8E5M2:
		for i := range dst {
			dst[i] = F8E5M2ToFloat32(src[i])
		}
	case F8E8M0:
		for i := range dst {
			dst[i] = F8E8M0ToFloat32(src[i])
		}
	default:
		return fmt.Errorf("dtype %s is not a floating-point type; read its bytes with ReadRaw", d)
	}
	return nil
}

// encodeFloats writes src as little-endian elements of type d into dst
// (len(dst) == len(src)·d.Size()).
func encodeFloats(dst []byte, src []float32, d DType) error {
	le := binary.LittleEndian
	switch d {
	case F32:
		for i, v := range src {
			le.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], float16.Fromfloat32(v).Bits())
		}
	case BF16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], Float32ToBF16(v))
		}
	default:
		return fmt.Errorf("cannot encode float32 values as %s (use F32, F16 or BF16, or write raw bytes)", d)
	}
	return nil
}
