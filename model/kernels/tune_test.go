//go:build goexperiment.simd && tune

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"unsafe"
)

func threadCPU() int64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

func TestTune(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	type cfg struct{ kc, mc, nc int }
	shapes := []benchShape{benchShapes[0], benchShapes[1], benchShapes[2], benchShapes[4], {"sq1024", false, false, 1024, 1024, 1024, true}}
	cfgs := []cfg{{256, 144, 1536}, {128, 144, 1536}, {256, 144, 768}, {128, 288, 1536}}
	for _, s := range shapes {
		m := s.m
		if m > 512 {
			m = 256
		} // a per-block sized problem
		rng := rand.New(rand.NewPCG(1, 1))
		ar, ac := m, s.k
		if s.transA {
			ar, ac = s.k, m
		}
		br, bc := s.k, s.n
		if s.transB {
			br, bc = s.n, s.k
		}
		a, bm := randMatrix(rng, ar, ac, ac), randMatrix(rng, br, bc, bc)
		c := make([]float32, m*s.n)
		line := fmt.Sprintf("%-28s", s.name)
		for _, cf := range cfgs {
			g := newGoGemm(simdMR, simdNR, kernelAVX512)
			g.kc, g.mc, g.nc = cf.kc, roundUp(cf.mc, simdMR), roundUp(cf.nc, simdNR)
			g.bufs.New = func() any {
				return &gemmBufs{a: make([]float32, g.mc*g.kc), b: make([]float32, g.nc*g.kc), tile: make([]float32, g.mr*g.nr)}
			}
			best := 0.0
			for rep := 0; rep < 12; rep++ {
				iters := max(1, int(2e8/(2*float64(m*s.n*s.k))))
				t0 := threadCPU()
				for range iters {
					g.gemm(s.transA, s.transB, m, s.n, s.k, 1, a, ac, bm, bc, 0, c, s.n)
				}
				gf := 2 * float64(m*s.n*s.k) * float64(iters) / float64(threadCPU()-t0)
				best = max(best, gf)
			}
			line += fmt.Sprintf(" %v:%5.1f", cf, best)
		}
		t.Log(line)
	}
}

func TestTuneKernel(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const kc = 256
	rng := rand.New(rand.NewPCG(1, 1))
	a := vecInput(rng, kc*simdMR, 1)
	b := vecInput(rng, kc*simdNR, 1)
	c := make([]float32, simdMR*simdNR)
	for rep := 0; rep < 12; rep++ {
		const iters = 20000
		t0 := threadCPU()
		for range iters {
			kernelAVX512(kc, a, b, c, simdNR, 1, 0)
		}
		t.Logf("kernel: %.1f GFLOP/s", 2*float64(kc*simdMR*simdNR)*iters/float64(threadCPU()-t0))
	}
}

func TestTunePortable(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const kc = 256
	rng := rand.New(rand.NewPCG(1, 1))
	a := vecInput(rng, kc*portableMR, 1)
	b := vecInput(rng, kc*portableNR, 1)
	c := make([]float32, portableMR*portableNR)
	for rep := 0; rep < 12; rep++ {
		const iters = 20000
		t0 := threadCPU()
		for range iters {
			kernelPortable(kc, a, b, c, portableNR, 1, 0)
		}
		t.Logf("portable kernel: %.1f GFLOP/s", 2*float64(kc*portableMR*portableNR)*iters/float64(threadCPU()-t0))
	}
}

func TestTuneExp(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	x := expBenchInput()
	dst := make([]float32, len(x))
	fs := map[string]func(){
		"ExpSlice": func() { ExpSlice(dst, x) },
		"Exp": func() {
			for i, v := range x {
				dst[i] = Exp(v)
			}
		},
		"math.Exp": func() {
			for i, v := range x {
				dst[i] = float32(math.Exp(float64(v)))
			}
		},
		"expGo": func() {
			for i, v := range x {
				dst[i] = Exp(v)
			}
		},
	}
	best := map[string]float64{}
	for rep := 0; rep < 10; rep++ {
		for name, f := range fs {
			t0 := threadCPU()
			for range 200 {
				f()
			}
			ns := float64(threadCPU()-t0) / 200 / float64(len(x))
			if best[name] == 0 || ns < best[name] {
				best[name] = ns
			}
		}
	}
	t.Log(best)
}
