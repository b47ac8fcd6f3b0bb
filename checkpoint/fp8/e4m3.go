// Package fp8 owns herd's FP8 scheme, the one of the Llama 3 paper (§6.2):
// OCP E4M3 ("e4m3fn") weights with one scale per output row for the
// feed-forward projections (gate/up/down) of every layer except the first
// and the last, activations quantized per token with a dynamic scale whose
// amax is capped (1200 by default), and the Hugging Face compressed-tensors
// layout vLLM loads ("float-quantized": F8_E4M3 `weight`, `weight_scale`
// [out, 1], config.json `quantization_config`).
//
// The E4M3 codec is written here: Go has no float8 type, and the rounding
// (nearest even, saturating at ±448) must match the hardware conversion
// exactly for the emulated FP8 matmuls to mean anything.
package fp8

import (
	"math"
)

// maxE4M3 is the largest finite E4M3 value (S.1111.110 = 1.75·2⁸).
const maxE4M3 = 448

// maxCode is the byte of +448; NaN is S.1111.111.
const (
	maxCode = 0x7e
	nanCode = 0x7f
)

// EncodeE4M3 converts f to the nearest E4M3 value, ties to even, saturating
// finite values and infinities beyond ±448 to ±448 (the "satfinite"
// conversion FP8 matmul kernels use). NaN becomes the NaN code; the sign of
// zero is kept.
func EncodeE4M3(f float32) byte {
	var sign byte
	if math.Signbit(float64(f)) {
		sign = 0x80
	}
	a := math.Abs(float64(f))
	switch {
	case a != a:
		return sign | nanCode
	case a >= maxE4M3:
		return sign | maxCode
	case a < 1.0/64: // below the smallest normal 2⁻⁶: subnormals m·2⁻⁹
		// q in [0, 8]; q == 8 is the smallest normal, whose code is 8 too.
		return sign | byte(math.RoundToEven(a*512))
	}
	_, exp := math.Frexp(a)                   // a = fr·2^exp, fr in [0.5, 1)
	e := exp - 1                              // a in [2^e, 2^(e+1))
	q := math.RoundToEven(math.Ldexp(a, 3-e)) // in [8, 16]: 1.mmm scaled by 8
	if q == 16 {
		e, q = e+1, 8
	}
	code := byte(e+7)<<3 | byte(q-8)
	if code > maxCode { // 464 and up would round to 480, which E4M3 lacks
		code = maxCode
	}
	return sign | code
}

// DecodeE4M3 is the value of an E4M3 byte, built directly as float32
// bits (the hot loops call it per element): a normal S.EEEE.MMM is
// 2^(E-7)·1.MMM, a subnormal S.0000.MMM is MMM·2⁻⁹, and S.1111.111 is NaN.
func DecodeE4M3(b byte) float32 {
	sign := uint32(b&0x80) << 24
	e, m := uint32(b>>3)&15, uint32(b&7)
	switch {
	case e == 15 && m == 7:
		return float32(math.NaN())
	case e == 0:
		v := float32(m) * (1.0 / 512)
		return math.Float32frombits(math.Float32bits(v) | sign)
	}
	return math.Float32frombits(sign | (e+127-7)<<23 | m<<20)
}
