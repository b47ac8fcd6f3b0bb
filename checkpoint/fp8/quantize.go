package fp8

import (
	"fmt"
	"math"

	"github.com/herdml/herd/checkpoint/safetensors"
)

// DefaultActivationScaleUB is the Llama 3 cap on the per-token activation
// amax (the paper's "upper bound of 1200" on the dynamic scale), which
// keeps a rare huge activation from flushing the rest of its row to zero.
const DefaultActivationScaleUB = 1200

// RowScale is the scale of a weight row whose largest magnitude is amax:
// amax/448 rounded to bfloat16 (the stored dtype of weight_scale), so
// that the largest element maps to ±448. A zero row gets scale 1.
//
// The scale is stored as BF16 because it makes quantization idempotent:
// a dequantized value (4 significant bits times 8) is exact in float32,
// 448·s is exact, and so re-quantizing a dequantized row gives back the
// same scale and codes, byte for byte. vLLM reads the scale of any float
// dtype into its float32 parameter.
func RowScale(amax float32) float32 {
	s := safetensors.BF16ToFloat32(safetensors.Float32ToBF16(amax / maxE4M3))
	if s == 0 || math.IsInf(float64(s), 0) {
		return 1
	}
	return s
}

// RowScales sets scales[r] = RowScale(max |w[r,·]|) for w [rows, cols].
// A non-finite weight is an error naming its row and column.
func RowScales(scales, w []float32, rows, cols int) error {
	if len(w) != rows*cols || len(scales) != rows {
		return fmt.Errorf("fp8: scales of %d×%d rows: buffers hold %d weights, %d scales", rows, cols, len(w), len(scales))
	}
	for r := range rows {
		var amax float32
		for c, v := range w[r*cols : (r+1)*cols] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("fp8: weight [%d, %d] is %v; only finite weights can be quantized", r, c, v)
			}
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		scales[r] = RowScale(amax)
	}
	return nil
}

// QuantizeRows quantizes w [rows, cols] row by row: scales as RowScales
// sets them and q[r,c] = EncodeE4M3(w[r,c]/scales[r]).
func QuantizeRows(q []byte, scales, w []float32, rows, cols int) error {
	if len(q) != rows*cols {
		return fmt.Errorf("fp8: quantize %d×%d rows: buffer holds %d codes", rows, cols, len(q))
	}
	if err := RowScales(scales, w, rows, cols); err != nil {
		return err
	}
	for r := range rows {
		row, s := w[r*cols:(r+1)*cols], scales[r]
		qr := q[r*cols : (r+1)*cols]
		for c, v := range row {
			qr[c] = EncodeE4M3(v / s)
		}
	}
	return nil
}

// DequantizeRows is the inverse of QuantizeRows: w[r,c] = E4M3(q[r,c])·scales[r].
func DequantizeRows(w []float32, q []byte, scales []float32, rows, cols int) error {
	if len(w) != rows*cols || len(q) != rows*cols || len(scales) != rows {
		return fmt.Errorf("fp8: dequantize %d×%d rows: buffers hold %d weights, %d codes, %d scales", rows, cols, len(w), len(q), len(scales))
	}
	for r := range rows {
		s := scales[r]
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("fp8: scale of row %d is %v; scales must be positive and finite", r, s)
		}
		wr, qr := w[r*cols:(r+1)*cols], q[r*cols:(r+1)*cols]
		for c, b := range qr {
			if b&0x7f == nanCode {
				return fmt.Errorf("fp8: code [%d, %d] is NaN (0x%02x)", r, c, b)
			}
			wr[c] = DecodeE4M3(b) * s
		}
	}
	return nil
}

// quantizeTokens emulates the dynamic per-token activation quantization
// of an FP8 matmul in place: each row x[t,·] of x [rows, cols] becomes
// E4M3(x/s)·s with s = min(max |x[t,·]|, ub)/448 (fbgemm's row-wise
// quantizer with scale_ub), so values beyond ub saturate at ±ub. A zero
// row is left alone; ub ≤ 0 means no cap.
func quantizeTokens(x []float32, rows, cols int, ub float32) {
	for t := range rows {
		row := x[t*cols : (t+1)*cols]
		var amax float32
		for _, v := range row {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		if ub > 0 {
			amax = min(amax, ub)
		}
		if !(amax > 0) {
			continue
		}
		s := amax / maxE4M3
		inv := 1 / s
		for i, v := range row {
			row[i] = DecodeE4M3(EncodeE4M3(v*inv)) * s
		}
	}
}
