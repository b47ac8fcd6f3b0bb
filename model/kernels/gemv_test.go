package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestMatVecMatchesGemm checks MatVec against the backend's Gemm of the
// same product, for every backend of the build and the Serial one, over
// row counts 1…9 and sizes that are not multiples of the kernel's blocks
// (four weight rows, 16 lanes), with and without accumulation.
func TestMatVecMatchesGemm(t *testing.T) {
	backends := append(testBackends(), testBackend{"portable-kernel", func() *CPU {
		c := newCPUPortable(2)
		c.matVec = matVecPortable
		return c
	}})
	rng := rand.New(rand.NewPCG(3, 3))
	for _, tb := range backends {
		be := tb.make()
		defer be.Close()
		for _, be := range []Backend{be, NewSerial()} {
			var mv MatVec
			for n := 1; n <= 9; n++ {
				for _, in := range []int{1, 7, 16, 17, 33, 64, 300} {
					for _, out := range []int{1, 3, 5, 13, 64, 130} {
						for _, acc := range []bool{false, true} {
							name := fmt.Sprintf("%s/%s/n=%d,in=%d,out=%d,acc=%v", tb.name, be.Name(), n, in, out, acc)
							x := randMatrix(rng, n, in, in)
							w := randMatrix(rng, out, in, in)
							y0 := randMatrix(rng, n, out, out)
							want := append([]float32(nil), y0...)
							got := append([]float32(nil), y0...)
							var beta float32
							if acc {
								beta = 1
							}
							RefGemm(false, true, n, out, in, 1, x, in, w, in, beta, want, out)
							mv.Run(be, got, x, w, n, in, out, acc)
							for j := range n {
								for r := range out {
									var mag float64
									for i := range in {
										mag += math.Abs(float64(x[j*in+i]) * float64(w[r*in+i]))
									}
									if acc {
										mag += math.Abs(float64(y0[j*out+r]))
									}
									g, wv := got[j*out+r], want[j*out+r]
									if d := math.Abs(float64(g - wv)); !(d <= 1e-5*mag+1e-30) {
										t.Fatalf("%s: y[%d][%d] = %g, want %g (|diff| %g, scale %g)", name, j, r, g, wv, d, mag)
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestMatVecAllocsNothing checks that MatVec allocates nothing per call
// on the CPU backend.
func TestMatVecAllocsNothing(t *testing.T) {
	be := NewCPU(2)
	defer be.Close()
	const n, in, out = 2, 256, 768
	x, w, y := make([]float32, n*in), make([]float32, out*in), make([]float32, n*out)
	var mv MatVec
	mv.Run(be, y, x, w, n, in, out, false)
	if a := testing.AllocsPerRun(20, func() { mv.Run(be, y, x, w, n, in, out, true) }); a != 0 {
		t.Fatalf("%v allocations per MatVec, want 0", a)
	}
}

// BenchmarkMatVec compares MatVec with the backend's Gemm on decoding
// shapes (the weight matrices of config M and a larger model) for a few
// row counts, and with a copy of the weights' bytes, all in one run. It
// reports the weight bandwidth in GB/s: bytes of W per call over time.
// matvec-portable is MatVec on the same backend with the portable kernel
// (what AVX2-only CPUs ran before their SIMD tier).
func BenchmarkMatVec(b *testing.B) {
	be := NewCPU(0)
	defer be.Close()
	port := NewCPU(0)
	defer port.Close()
	port.matVec = matVecPortable
	for _, sh := range [][2]int{{768, 256}, {256, 768}, {1536, 512}, {512, 1536}} {
		out, in := sh[0], sh[1]
		rng := rand.New(rand.NewPCG(1, 1))
		w := randMatrix(rng, out, in, in)
		bytes := float64(4 * out * in)
		if CanPack() {
			var p Packed
			b.Run(fmt.Sprintf("out=%d,in=%d/pack", out, in), func(b *testing.B) {
				for b.Loop() {
					p.Pack(be, w, out, in)
				}
				b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
		b.Run(fmt.Sprintf("out=%d,in=%d/copy", out, in), func(b *testing.B) {
			dst := make([]float32, len(w))
			for b.Loop() {
				copy(dst, w)
			}
			b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
		for _, n := range []int{1, 2, 4, 8, 16, 32, 64} {
			x := randMatrix(rng, n, in, in)
			y := make([]float32, n*out)
			var mv MatVec
			b.Run(fmt.Sprintf("out=%d,in=%d/n=%d/gemm", out, in, n), func(b *testing.B) {
				for b.Loop() {
					be.Gemm(false, true, n, out, in, 1, x, in, w, in, 0, y, out)
				}
				b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
			b.Run(fmt.Sprintf("out=%d,in=%d/n=%d/matvec", out, in, n), func(b *testing.B) {
				for b.Loop() {
					mv.Run(be, y, x, w, n, in, out, false)
				}
				b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
			b.Run(fmt.Sprintf("out=%d,in=%d/n=%d/matvec-portable", out, in, n), func(b *testing.B) {
				for b.Loop() {
					mv.Run(port, y, x, w, n, in, out, false)
				}
				b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
			if CanPack() {
				var p Packed
				p.Pack(be, w, out, in)
				b.Run(fmt.Sprintf("out=%d,in=%d/n=%d/packed", out, in, n), func(b *testing.B) {
					for b.Loop() {
						mv.RunPacked(be, y, x, &p, n, false)
					}
					b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				})
			}
		}
	}
}

// TestPackedMatchesGemm checks RunPacked against RefGemm over row counts
// below, at and between the kernel's row blocks, inputs and outputs on and
// off its panels, with and without accumulation, on a pool and serially;
// one Packed is repacked for every shape, so reused memory is covered.
func TestPackedMatchesGemm(t *testing.T) {
	if !CanPack() {
		t.Skip("this build has no packed-product kernel (the assembly tiles need GOEXPERIMENT=simd on amd64)")
	}
	packers := append([]packer{{"Pack", (*Packed).Pack}}, extraPackers()...)
	rng := rand.New(rand.NewPCG(5, 5))
	pool := NewCPU(2)
	defer pool.Close()
	var p Packed
	var mv MatVec
	for _, pk := range packers {
		for _, be := range []Backend{pool, NewSerial()} {
			for _, in := range []int{1, 7, 33, 256, 300} {
				for _, out := range []int{1, 15, 31, 32, 96, 130} {
					w := randMatrix(rng, out, in, in)
					if !pk.pack(&p, be, w, out, in) {
						t.Fatal("Pack refused although CanPack")
					}
					for _, n := range []int{1, 5, 6, 7, 8, 9, 16, 17, 24} {
						for _, acc := range []bool{false, true} {
							name := fmt.Sprintf("%s/%s/n=%d,in=%d,out=%d,acc=%v", pk.name, be.Name(), n, in, out, acc)
							x := randMatrix(rng, n, in, in)
							y0 := randMatrix(rng, n, out, out)
							want := append([]float32(nil), y0...)
							got := append([]float32(nil), y0...)
							var beta float32
							if acc {
								beta = 1
							}
							RefGemm(false, true, n, out, in, 1, x, in, w, in, beta, want, out)
							mv.RunPacked(be, got, x, &p, n, acc)
							for j := range n {
								for r := range out {
									var mag float64
									for i := range in {
										mag += math.Abs(float64(x[j*in+i]) * float64(w[r*in+i]))
									}
									if acc {
										mag += math.Abs(float64(y0[j*out+r]))
									}
									g, wv := got[j*out+r], want[j*out+r]
									if d := math.Abs(float64(g - wv)); !(d <= 1e-5*mag+1e-30) {
										t.Fatalf("%s: y[%d][%d] = %g, want %g (|diff| %g, scale %g)", name, j, r, g, wv, d, mag)
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

// packer packs w into p with one of the build's tiles.
type packer struct {
	name string
	pack func(p *Packed, be Backend, w []float32, out, in int) bool
}

// TestPackedAllocsNothing checks that repacking a matrix of the same size
// and RunPacked allocate nothing.
func TestPackedAllocsNothing(t *testing.T) {
	if !CanPack() {
		t.Skip("this build has no packed-product kernel")
	}
	be := NewCPU(2)
	defer be.Close()
	const n, in, out = 16, 256, 768
	x, w, y := make([]float32, n*in), make([]float32, out*in), make([]float32, n*out)
	var p Packed
	var mv MatVec
	p.Pack(be, w, out, in)
	mv.RunPacked(be, y, x, &p, n, false)
	if a := testing.AllocsPerRun(20, func() {
		p.Pack(be, w, out, in)
		mv.RunPacked(be, y, x, &p, n, true)
	}); a != 0 {
		t.Fatalf("%v allocations per Pack and RunPacked, want 0", a)
	}
}

// TestPackedSetMatchesGemm checks RunPackedSet on three products of one x
// with whole and partial panels against RefGemm of each.
func TestPackedSetMatchesGemm(t *testing.T) {
	if !CanPack() {
		t.Skip("this build has no packed-product kernel")
	}
	rng := rand.New(rand.NewPCG(6, 6))
	be := NewCPU(2)
	defer be.Close()
	const in = 70
	outs := []int{96, 32, 33}
	var packs [3]Packed
	var ws, ys, y0s [3][]float32
	var mv MatVec
	for _, n := range []int{3, 8, 19} {
		for _, acc := range []bool{false, true} {
			x := randMatrix(rng, n, in, in)
			var set []PackedProduct
			for i, out := range outs {
				ws[i] = randMatrix(rng, out, in, in)
				packs[i].Pack(be, ws[i], out, in)
				y0s[i] = randMatrix(rng, n, out, out)
				ys[i] = append([]float32(nil), y0s[i]...)
				set = append(set, PackedProduct{Y: ys[i], W: &packs[i]})
			}
			mv.RunPackedSet(be, x, n, acc, set)
			for i, out := range outs {
				want := append([]float32(nil), y0s[i]...)
				var beta float32
				if acc {
					beta = 1
				}
				RefGemm(false, true, n, out, in, 1, x, in, ws[i], in, beta, want, out)
				for k := range want {
					if d := math.Abs(float64(ys[i][k] - want[k])); d > 1e-4*(1+math.Abs(float64(want[k]))) {
						t.Fatalf("n=%d acc=%v product %d: y[%d] = %g, want %g", n, acc, i, k, ys[i][k], want[k])
					}
				}
			}
		}
	}
}
