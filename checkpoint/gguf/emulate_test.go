package gguf

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/herdml/herd/model"
)

// refQ8Activations quantizes one block of 32 inputs of a product as
// ggml's x86 (AVX/AVX2) quantize_row_q8_0 does, written from its
// published definition: amax = max |x|; the block's scale is
// GGML_FP32_TO_FP16(amax/127); id = amax != 0 ? 127/amax : 0; each quant
// is x·id in float32 rounded by _mm256_round_ps(_MM_ROUND_NEAREST), i.e.
// to nearest even.
func refQ8Activations(x []float32) (d float32, q []int8) {
	amax := float32(0)
	for _, v := range x {
		amax = max(amax, abs32(v))
	}
	d = halfFloat(halfBits(amax / 127))
	id := float32(0)
	if amax != 0 {
		id = 127 / amax
	}
	for _, v := range x {
		q = append(q, int8(math.RoundToEven(float64(v*id))))
	}
	return d, q
}

// TestRoundQ8Activations: the rounded inputs are the reference's quants
// times its f16 scale (halves going to even, unlike the weights' roundf),
// and their dot product with a dequantized Q8_0 weight block is exactly
// ggml's d_w·d_x·Σ q_w·q_x.
func TestRoundQ8Activations(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	y := make([]float32, 32)
	for trial := range 300 {
		x := make([]float32, 32)
		scale := math.Pow(10, float64(rng.IntN(8)-4))
		for i := range x {
			x[i] = float32(rng.NormFloat64() * scale)
		}
		switch trial % 4 {
		case 1: // exact halves: amax 127 makes id 1
			for i := range x {
				x[i] = float32(rng.IntN(255)-127) / 2
			}
			x[0] = 127
		case 2:
			clear(x)
		}
		roundQ8Activations(y, x)
		d, q := refQ8Activations(x)
		for j := range x {
			if want := float32(q[j]) * d; y[j] != want {
				t.Fatalf("trial %d: x[%d] = %v rounds to %v, ggml's quantizer gives %d × %v = %v", trial, j, x[j], y[j], q[j], d, want)
			}
		}
		if trial%4 == 1 {
			for j, v := range x {
				if v == 2.5 && y[j] != 2 || v == -3.5 && y[j] != -4 {
					t.Fatalf("%v rounds to %v: halves go to even", v, y[j])
				}
			}
		}
		// A weight block, stored and read back as Q8_0.
		w := make([]float32, 32)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		blk := encode(nil, w, Q8_0)
		decode(w, blk, Q8_0)
		var dw float64
		var isum int64
		for j := range w {
			qw := int8(blk[2+j])
			isum += int64(qw) * int64(q[j])
			if qw != 0 {
				dw = float64(w[j]) / float64(qw)
			}
		}
		var dot float64
		for j := range w {
			dot += float64(w[j]) * float64(y[j])
		}
		if want := dw * float64(d) * float64(isum); dot != want {
			t.Fatalf("trial %d: Σ w·y = %v, ggml's d_w·d_x·Σ q_w·q_x = %v", trial, dot, want)
		}
	}
}

// TestRounderTypes: the Rounder of an F32 file is nil; an F16 file's
// rounds every product's input to f16; a Q8_0 file's quantizes the inputs
// of its Q8_0 matrices and rounds to f16 that of ffn_down, which is F16
// (rows of 176); inputs are never modified.
func TestRounderTypes(t *testing.T) {
	ref := refDir(t, "tiny-a")
	tokDir := refTokenizerDir(t, ref)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, typ := range []Type{F32, F16, Q8_0} {
		t.Run(typ.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "m.gguf")
			if err := Convert(ConvertOptions{Model: ref, Tokenizer: tokDir, Format: FormatGGUF, Type: typ, Out: out}); err != nil {
				t.Fatal(err)
			}
			g, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			r := g.Rounder()
			if typ == F32 {
				if r != nil {
					t.Fatal("an all-F32 file has a Rounder")
				}
				return
			}
			if r == nil {
				t.Fatalf("a %v file has no Rounder", typ)
			}
			c := g.Config
			for l := range c.NumHiddenLayers {
				for p := model.ProjQ; p <= model.ProjHead; p++ {
					cols := c.HiddenSize
					switch p {
					case model.ProjO:
						cols = c.QDim()
					case model.ProjDown:
						cols = c.IntermediateSize
					}
					want := typ
					if typ == Q8_0 && cols%32 != 0 {
						want = F16
					}
					rows := 3
					x := make([]float32, rows*cols)
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
					orig := slices.Clone(x)
					y := r.RoundInput(l, p, x, rows, cols)
					if !slices.Equal(x, orig) {
						t.Fatalf("layer %d projection %d: the input was modified", l, p)
					}
					for i := range x {
						var w float32
						switch want {
						case F16:
							w = halfValue(x[i])
						case Q8_0:
							b := i / 32 * 32
							d, q := refQ8Activations(x[b : b+32])
							w = float32(q[i-b]) * d
						}
						if y[i] != w {
							t.Fatalf("layer %d projection %d (%v): x[%d] = %v rounds to %v, want %v", l, p, want, i, x[i], y[i], w)
						}
					}
				}
			}
		})
	}
}

// halfValue rounds a float32 below f16's overflow to f16 with halfBits.
func halfValue(f float32) float32 {
	v := halfFloat(halfBits(abs32(f)))
	if f < 0 {
		return -v
	}
	return v
}

// halfFloat is the value of the finite, non-negative f16 bits h.
func halfFloat(h uint16) float32 {
	if e := int(h >> 10); e > 0 {
		return float32(math.Ldexp(float64(h&0x3ff|0x400), e-25))
	}
	return float32(math.Ldexp(float64(h&0x3ff), -24)) // subnormal
}
