package cluster

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// parts returns n random parts of m values with very different magnitudes,
// so that a different summation order changes the bits.
func randParts(n, m int, seed uint64) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, m)
		for j := range out[i] {
			out[i][j] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(8)-4)))
		}
	}
	return out
}

// naiveTree is the tree sum written from its definition, element by
// element in float32 (independent of treeSum32's buffers).
func naiveTree(parts [][]float32, j int) float32 {
	if len(parts) == 1 {
		return parts[0][j]
	}
	p := 1
	for p*2 < len(parts) {
		p *= 2
	}
	return naiveTree(parts[:p], j) + naiveTree(parts[p:], j)
}

func TestTreeSumMatchesDefinition(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 7, 8, 12} {
		parts := randParts(n, 33, uint64(n))
		dst := make([]float32, 33)
		tmp := make([][]float32, treeDepth(n))
		for i := range tmp {
			tmp[i] = make([]float32, 33)
		}
		treeSum32(dst, parts, tmp)
		var s LeafSum
		g := make([]float32, 33)
		for i, p := range parts {
			copy(g, p)
			if i < n-1 {
				s.Add(g, float64(i))
			}
		}
		loss := s.Finish(g, float64(n-1))
		for j := range dst {
			if want := naiveTree(parts, j); math.Float32bits(dst[j]) != math.Float32bits(want) || math.Float32bits(g[j]) != math.Float32bits(want) {
				t.Fatalf("n=%d [%d]: TreeSum32 %v, LeafSum %v, definition %v", n, j, dst[j], g[j], want)
			}
		}
		if want := float64(n*(n-1)) / 2; loss != want {
			t.Errorf("n=%d: loss sum %v, want %v", n, loss, want)
		}
	}
}

// The left-to-right sum differs from the tree in the last bits for these
// parts: the test above could not pass with any order.
func TestTreeSumOrderMatters(t *testing.T) {
	parts := randParts(8, 1000, 3)
	diff := 0
	for j := range 1000 {
		var seq float32
		for _, p := range parts {
			seq += p[j]
		}
		if seq != naiveTree(parts, j) {
			diff++
		}
	}
	if diff == 0 {
		t.Fatal("sequential and tree sums agree everywhere: the parts do not exercise the order")
	}
}

// rankSum sums c's consecutive share of parts with LeafSum, then
// all-reduces it over c's ranks in buckets of bucket values.
func rankSum(c Comm, parts [][]float32, bucket int) ([]float32, *Reducer, error) {
	per := len(parts) / c.Size()
	g := make([]float32, len(parts[0]))
	var s LeafSum
	for i := range per {
		copy(g, parts[c.Rank()*per+i])
		if i < per-1 {
			s.Add(g, 0)
		}
	}
	s.Finish(g, 0)
	r := NewReducer(c, bucket)
	return g, r, r.AllReduce(g)
}

// runLocal runs f on every rank of a Local world and waits.
func runLocal(t *testing.T, n int, f func(c Comm) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, c := range Local(n) {
		wg.Go(func() { errs[i] = f(c) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", i, err)
		}
	}
}

// Parts split over 1, 2 or 4 ranks (a power of two per rank) sum to the
// same bits as one process, in any bucket size, and the bytes sent are the
// buffer's size for 2 ranks.
func TestReducerMatchesOneProcess(t *testing.T) {
	const n, m = 8, 1001
	parts := randParts(n, m, 7)
	want := make([]float32, m)
	for j := range want {
		want[j] = naiveTree(parts, j)
	}
	for _, world := range []int{1, 2, 4, 8} {
		for _, bucket := range []int{0, 64, 1000} {
			got := make([][]float32, world)
			sent := make([]int64, world)
			runLocal(t, world, func(c Comm) error {
				g, r, err := rankSum(c, parts, bucket)
				got[c.Rank()], sent[c.Rank()] = g, r.BytesSent()
				return err
			})
			for rank, g := range got {
				for j := range g {
					if math.Float32bits(g[j]) != math.Float32bits(want[j]) {
						t.Fatalf("world %d bucket %d rank %d [%d]: %v, want %v", world, bucket, rank, j, g[j], want[j])
					}
				}
			}
			if world == 2 && bucket == 0 && sent[0] != 4*int64(m+1) {
				t.Errorf("2 ranks sent %d bytes, want the gradient's %d (+ padding to an even count)", sent[0], 4*(m+1))
			}
		}
	}
}

func TestReducerSum64AndAny(t *testing.T) {
	runLocal(t, 3, func(c Comm) error {
		r := NewReducer(c, 0)
		x := []float64{float64(c.Rank()), 1}
		if err := r.Sum64(x); err != nil {
			return err
		}
		if !slices.Equal(x, []float64{3, 3}) {
			t.Errorf("rank %d: Sum64 = %v", c.Rank(), x)
		}
		any, err := r.Any(c.Rank() == 2)
		if err != nil {
			return err
		}
		if !any {
			t.Errorf("rank %d: Any missed rank 2's flag", c.Rank())
		}
		none, err := r.Any(false)
		if none || err != nil {
			t.Errorf("rank %d: Any(false) = %v, %v", c.Rank(), none, err)
		}
		return nil
	})
}
