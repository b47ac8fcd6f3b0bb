package kernels

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/herdml/herd/internal/benchutil"
)

// benchShape is a GEMM problem of the model (config M: 2048 tokens =
// batch 16 × seq 128, hidden 256, FFN 768) or a reference shape.
type benchShape struct {
	name           string
	transA, transB bool
	m, n, k        int
	serial         bool // through GemmSerial
}

var benchShapes = []benchShape{
	// Forward x·Wᵀ: [2048×256]·[768×256]ᵀ.
	{"fwd_xWT_2048x768x256", false, true, 2048, 768, 256, false},
	// Backward dX = dY·W: [2048×768]·[768×256].
	{"bwd_dX_2048x256x768", false, false, 2048, 256, 768, false},
	// Backward dW = dYᵀ·X: [768×2048]ᵀ… stored as dY [2048×768], X [2048×256].
	{"bwd_dW_768x256x2048", true, false, 768, 256, 2048, false},
	{"square_1024", false, false, 1024, 1024, 1024, false},
	// Attention per head: scores Q·Kᵀ [128×32]·[128×32]ᵀ and P·V
	// [128×128]·[128×32], one goroutine each.
	{"attn_QKT_128x128x32_serial", false, true, 128, 128, 32, true},
	{"attn_PV_128x32x128_serial", false, false, 128, 32, 128, true},
}

// benchBackends lists the backends every Gemm benchmark compares in one
// run: the default (NewCPU), the best pure-Go one, OpenBLAS in openblas
// builds and the portable scalar one.
func benchBackends() []testBackend {
	bs := []testBackend{
		{"default", func() *CPU { return NewCPU(0) }},
		{"go", func() *CPU { return NewCPUGo(0) }},
	}
	if c, ok := NewCPUBLAS(1); ok {
		c.Close()
		bs = append(bs, testBackend{"openblas", func() *CPU { c, _ := NewCPUBLAS(0); return c }})
	}
	return append(bs, testBackend{"go-portable", func() *CPU { return newCPUPortable(0) }})
}

func BenchmarkGemm(b *testing.B) {
	for _, be := range benchBackends() {
		cpu := be.make()
		for _, s := range benchShapes {
			b.Run(be.name+"="+strings.ReplaceAll(cpu.Name(), "/", "-")+"/"+s.name, func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 1))
				ar, ac := storedShape(s.transA, s.m, s.k)
				br, bc := storedShape(s.transB, s.k, s.n)
				a, bm := randMatrix(rng, ar, ac, ac), randMatrix(rng, br, bc, bc)
				c := make([]float32, s.m*s.n)
				gemm := cpu.Gemm
				if s.serial {
					gemm = cpu.GemmSerial
				}
				cpu0 := benchutil.CPUSeconds()
				for b.Loop() {
					gemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, ac, bm, bc, 0, c, s.n)
				}
				flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
				b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				// Per CPU-second of this process: on a shared machine this
				// is far steadier than the wall-clock figure. Time the
				// workers spend waiting counts against it.
				if cpuSec := benchutil.CPUSeconds() - cpu0; cpuSec > 0 && cpu0 > 0 {
					b.ReportMetric(flops/cpuSec/1e9, "GFLOP/cpu-s")
				}
			})
		}
		cpu.Close()
	}
}

// BenchmarkParallelDispatch measures the fixed cost of Parallel: "nop"
// is one empty chunk per worker (the caller's round trip), "rows" a small
// elementwise job (1024 rows of 64 floats, about what one RMSNorm of a
// micro-batch costs) through Parallel and inline for comparison.
func BenchmarkParallelDispatch(b *testing.B) {
	cpu := NewCPU(0)
	defer cpu.Close()
	b.Run("nop", func(b *testing.B) {
		task := &nopTask{}
		w := cpu.Workers()
		b.ReportAllocs()
		for b.Loop() {
			cpu.Parallel(w, 1, task)
		}
	})
	rows := &scaleRowsTask{x: make([]float32, 1024*64), width: 64}
	b.Run("rows/Parallel", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			cpu.Parallel(1024, 16, rows)
		}
	})
	b.Run("rows/inline", func(b *testing.B) {
		for b.Loop() {
			rows.Run(0, 1024)
		}
	})
}

// scaleRowsTask scales rows of x in place.
type scaleRowsTask struct {
	x     []float32
	width int
}

func (s *scaleRowsTask) Run(lo, hi int) {
	Scale(0.999, s.x[lo*s.width:hi*s.width])
}

// expBenchInput is a softmax-like input: scores minus their maximum.
func expBenchInput() []float32 {
	rng := rand.New(rand.NewPCG(2, 2))
	x := make([]float32, 4096)
	for i := range x {
		x[i] = -float32(rng.ExpFloat64() * 4)
	}
	return x
}

// BenchmarkExp compares ExpSlice, a loop over the scalar Exp and a loop
// over float64 math.Exp, in ns per element.
func BenchmarkExp(b *testing.B) {
	x := expBenchInput()
	dst := make([]float32, len(x))
	run := func(name string, f func()) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				f()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(x)), "ns/elem")
		})
	}
	run("ExpSlice", func() { ExpSlice(dst, x) })
	run("Exp", func() {
		for i, v := range x {
			dst[i] = Exp(v)
		}
	})
	run("math.Exp", func() {
		for i, v := range x {
			dst[i] = float32(math.Exp(float64(v)))
		}
	})
}

// BenchmarkVector measures the vector helpers on a hidden-size-like row
// (ns per element).
func BenchmarkVector(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	x, y := vecInput(rng, 4096, 1), vecInput(rng, 4096, 1)
	var sink float32
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"Dot", func() { sink += Dot(x, y) }},
		{"Sum", func() { sink += Sum(x) }},
		{"MaxSlice", func() { sink += MaxSlice(x) }},
		{"Axpy", func() { Axpy(1e-3, x, y) }},
		{"Scale", func() { Scale(0.999, y) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				c.f()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(x)), "ns/elem")
		})
	}
	_ = sink
}
