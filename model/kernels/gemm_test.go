package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// testBackend is a named constructor so that each test gets fresh pools it
// can close.
type testBackend struct {
	name string
	make func() *CPU
}

// testBackends lists every GEMM implementation of this build: the default
// NewCPU, the best pure-Go one, OpenBLAS in openblas builds, and the
// portable scalar one, with pools of several sizes.
func testBackends() []testBackend {
	var blas []testBackend
	if c, ok := NewCPUBLAS(1); ok {
		c.Close()
		blas = []testBackend{
			{"NewCPUBLAS(2)", func() *CPU { c, _ := NewCPUBLAS(2); return c }},
			{"NewCPUBLAS(1)", func() *CPU { c, _ := NewCPUBLAS(1); return c }},
		}
	}
	return append(append([]testBackend{
		{"NewCPU(2)", func() *CPU { return NewCPU(2) }},
		{"NewCPU(3)", func() *CPU { return NewCPU(3) }},
		{"NewCPU(1)", func() *CPU { return NewCPU(1) }},
		{"NewCPUGo(2)", func() *CPU { return NewCPUGo(2) }},
		{"NewCPUGo(4)", func() *CPU { return NewCPUGo(4) }},
		{"portable(2)", func() *CPU { return newCPUPortable(2) }},
	}, blas...), extraTestBackends()...)
}

// gemmCase is one GEMM problem; the matrices are generated from seed.
type gemmCase struct {
	transA, transB bool
	m, n, k        int
	pad            int // extra elements per row beyond the stored width
	alpha, beta    float32
	nanC           bool // fill C with NaN before the call (beta must be 0)
}

func (tc gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,m=%d,n=%d,k=%d,pad=%d,alpha=%g,beta=%g,nanC=%v",
		tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.pad, tc.alpha, tc.beta, tc.nanC)
}

// gemmProblem holds the operands of a gemmCase, laid out with strides.
type gemmProblem struct {
	a, b, c       []float32
	lda, ldb, ldc int
	want          []float32 // RefGemm's result
	mag           []float32 // |alpha|·Σ|a||b| per element, for the error bound
}

// sentinel marks the padding of C; a GEMM must leave it untouched.
const sentinel = float32(-12345.5)

func newProblem(tc gemmCase, rng *rand.Rand) gemmProblem {
	ar, ac := storedShape(tc.transA, tc.m, tc.k)
	br, bc := storedShape(tc.transB, tc.k, tc.n)
	p := gemmProblem{lda: max(1, ac+tc.pad), ldb: max(1, bc+tc.pad), ldc: max(1, tc.n+tc.pad)}
	p.a = randMatrix(rng, ar, ac, p.lda)
	p.b = randMatrix(rng, br, bc, p.ldb)
	p.c = make([]float32, tc.m*p.ldc)
	for i := range p.c {
		switch {
		case i%p.ldc >= tc.n:
			p.c[i] = sentinel
		case tc.nanC:
			p.c[i] = float32(math.NaN())
		default:
			p.c[i] = float32(rng.NormFloat64())
		}
	}
	p.want = append([]float32(nil), p.c...)
	RefGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, p.a, p.lda, p.b, p.ldb, tc.beta, p.want, p.ldc)
	abs := func(s []float32) []float32 {
		o := make([]float32, len(s))
		for i, v := range s {
			o[i] = float32(math.Abs(float64(v)))
		}
		return o
	}
	p.mag = make([]float32, len(p.c))
	alpha := float32(math.Abs(float64(tc.alpha)))
	RefGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, alpha, abs(p.a), p.lda, abs(p.b), p.ldb, 0, p.mag, p.ldc)
	return p
}

// randMatrix returns rows×cols normal values with row stride ld; the
// padding holds values a GEMM must not use.
func randMatrix(rng *rand.Rand, rows, cols, ld int) []float32 {
	s := make([]float32, rows*ld)
	for i := range s {
		if i%ld < cols {
			s[i] = float32(rng.NormFloat64())
		} else {
			s[i] = 1e30 // would dominate any result it leaked into
		}
	}
	return s
}

// checkAgainstRef compares got with the RefGemm result on the same inputs.
// The bound is float32 accumulation error: a few ulps times k on the
// magnitude Σ|a||b|, plus the rounding of beta·C.
func checkAgainstRef(t *testing.T, tc gemmCase, p gemmProblem, got []float32) {
	t.Helper()
	want, mag := p.want, p.mag
	const eps = 1.0 / (1 << 23)
	bad := 0
	for i := 0; i < tc.m; i++ {
		for j := 0; j < p.ldc; j++ {
			idx := i*p.ldc + j
			if j >= tc.n {
				if got[idx] != sentinel {
					t.Fatalf("%v: C[%d][%d] (padding) = %g, was %g", tc, i, j, got[idx], sentinel)
				}
				continue
			}
			tol := eps * float64(tc.k+4) * float64(mag[idx])
			if tc.beta != 0 {
				tol += eps * 4 * math.Abs(float64(tc.beta)*float64(p.c[idx]))
			}
			tol += 1e-30
			d := math.Abs(float64(got[idx]) - float64(want[idx]))
			if !(d <= tol) {
				bad++
				if bad <= 3 {
					t.Errorf("%v: C[%d][%d] = %g, want %g (diff %g > tol %g)", tc, i, j, got[idx], want[idx], d, tol)
				}
			}
		}
	}
	if bad > 3 {
		t.Errorf("%v: %d elements wrong in all", tc, bad)
	}
}

// gemmCases builds the table: every transpose combination over odd and
// block-edge sizes, strided and not, with the alpha/beta combinations that
// take different code paths.
func gemmCases() []gemmCase {
	var cases []gemmCase
	type ab struct {
		alpha, beta float32
		nanC        bool
	}
	abs := []ab{{1, 0, true}, {1, 1, false}, {-0.5, 2, false}, {2, 0, false}, {0, 0.5, false}, {0, 0, true}}
	shapes := [][3]int{
		{1, 1, 1}, {3, 3, 3}, {1, 17, 5}, {17, 1, 33}, {17, 33, 3},
		{33, 17, 129}, {5, 65, 17}, {129, 31, 257}, {4, 3, 1},
	}
	for ti := 0; ti < 4; ti++ {
		tA, tB := ti&1 == 1, ti&2 == 2
		for si, s := range shapes {
			for ai, x := range abs {
				// Walk the alpha/beta list and strides diagonally over the
				// shapes to keep the table small but cover every pairing.
				if (si+ai)%2 != 0 && si > 2 {
					continue
				}
				cases = append(cases, gemmCase{tA, tB, s[0], s[1], s[2], (si + ai) % 3 * 3, x.alpha, x.beta, x.nanC})
			}
		}
		// Sizes that cross the cache blocks and the parallel split.
		cases = append(cases,
			gemmCase{tA, tB, 257, 129, 300, 7, 1, 0, true},
			gemmCase{tA, tB, 150, 1600, 20, 0, 0.75, -1, false},
			gemmCase{tA, tB, 600, 20, 400, 3, 1, 1, false},
		)
	}
	return cases
}

func TestGemmMatchesReference(t *testing.T) {
	cases := gemmCases()
	problems := make([]gemmProblem, len(cases))
	for ci, tc := range cases {
		problems[ci] = newProblem(tc, rand.New(rand.NewPCG(uint64(ci), 1)))
	}
	for _, tb := range testBackends() {
		t.Run(tb.name, func(t *testing.T) {
			cpu := tb.make()
			defer cpu.Close()
			for ci, tc := range cases {
				p := problems[ci]
				for _, serial := range []bool{false, true} {
					got := append([]float32(nil), p.c...)
					if serial {
						cpu.GemmSerial(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, p.a, p.lda, p.b, p.ldb, tc.beta, got, p.ldc)
					} else {
						cpu.Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, p.a, p.lda, p.b, p.ldb, tc.beta, got, p.ldc)
					}
					checkAgainstRef(t, tc, p, got)
				}
			}
		})
	}
}

// TestGemmZeroSizes checks that empty problems touch nothing (m or n = 0)
// or only scale C (k = 0), and accept empty slices.
func TestGemmZeroSizes(t *testing.T) {
	for _, tb := range testBackends() {
		t.Run(tb.name, func(t *testing.T) {
			cpu := tb.make()
			defer cpu.Close()
			for _, gemm := range []struct {
				name string
				f    gemmFunc
			}{{"Gemm", cpu.Gemm}, {"GemmSerial", cpu.GemmSerial}} {
				gemm.f(false, false, 0, 5, 3, 1, nil, 3, make([]float32, 15), 5, 0, nil, 5)
				gemm.f(true, true, 4, 0, 3, 1, make([]float32, 12), 4, nil, 3, 0, nil, 1)
				c := []float32{float32(math.NaN()), 2, 3, 4}
				gemm.f(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0, c, 2)
				for i, v := range c {
					if v != 0 {
						t.Errorf("%s k=0 beta=0: C[%d] = %g, want 0", gemm.name, i, v)
					}
				}
				c = []float32{1, 2, 3, 4}
				gemm.f(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 3, c, 2)
				for i, v := range c {
					if want := 3 * float32(i+1); v != want {
						t.Errorf("%s k=0 beta=3: C[%d] = %g, want %g", gemm.name, i, v, want)
					}
				}
			}
		})
	}
}

// TestGemmBadArgsPanic checks that inconsistent arguments are caught before
// any memory is touched, with a message naming the problem.
func TestGemmBadArgsPanic(t *testing.T) {
	cpu := NewCPU(2)
	defer cpu.Close()
	cases := []struct {
		name string
		call func()
		want string
	}{
		{"negative", func() { cpu.Gemm(false, false, -1, 2, 2, 1, nil, 2, nil, 2, 0, nil, 2) }, "negative size"},
		{"short A", func() {
			cpu.Gemm(false, false, 2, 2, 2, 1, make([]float32, 3), 2, make([]float32, 4), 2, 0, make([]float32, 4), 2)
		}, "A is 2×2"},
		{"lda small", func() {
			cpu.GemmSerial(false, true, 2, 2, 3, 1, make([]float32, 6), 2, make([]float32, 6), 3, 0, make([]float32, 4), 2)
		}, "ldA=2"},
		{"short C", func() {
			cpu.GemmSerial(true, false, 2, 2, 2, 1, make([]float32, 4), 2, make([]float32, 4), 2, 0, make([]float32, 3), 2)
		}, "C is 2×2"},
		{"ldb small transB", func() {
			cpu.Gemm(false, true, 2, 2, 3, 1, make([]float32, 6), 3, make([]float32, 6), 2, 0, make([]float32, 4), 2)
		}, "ldB=2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if !strings.Contains(msg, tc.want) {
					t.Errorf("panic %v, want one containing %q", r, tc.want)
				}
			}()
			tc.call()
		})
	}
}

// gemmManyTask runs independent GemmSerial problems, one per index.
type gemmManyTask struct {
	cpu     *CPU
	a, b    []float32 // shared inputs
	c       [][]float32
	m, n, k int
	base    int // index of c[0] among all problems
}

func (g *gemmManyTask) Run(lo, hi int) {
	for i := lo; i < hi; i++ {
		// Each problem gets a different alpha so a mix-up between outputs
		// shows.
		g.cpu.GemmSerial(false, true, g.m, g.n, g.k, float32(g.base+i+1), g.a, g.k, g.b, g.k, 0, g.c[i], g.n)
	}
}

// TestGemmSerialConcurrent runs many GemmSerial calls at once from Tasks
// (shared inputs, disjoint outputs), as attention does per head: a third
// of the problems through Parallel, the rest from plain goroutines at the
// same time.
func TestGemmSerialConcurrent(t *testing.T) {
	for _, tb := range testBackends() {
		t.Run(tb.name, func(t *testing.T) {
			cpu := tb.make()
			defer cpu.Close()
			const m, n, k, per = 33, 40, 19, 8
			rng := rand.New(rand.NewPCG(7, 7))
			a, b := randMatrix(rng, m, k, k), randMatrix(rng, n, k, k)
			var tasks []*gemmManyTask
			for g := range 3 {
				task := &gemmManyTask{cpu: cpu, m: m, n: n, k: k, a: a, b: b, base: g * per}
				for range per {
					task.c = append(task.c, make([]float32, m*n))
				}
				tasks = append(tasks, task)
			}
			var wg sync.WaitGroup
			for g, task := range tasks {
				wg.Go(func() {
					if g == 0 {
						cpu.Parallel(per, 1, task)
					} else {
						task.Run(0, per)
					}
				})
			}
			wg.Wait()
			want := make([]float32, m*n)
			for _, task := range tasks {
				for i, got := range task.c {
					alpha := float32(task.base + i + 1)
					RefGemm(false, true, m, n, k, alpha, a, k, b, k, 0, want, n)
					for j := range want {
						if d := math.Abs(float64(got[j] - want[j])); d > 1e-4*float64(alpha)*math.Sqrt(k) {
							t.Fatalf("problem %d: C[%d] = %g, want %g", task.base+i, j, got[j], want[j])
						}
					}
				}
			}
		})
	}
}

// gemmInTask calls Gemm (not GemmSerial) from inside a Task, which must run
// inline rather than deadlock.
type gemmInTask struct {
	cpu  *CPU
	a, b []float32
	c    [][]float32
	n    int
}

func (g *gemmInTask) Run(lo, hi int) {
	for i := lo; i < hi; i++ {
		g.cpu.Gemm(false, false, g.n, g.n, g.n, 1, g.a, g.n, g.b, g.n, 0, g.c[i], g.n)
	}
}

func TestGemmInsideTaskDoesNotDeadlock(t *testing.T) {
	cpu := NewCPU(2)
	defer cpu.Close()
	const n = 96 // large enough that Gemm would split if it could
	rng := rand.New(rand.NewPCG(3, 3))
	task := &gemmInTask{cpu: cpu, n: n, a: randMatrix(rng, n, n, n), b: randMatrix(rng, n, n, n)}
	for range 4 {
		task.c = append(task.c, make([]float32, n*n))
	}
	cpu.Parallel(4, 1, task)
	want := make([]float32, n*n)
	RefGemm(false, false, n, n, n, 1, task.a, n, task.b, n, 0, want, n)
	for i := range task.c {
		for j := range want {
			if d := math.Abs(float64(task.c[i][j] - want[j])); d > 1e-3 {
				t.Fatalf("problem %d: C[%d] = %g, want %g", i, j, task.c[i][j], want[j])
			}
		}
	}
}

func TestGemmAllocsNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	for _, tb := range testBackends() {
		t.Run(tb.name, func(t *testing.T) {
			cpu := tb.make()
			defer cpu.Close()
			const m, n, k = 128, 96, 64
			rng := rand.New(rand.NewPCG(1, 2))
			a, b, c := randMatrix(rng, m, k, k), randMatrix(rng, k, n, n), make([]float32, m*n)
			for _, gemm := range []struct {
				name string
				f    gemmFunc
			}{{"Gemm", cpu.Gemm}, {"GemmSerial", cpu.GemmSerial}} {
				allocs := testing.AllocsPerRun(20, func() {
					gemm.f(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
				})
				if allocs != 0 {
					t.Errorf("%s: %v allocations per call, want 0", gemm.name, allocs)
				}
			}
		})
	}
}

func TestNames(t *testing.T) {
	for _, tb := range testBackends() {
		cpu := tb.make()
		name := cpu.Name()
		cpu.Close()
		if !strings.HasPrefix(name, "cpu/") {
			t.Errorf("%s: Name() = %q, want a cpu/ name", tb.name, name)
		}
	}
	var _ Backend = (*CPU)(nil)
}
