package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestAttendCached checks one token's cached attention against a float64
// softmax(q·Kᵀ/√d)·V written out directly, over head layouts (multi-head,
// grouped, odd groups, one kv head), head sizes on and off the 16-lane
// vectors, cache lengths from 1 to past the 64-position blocks, value rows
// wider than the kv heads (a slot of a larger cache), and key rows of
// exactly npos or of KeyStride positions whose unused tail holds NaN
// (stale cache memory that must not leak into the result).
func TestAttendCached(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, sh := range []struct{ heads, kvHeads, hd int }{{4, 4, 16}, {8, 4, 32}, {6, 2, 20}, {4, 1, 8}, {2, 1, 48}, {6, 2, 64}, {3, 1, 1}} {
		for _, npos := range []int{1, 2, 3, 17, 40, 64, 83, 130} {
			for _, pad := range []int{0, 5} {
				name := fmt.Sprintf("heads=%d,kv=%d,hd=%d,npos=%d,pad=%d", sh.heads, sh.kvHeads, sh.hd, npos, pad)
				QD, KD := sh.heads*sh.hd, sh.kvHeads*sh.hd
				ld := KD + pad
				q := randSlice(rng, QD, 2)
				k, v := randSlice(rng, npos*ld, 1), randSlice(rng, npos*ld, 1)
				// The keys transposed, as a decoder caches them: exactly
				// npos positions per row without pad, KeyStride(npos)
				// with NaN past npos with it.
				ldk := npos
				if pad > 0 {
					ldk = KeyStride(npos)
				}
				kt := make([]float32, KD*ldk)
				for i := range kt {
					kt[i] = float32(math.NaN())
				}
				for t := range npos {
					for j := range KD {
						kt[j*ldk+t] = k[t*ld+j]
					}
				}
				G := sh.heads / sh.kvHeads
				out := make([]float32, QD)
				scores := make([]float32, ScoresLen(sh.heads, sh.kvHeads, ldk))
				q0 := append([]float32(nil), q...)
				AttendCached(out, q, kt, ldk, v, ld, scores, npos, sh.heads, sh.kvHeads, sh.hd)
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
	const heads, kvHeads, hd, npos = 8, 4, 32, 70
	ldk := KeyStride(npos)
	q, out := make([]float32, heads*hd), make([]float32, heads*hd)
	kt, v := make([]float32, kvHeads*hd*ldk), make([]float32, npos*kvHeads*hd)
	scores := make([]float32, ScoresLen(heads, kvHeads, ldk))
	if a := testing.AllocsPerRun(20, func() { AttendCached(out, q, kt, ldk, v, kvHeads*hd, scores, npos, heads, kvHeads, hd) }); a != 0 {
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
			KD, ldk := kvHeads*hd, KeyStride(npos)
			q, out := randSlice(rng, heads*hd, 1), make([]float32, heads*hd)
			kt, v := randSlice(rng, KD*ldk, 1), randSlice(rng, npos*KD, 1)
			scores := make([]float32, ScoresLen(heads, kvHeads, ldk))
			for b.Loop() {
				AttendCached(out, q, kt, ldk, v, KD, scores, npos, heads, kvHeads, hd)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(npos*kvHeads), "ns/pos/kvhead")
		})
	}
}
