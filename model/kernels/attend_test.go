package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestAttendCached checks one token's cached attention against a float64
// softmax(q·Kᵀ/√d)·V written out directly, over head layouts (multi-head,
// grouped, one kv head), head sizes on and off the 16-lane vectors, cache
// lengths from 1, and a row stride wider than the kv heads (a slot of a
// larger cache).
func TestAttendCached(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, sh := range []struct{ heads, kvHeads, hd int }{{4, 4, 16}, {8, 4, 32}, {6, 2, 20}, {4, 1, 8}, {2, 1, 48}} {
		for _, npos := range []int{1, 2, 3, 17, 40} {
			for _, pad := range []int{0, 5} {
				name := fmt.Sprintf("heads=%d,kv=%d,hd=%d,npos=%d,pad=%d", sh.heads, sh.kvHeads, sh.hd, npos, pad)
				QD, KD := sh.heads*sh.hd, sh.kvHeads*sh.hd
				ld := KD + pad
				q := randSlice(rng, QD, 2)
				k, v := randSlice(rng, npos*ld, 1), randSlice(rng, npos*ld, 1)
				G := sh.heads / sh.kvHeads
				out := make([]float32, QD)
				scores := make([]float32, G*npos)
				q0 := append([]float32(nil), q...)
				AttendCached(out, q, k, v, scores, npos, sh.heads, sh.kvHeads, sh.hd, ld)
				scale := 1 / math.Sqrt(float64(sh.hd))
				for h := range sh.heads {
					kh := h / G
					s := make([]float64, npos)
					mx := math.Inf(-1)
					for j := range npos {
						for i := range sh.hd {
							s[j] += float64(q0[h*sh.hd+i]) * float64(k[j*ld+kh*sh.hd+i]) * scale
						}
						mx = math.Max(mx, s[j])
					}
					var sum float64
					for j := range s {
						s[j] = math.Exp(s[j] - mx)
						sum += s[j]
					}
					for i := range sh.hd {
						var want, mag float64
						for j := range npos {
							want += s[j] / sum * float64(v[j*ld+kh*sh.hd+i])
							mag += s[j] / sum * math.Abs(float64(v[j*ld+kh*sh.hd+i]))
						}
						if got := float64(out[h*sh.hd+i]); math.Abs(got-want) > 1e-5*mag+1e-6 {
							t.Fatalf("%s: out[head %d][%d] = %g, want %g", name, h, i, got, want)
						}
					}
				}
			}
		}
	}
}

// TestAttendCachedAllocs checks that a cached attention allocates nothing.
func TestAttendCachedAllocs(t *testing.T) {
	const heads, kvHeads, hd, npos = 8, 4, 32, 64
	q, out := make([]float32, heads*hd), make([]float32, heads*hd)
	k, v := make([]float32, npos*kvHeads*hd), make([]float32, npos*kvHeads*hd)
	scores := make([]float32, 2*npos)
	if a := testing.AllocsPerRun(20, func() { AttendCached(out, q, k, v, scores, npos, heads, kvHeads, hd, kvHeads*hd) }); a != 0 {
		t.Fatalf("%v allocations per AttendCached, want 0", a)
	}
}

// BenchmarkAttendCached times one decoding token's attention for config
// M's heads (8 query heads, 4 kv heads, head size 32) over caches of a
// short and a long sequence.
func BenchmarkAttendCached(b *testing.B) {
	const heads, kvHeads, hd = 8, 4, 32
	rng := rand.New(rand.NewPCG(5, 5))
	for _, npos := range []int{68, 512} {
		b.Run(fmt.Sprintf("npos=%d", npos), func(b *testing.B) {
			KD := kvHeads * hd
			q, out := randSlice(rng, heads*hd, 1), make([]float32, heads*hd)
			k, v := randSlice(rng, npos*KD, 1), randSlice(rng, npos*KD, 1)
			scores := make([]float32, heads/kvHeads*npos)
			for b.Loop() {
				AttendCached(out, q, k, v, scores, npos, heads, kvHeads, hd, KD)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(npos*kvHeads), "ns/pos/kvhead")
		})
	}
}
