//go:build goexperiment.simd && amd64

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"simd/archsimd"
	"testing"
)

// The AVX2 attention kernels are called directly, so a CPU with AVX-512
// tests them too, and so are the xxxSIMD ones (AVX-512 where the CPU has
// it, else the AVX2 twins they fall back to); each is checked against float64 sums written out here,
// over the shapes of TestAttendCached and more: grouped heads (G of 1 to
// 5, odd G repeats its last row), head sizes on and off the 8-lane
// vectors, position counts around the 8- and 32-position blocks, rows
// readable exactly to npos or to a whole vector, and strides wider than
// the rows. Inputs past what a kernel may read hold NaN, so a stray read
// shows in the result, and outputs past what it may write hold a
// sentinel, so a stray write is caught.

const attendSentinel = 12345

var (
	attendAVX2G    = []int{1, 2, 3, 5}
	attendAVX2Npos = []int{1, 2, 3, 7, 8, 9, 17, 31, 32, 33, 40, 64, 68, 83, 130}
)

func skipNoAVX2(t testing.TB) {
	if !hasAVX2() {
		t.Skip("the CPU has no AVX2 with FMA")
	}
}

// nanSlice returns n NaNs, to be partly overwritten with valid input.
func nanSlice(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(math.NaN())
	}
	return s
}

// sentinelSlice returns n copies of attendSentinel.
func sentinelSlice(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = attendSentinel
	}
	return s
}

// scoresKernel is attendScoresSIMD's type.
type scoresKernel func(s []float32, lds int, q, kt []float32, ldk, npos, w, G, hd int) bool

func TestAttendScoresAVX2(t *testing.T) {
	skipNoAVX2(t)
	rng := rand.New(rand.NewPCG(10, 1))
	for _, k := range []struct {
		name string
		f    scoresKernel
	}{{"avx2", attendScoresAVX2}, {"simd", attendScoresSIMD}} {
		for _, G := range attendAVX2G {
			for _, hd := range []int{1, 3, 8, 20, 32, 64} {
				for _, npos := range attendAVX2Npos {
					// w: the positions each key row may be read at: exactly
					// npos, a whole 8-lane vector, a whole 16-lane one.
					for _, w := range []int{npos, (npos + 7) &^ 7, (npos + 15) &^ 15} {
						for _, pad := range []int{0, 3} {
							name := fmt.Sprintf("%s:G=%d,hd=%d,npos=%d,w=%d,pad=%d", k.name, G, hd, npos, w, pad)
							ldk := w + pad
							lds := ldk
							if pad > 0 {
								lds = npos // too narrow for whole vectors unless npos%8 == 0
							}
							checkScores(t, rng, k.f, name, G, hd, npos, w, ldk, lds)
						}
					}
				}
			}
		}
	}
}

// dot64 returns the float64 sum of a[i·sa]·b[i·sb] over n terms and the
// sum of their magnitudes, the scale of a float32 sum's rounding error.
func dot64(a []float32, sa int, b []float32, sb, n int) (sum, mag float64) {
	for i := range n {
		x := float64(a[i*sa]) * float64(b[i*sb])
		sum += x
		mag += math.Abs(x)
	}
	return sum, mag
}

func checkScores(t *testing.T, rng *rand.Rand, f scoresKernel, name string, G, hd, npos, w, ldk, lds int) {
	t.Helper()
	q := randSlice(rng, G*hd, 1)
	kt := nanSlice((hd-1)*ldk + w)
	for i := range hd {
		for p := range npos {
			kt[i*ldk+p] = float32(rng.NormFloat64())
		}
	}
	s := sentinelSlice(G*lds + 9)
	ok := f(s, lds, q, kt, ldk, npos, w, G, hd)
	if nv := min((npos+7)&^7, w); !ok {
		if nv&^7 <= lds {
			t.Fatalf("%s: reported false, want it to run", name)
		}
		for i, x := range s {
			if x != attendSentinel {
				t.Fatalf("%s: reported false but wrote s[%d] = %g", name, i, x)
			}
		}
		return
	}
	for g := range G {
		for p := range npos {
			want, mag := dot64(q[g*hd:], 1, kt[p:], ldk, hd)
			if got := float64(s[g*lds+p]); !(math.Abs(got-want) <= 1e-6*mag+1e-7) {
				t.Fatalf("%s: s[%d][%d] = %g, want %g", name, g, p, got, want)
			}
		}
	}
	checkRowsKept(t, name, s, lds, G, w)
}

// checkRowsKept fails unless the G rows of s, lds apart, still hold
// attendSentinel past their first w positions (lanes past npos may be
// written, up to w, in the row's room), and so does s past the last row.
func checkRowsKept(t *testing.T, name string, s []float32, lds, G, w int) {
	t.Helper()
	for g := range G {
		end := (g + 1) * lds
		if g == G-1 {
			end = len(s)
		}
		for i := g*lds + min(w, lds); i < end; i++ {
			if s[i] != attendSentinel {
				t.Fatalf("%s: wrote s[%d] = %g past row %d's %d positions", name, i, s[i], g, w)
			}
		}
	}
}

func TestAttendExpAVX2(t *testing.T) {
	skipNoAVX2(t)
	rng := rand.New(rand.NewPCG(10, 2))
	for _, k := range []struct {
		name string
		f    func(s []float32, lds, npos, w, G int, sums []float32) bool
	}{{"avx2", attendExpAVX2}, {"simd", attendExpSIMD}} {
		for _, G := range attendAVX2G {
			for _, npos := range attendAVX2Npos {
				nv := (npos + 7) &^ 7
				for _, w := range []int{npos, nv, (npos + 15) &^ 15} {
					for _, pad := range []int{0, 5} {
						name := fmt.Sprintf("%s:G=%d,npos=%d,w=%d,pad=%d", k.name, G, npos, w, pad)
						lds := w + pad
						// Scores of both signs and a wide range, the row's
						// readable tail past npos NaN (stale scratch).
						s := sentinelSlice(G*lds + 9)
						for g := range G {
							copy(s[g*lds:g*lds+w], nanSlice(w))
							for p := range npos {
								s[g*lds+p] = float32(rng.NormFloat64() * 8)
							}
						}
						s0 := append([]float32(nil), s...)
						sums := sentinelSlice(G + 1)
						if !k.f(s, lds, npos, w, G, sums[:G]) {
							if w >= nv {
								t.Fatalf("%s: reported false, want it to run", name)
							}
							continue
						}
						if sums[G] != attendSentinel {
							t.Fatalf("%s: wrote sums[%d]", name, G)
						}
						for g := range G {
							m := float32(math.Inf(-1))
							for _, x := range s0[g*lds : g*lds+npos] {
								m = max(m, x)
							}
							var sum float64
							for p := range npos {
								want := math.Exp(float64(s0[g*lds+p] - m))
								sum += want
								if got := float64(s[g*lds+p]); !(math.Abs(got-want) <= 4e-7*want+1e-38) {
									t.Fatalf("%s: row %d position %d: exp(%g) = %g, want %g", name, g, p, s0[g*lds+p]-m, got, want)
								}
							}
							if got := float64(sums[g]); !(math.Abs(got-sum) <= 1e-6*sum) {
								t.Fatalf("%s: sums[%d] = %g, want %g", name, g, got, sum)
							}
						}
						checkRowsKept(t, name, s, lds, G, w)
					}
				}
			}
		}
	}
}

func TestAttendValuesAVX2(t *testing.T) {
	skipNoAVX2(t)
	rng := rand.New(rand.NewPCG(10, 3))
	for _, k := range []struct {
		name string
		f    func(out, p []float32, ldp int, v []float32, ldv, npos, G, hd int) bool
	}{{"avx2", attendValuesAVX2}, {"simd", attendValuesSIMD}} {
		for _, G := range attendAVX2G {
			for _, hd := range []int{8, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 20, 1} {
				for _, npos := range attendAVX2Npos {
					for _, pad := range []int{0, 5} {
						name := fmt.Sprintf("%s:G=%d,hd=%d,npos=%d,pad=%d", k.name, G, hd, npos, pad)
						ldp, ldv := npos+pad, hd+pad
						// Probabilities and values, NaN past what may be read.
						p := nanSlice((G-1)*ldp + npos)
						for g := range G {
							for i := range npos {
								p[g*ldp+i] = rng.Float32()
							}
						}
						v := nanSlice((npos-1)*ldv + hd)
						for i := range npos {
							for c := range hd {
								v[i*ldv+c] = float32(rng.NormFloat64())
							}
						}
						out := sentinelSlice(G*hd + 9)
						if !k.f(out, p, ldp, v, ldv, npos, G, hd) {
							if hd%8 == 0 {
								t.Fatalf("%s: reported false, want it to run", name)
							}
							for i, x := range out {
								if x != attendSentinel {
									t.Fatalf("%s: reported false but wrote out[%d] = %g", name, i, x)
								}
							}
							continue
						}
						if hd%8 != 0 {
							t.Fatalf("%s: ran on a head size off the 8-lane vectors", name)
						}
						for g := range G {
							for c := range hd {
								want, mag := dot64(p[g*ldp:], 1, v[c:], ldv, npos)
								if got := float64(out[g*hd+c]); !(math.Abs(got-want) <= 1e-6*mag+1e-7) {
									t.Fatalf("%s: out[%d][%d] = %g, want %g", name, g, c, got, want)
								}
							}
						}
						for i := G * hd; i < len(out); i++ {
							if out[i] != attendSentinel {
								t.Fatalf("%s: wrote out[%d] = %g past the end", name, i, out[i])
							}
						}
					}
				}
			}
		}
	}
}

// TestAttendAVX2Allocs checks that the AVX2 kernels allocate nothing.
func TestAttendAVX2Allocs(t *testing.T) {
	skipNoAVX2(t)
	const G, hd, npos = 2, 32, 70
	ld := KeyStride(npos)
	q, out := make([]float32, G*hd), make([]float32, G*hd)
	kt, v := make([]float32, hd*ld), make([]float32, npos*hd)
	s, sums := make([]float32, G*ld), make([]float32, G)
	if a := testing.AllocsPerRun(20, func() {
		attendScoresAVX2(s, ld, q, kt, ld, npos, ld, G, hd)
		attendExpAVX2(s, ld, npos, ld, G, sums)
		attendValuesAVX2(out, s, ld, v, hd, npos, G, hd)
	}); a != 0 {
		t.Fatalf("%v allocations per call of the AVX2 kernels, want 0", a)
	}
}

// BenchmarkAttendKernels times each attention kernel of a decoding step
// alone, the AVX-512 one against its AVX2 twin in one run, for config M's
// heads (a group of 2 query heads, head size 32) and Llama 3 8B's (4,
// 128) over a short and a long cache, in ns per position.
func BenchmarkAttendKernels(b *testing.B) {
	skipNoAVX2(b)
	rng := rand.New(rand.NewPCG(10, 4))
	for _, sh := range []struct{ G, hd, npos int }{{2, 32, 68}, {2, 32, 512}, {4, 128, 68}, {4, 128, 512}} {
		G, hd, npos := sh.G, sh.hd, sh.npos
		ld := KeyStride(npos)
		q, out := randSlice(rng, G*hd, 1), make([]float32, G*hd)
		kt, v := randSlice(rng, hd*ld, 1), randSlice(rng, npos*hd, 1)
		s, sums := randSlice(rng, G*ld, 1), make([]float32, G)
		type tier struct {
			name                string
			scores, exp, values func() bool
		}
		tiers := []tier{{"avx2",
			func() bool { return attendScoresAVX2(s, ld, q, kt, ld, npos, ld, G, hd) },
			func() bool { return attendExpAVX2(s, ld, npos, ld, G, sums) },
			func() bool { return attendValuesAVX2(out, s, ld, v, hd, npos, G, hd) },
		}}
		if archsimd.X86.AVX512() {
			tiers = append([]tier{{"avx512",
				func() bool { return attendScoresSIMD(s, ld, q, kt, ld, npos, ld, G, hd) },
				func() bool { return attendExpSIMD(s, ld, npos, ld, G, sums) },
				func() bool { return attendValuesSIMD(out, s, ld, v, hd, npos, G, hd) },
			}}, tiers...)
		}
		for _, k := range []string{"scores", "exp", "values"} {
			for _, tr := range tiers {
				f := map[string]func() bool{"scores": tr.scores, "exp": tr.exp, "values": tr.values}[k]
				b.Run(fmt.Sprintf("%s/G=%d,hd=%d,npos=%d/%s", k, G, hd, npos, tr.name), func(b *testing.B) {
					for b.Loop() {
						if !f() {
							b.Fatal("the kernel did not run")
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(npos), "ns/pos")
				})
			}
		}
	}
}
