package fp8

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/herdml/herd/checkpoint/safetensors"
)

// refDecode is the value of an E4M3 byte straight from the format's
// definition: 1 sign bit, 4 exponent bits with bias 7, 3 mantissa bits,
// subnormals at exponent 0, no infinities, and S.1111.111 NaN.
func refDecode(b byte) float64 {
	sign := 1.0
	if b>>7 == 1 {
		sign = -1
	}
	exp := int(b>>3) & 15
	man := float64(b & 7)
	if exp == 15 && b&7 == 7 {
		return math.NaN()
	}
	if exp == 0 {
		return sign * math.Pow(2, -6) * man / 8
	}
	return sign * math.Pow(2, float64(exp-7)) * (1 + man/8)
}

// refEncode is round-to-nearest-even by exhaustive search over the 254
// non-NaN codes: the code whose value is nearest to x, on a tie the one
// with an even mantissa (last bit 0); beyond ±448 it saturates.
func refEncode(x float32) byte {
	if x != x {
		return 0x7f
	}
	if x > 448 { // saturating conversion, infinities included
		x = 448
	} else if x < -448 {
		x = -448
	}
	best, bestErr := -1, math.Inf(1)
	for c := 0; c < 256; c++ {
		v := refDecode(byte(c))
		if v != v || (v == 0 && (math.Signbit(v) != math.Signbit(float64(x)))) {
			continue
		}
		if v != 0 && (v < 0) != math.Signbit(float64(x)) {
			continue
		}
		e := math.Abs(float64(x) - v)
		if e < bestErr || (e == bestErr && c&1 == 0) {
			best, bestErr = c, e
		}
	}
	return byte(best)
}

func TestDecodeMatchesDefinition(t *testing.T) {
	for c := 0; c < 256; c++ {
		got, want := float64(DecodeE4M3(byte(c))), refDecode(byte(c))
		if !(got == want || (got != got && want != want)) || math.Signbit(got) != math.Signbit(want) && want == want {
			t.Fatalf("decode 0x%02x = %v, want %v", c, got, want)
		}
	}
	for c := 0; c < 256; c++ { // and the safetensors reader agrees
		if a, b := DecodeE4M3(byte(c)), safetensors.F8E4M3ToFloat32(byte(c)); math.Float32bits(a) != math.Float32bits(b) && a == a {
			t.Fatalf("0x%02x: %v here, %v in safetensors", c, a, b)
		}
	}
	if DecodeE4M3(0x7e) != maxE4M3 || DecodeE4M3(0x01) != float32(math.Ldexp(1, -9)) {
		t.Fatalf("max %v, min subnormal %v", DecodeE4M3(0x7e), DecodeE4M3(0x01))
	}
}

func TestEncodeMatchesReference(t *testing.T) {
	var xs []float32
	// Every code, every midpoint between neighbours (ties), and a hair on
	// either side of each midpoint.
	for c := 0; c < 0x7e; c++ {
		a, b := float32(refDecode(byte(c))), float32(refDecode(byte(c+1)))
		mid := (a + b) / 2
		xs = append(xs, a, mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, 1000))
	}
	xs = append(xs, 448, 449, 463.99, 464, 465, 480, 1e6, float32(math.Inf(1)), 1e-30, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		xs = append(xs, float32(math.Ldexp(rng.Float64(), rng.IntN(24)-14)))
	}
	for _, x := range xs {
		for _, v := range []float32{x, -x} {
			got, want := EncodeE4M3(v), refEncode(v)
			if got != want {
				t.Fatalf("EncodeE4M3(%v) = 0x%02x (%v), reference 0x%02x (%v)", v, got, DecodeE4M3(got), want, refDecode(want))
			}
		}
	}
	if got := EncodeE4M3(float32(math.NaN())); got&0x7f != 0x7f {
		t.Fatalf("NaN encodes as 0x%02x", got)
	}
}

// FuzzEncodeE4M3 compares the encoder with the exhaustive reference.
func FuzzEncodeE4M3(f *testing.F) {
	for _, s := range []float32{0, 1, 0.0009765625, 448, 500, -3.25, 1e-3} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, x float32) {
		if got, want := EncodeE4M3(x), refEncode(x); got != want && x == x {
			t.Fatalf("EncodeE4M3(%v) = 0x%02x, reference 0x%02x", x, got, want)
		}
	})
}
