//go:build goexperiment.simd && amd64

package kernels

import (
	"simd/archsimd"
	"testing"

	"github.com/herdml/herd/internal/benchutil"
)

// extraTestBackends adds the SIMD kernels this CPU can run but NewCPUGo
// does not pick (the AVX2 one on an AVX-512 machine), so every kernel of
// the build is tested.
func extraTestBackends() []testBackend {
	var out []testBackend
	if archsimd.X86.AVX2() && archsimd.X86.FMA() {
		out = append(out, testBackend{"avx2(2)", func() *CPU {
			g := tile6x16.newGemm()
			c := newCPU(2, g.gemm, "cpu/go-simd-avx2")
			c.par = &parGemm{g: g}
			return c
		}})
	}
	return out
}

// extraPackers adds the AVX2 tile for Packed on CPUs that have AVX-512
// too (Pack picks the AVX-512 one there), so both tiles are tested.
func extraPackers() []packer {
	if !archsimd.X86.AVX512() || !archsimd.X86.AVX2() || !archsimd.X86.FMA() {
		return nil
	}
	return []packer{{"avx2_6x16", func(p *Packed, be Backend, w []float32, out, in int) bool {
		p.packWith(be, w, out, in, tile6x16.mr, tile6x16.nr, rows6x16)
		return true
	}}}
}

// BenchmarkMicroKernel measures the assembly GEMM tiles alone on packed
// panels of kc = 256 steps that stay in L1 (and A read in place from rows
// or columns of a larger matrix), storing to a C that stays in L1, in
// GFLOP per CPU-second (steadier than wall time on a shared machine).
func BenchmarkMicroKernel(b *testing.B) {
	const kc, ldRows = 256, 768
	tiles := map[string]asmTile{}
	if archsimd.X86.AVX512() {
		tiles["avx512_8x32"] = tile8x32
	}
	if archsimd.X86.AVX2() && archsimd.X86.FMA() {
		tiles["avx2_6x16"] = tile6x16
	}
	for _, name := range []string{"avx512_8x32", "avx2_6x16"} {
		t, ok := tiles[name]
		if !ok {
			continue
		}
		a, bp, c := make([]float32, kc*t.mr), make([]float32, kc*t.nr), make([]float32, t.mr*t.nr)
		for i := range a {
			a[i] = float32(i%7) * 0.01
		}
		for i := range bp {
			bp[i] = float32(i%5) * 0.01
		}
		rows, cols := make([]float32, t.mr*ldRows), make([]float32, kc*ldRows)
		flops := float64(2 * kc * t.mr * t.nr)
		for _, k := range []struct {
			name string
			f    func()
		}{
			{name, func() { t.kernel(kc, a, bp, c, t.nr, 1, 0) }},
			{name + "_rows", func() { t.rows(kc, rows, ldRows, bp, c, t.nr, 1, 0) }},
			{name + "_cols", func() { t.cols(kc, cols, ldRows, bp, c, t.nr, 1, 0) }},
		} {
			b.Run(k.name, func(b *testing.B) {
				c0 := benchutil.CPUSeconds()
				for b.Loop() {
					k.f()
				}
				b.ReportMetric(flops*float64(b.N)/(benchutil.CPUSeconds()-c0)/1e9, "GFLOP/cpu-s")
			})
		}
	}
}

// TestExpSliceAVX2 checks the AVX2 tier of ExpSlice on the sweep of
// TestExpSliceAccuracy (specials, subnormal results, overflow) and on
// every tail length.
func TestExpSliceAVX2(t *testing.T) {
	if !hasAVX2() {
		t.Skip("the CPU has no AVX2 with FMA")
	}
	xs := expSweep()
	got := make([]float32, len(xs))
	expSliceAVX2(got, xs)
	bad := 0
	for i, x := range xs {
		if !checkExp(t, "expSliceAVX2", x, got[i], 2e-7) {
			if bad++; bad > 5 {
				t.Fatal("too many errors")
			}
		}
	}
	for n := range 20 {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(i) - 7.5
		}
		dst := make([]float32, n+1)
		dst[n] = 42
		expSliceAVX2(dst[:n], src)
		for i := range n {
			checkExp(t, "expSliceAVX2 tail", src[i], dst[i], 2e-7)
		}
		if dst[n] != 42 {
			t.Fatalf("n=%d: wrote past the end", n)
		}
	}
}
