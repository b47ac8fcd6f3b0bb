package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/herdml/herd/checkpoint/safetensors"
)

// bf16Tier is a BF16 matrix-vector kernel and the F32 kernel whose order
// of operations it follows for rows of at least minIn elements.
type bf16Tier struct {
	name     string
	bf16     matVecFunc
	f32      matVecFunc
	minIn    int
	disabled bool // the CPU lacks the instructions
}

// bf16Tiers lists the portable kernel and the build's SIMD tiers.
func bf16Tiers() []bf16Tier {
	return append([]bf16Tier{{name: "portable", bf16: matVecBF16Portable, f32: matVecPortable, minIn: 1}}, bf16SIMDTiers()...)
}

// toBF16 rounds w (out×in) to BF16 with ToBF16 and returns the BF16
// values as RunBF16 reads them and the exact F32 widening of each, row
// by row, computed here element by element.
func toBF16(w []float32, out, in int) ([]uint16, []float32) {
	h, f := make([]uint16, len(w)), make([]float32, len(w))
	var ct BF16Conv
	ToBF16(NewSerial(), &ct, h, w, out, in)
	for i, v := range w {
		f[i] = safetensors.BF16ToFloat32(safetensors.Float32ToBF16(v))
	}
	return h, f
}

// runKernel runs kernel over every output of y = x·Wᵀ (+y): w or wh.
func runKernel(kernel matVecFunc, y, x, w []float32, wh []uint16, n, in, out int, acc bool) {
	a := mvArgs{y: y, x: x, w: w, wh: wh, ldy: out, ldx: in, ldw: in, n: n, in: in, acc: acc}
	kernel(&a, 0, out)
}

// TestMatVecBF16 checks every BF16 kernel, called directly and through
// RunBF16 on the backends, against a float64 product with the widened
// weights, over n = 1…9 rows of x, rows not a multiple of the vector
// length (8, 16) and outputs not a multiple of the block of four, with
// and without accumulation. The bound is the worst case of a float32 sum
// of in+1 terms: (in+2)·2⁻²⁴ of Σ|x||w| (+|y|).
func TestMatVecBF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	be := NewCPU(2)
	defer be.Close()
	var mv MatVec
	for n := 1; n <= 9; n++ {
		for _, in := range []int{1, 7, 8, 15, 16, 17, 31, 32, 33, 48, 64, 80, 300} {
			for _, out := range []int{1, 3, 5, 13, 64, 130} {
				for _, acc := range []bool{false, true} {
					x := randMatrix(rng, n, in, in)
					wh, wf := toBF16(randMatrix(rng, out, in, in), out, in)
					y0 := randMatrix(rng, n, out, out)
					check := func(name string, got []float32) {
						t.Helper()
						for j := range n {
							for r := range out {
								var want, mag float64
								for i := range in {
									p := float64(x[j*in+i]) * float64(wf[r*in+i])
									want += p
									mag += math.Abs(p)
								}
								if acc {
									want += float64(y0[j*out+r])
									mag += math.Abs(float64(y0[j*out+r]))
								}
								g := float64(got[j*out+r])
								if d := math.Abs(g - want); !(d <= float64(in+2)*0x1p-24*mag) {
									t.Fatalf("%s/n=%d,in=%d,out=%d,acc=%v: y[%d][%d] = %g, want %g (|diff| %g, scale %g)", name, n, in, out, acc, j, r, g, want, d, mag)
								}
							}
						}
					}
					for _, tier := range bf16Tiers() {
						if tier.disabled {
							continue
						}
						got := append([]float32(nil), y0...)
						runKernel(tier.bf16, got, x, nil, wh, n, in, out, acc)
						check(tier.name, got)
					}
					for _, b := range []Backend{be, NewSerial()} {
						got := append([]float32(nil), y0...)
						mv.RunBF16(b, got, x, wh, n, in, out, acc)
						check("RunBF16/"+b.Name(), got)
					}
				}
			}
		}
	}
}

// TestMatVecBF16EqualsF32Kernel checks that each BF16 kernel sums in the
// order of its F32 twin: bit for bit the F32 kernel's result on the
// widened weights, for blocks of four outputs and rows of at least one
// vector (the decoder's shapes).
func TestMatVecBF16EqualsF32Kernel(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for _, tier := range bf16Tiers() {
		if tier.disabled {
			t.Logf("%s: the CPU lacks its instructions; skipped", tier.name)
			continue
		}
		for n := 1; n <= 7; n++ {
			for _, in := range []int{8, 16, 17, 24, 33, 48, 64, 300, 512} {
				if in < tier.minIn {
					continue
				}
				for _, out := range []int{4, 8, 68} {
					for _, acc := range []bool{false, true} {
						x := randMatrix(rng, n, in, in)
						wh, wf := toBF16(randMatrix(rng, out, in, in), out, in)
						y0 := randMatrix(rng, n, out, out)
						got, want := append([]float32(nil), y0...), append([]float32(nil), y0...)
						runKernel(tier.bf16, got, x, nil, wh, n, in, out, acc)
						runKernel(tier.f32, want, x, wf, nil, n, in, out, acc)
						for i := range got {
							if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
								t.Fatalf("%s/n=%d,in=%d,out=%d,acc=%v: y[%d] = %g, the F32 kernel %g", tier.name, n, in, out, acc, i, got[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}

// TestMatVecBF16Allocs checks that RunBF16 and ToBF16 allocate nothing
// per call, and that ToBF16 arranges the same on workers as serially.
func TestMatVecBF16Allocs(t *testing.T) {
	be := NewCPU(2)
	defer be.Close()
	rng := rand.New(rand.NewPCG(9, 9))
	const n, in, out = 1, 512, 1536
	x := randMatrix(rng, n, in, in)
	wfull := randMatrix(rng, out, in, in)
	wh, _ := toBF16(wfull, out, in)
	y := make([]float32, n*out)
	// ToBF16 on the workers arranges what it does serially.
	par := make([]uint16, len(wh))
	var ct BF16Conv
	ToBF16(be, &ct, par, wfull, out, in)
	if !slices.Equal(par, wh) {
		t.Fatal("ToBF16 on 2 workers differs from ToBF16 on the serial backend")
	}
	if a := testing.AllocsPerRun(5, func() { ToBF16(be, &ct, par, wfull, out, in) }); a != 0 {
		t.Fatalf("ToBF16: %v allocations per call, want 0", a)
	}
	var mv MatVec
	mv.RunBF16(be, y, x, wh, n, in, out, false)
	if a := testing.AllocsPerRun(20, func() { mv.RunBF16(be, y, x, wh, n, in, out, true) }); a != 0 {
		t.Fatalf("RunBF16: %v allocations per call, want 0", a)
	}
}

// TestParseWeightType checks the names and the error for others.
func TestParseWeightType(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want WeightType
		ok   bool
	}{{"f32", F32, true}, {"bf16", BF16, true}, {"BF16", F32, false}, {"", F32, false}, {"f16", F32, false}} {
		got, err := ParseWeightType(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseWeightType(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
}

// BenchmarkMatVecBF16 compares RunBF16 with Run on the 29M model's
// decoding shapes, one row of x, on the default backend: weights in GB/s
// (bytes of W read per second).
func BenchmarkMatVecBF16(b *testing.B) {
	be := NewCPU(0)
	defer be.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sh := range [][2]int{{1536, 512}, {512, 1536}, {4096, 512}} {
		out, in := sh[0], sh[1]
		x := randMatrix(rng, 1, in, in)
		w := randMatrix(rng, out, in, in)
		wh, _ := toBF16(w, out, in)
		y := make([]float32, out)
		var mv MatVec
		for _, wt := range []WeightType{F32, BF16} {
			b.Run(fmt.Sprintf("%dx%d/%v", out, in, wt), func(b *testing.B) {
				size := 4
				if wt == BF16 {
					size = 2
				}
				for b.Loop() {
					if wt == BF16 {
						mv.RunBF16(be, y, x, wh, 1, in, out, false)
					} else {
						mv.Run(be, y, x, w, 1, in, out, false)
					}
				}
				b.ReportMetric(float64(out*in*size)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

// FuzzParseWeightType checks that ParseWeightType accepts exactly the
// names String gives and never panics.
func FuzzParseWeightType(f *testing.F) {
	for _, s := range []string{"f32", "bf16", "", "F32", "bf16 ", "int8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		wt, err := ParseWeightType(s)
		if (err == nil) != (s == "f32" || s == "bf16") {
			t.Fatalf("ParseWeightType(%q) = %v, %v", s, wt, err)
		}
		if err == nil && wt.String() != s {
			t.Fatalf("ParseWeightType(%q).String() = %q", s, wt.String())
		}
	})
}
