//go:build mpi

package cluster

import (
	"fmt"
	"math"
	"os"
	"testing"
)

// TestMain finalizes MPI after the tests when they ran under mpirun (a
// rank that exits without MPI_Finalize fails the job).
func TestMain(m *testing.M) {
	code := m.Run()
	if c, err := Open(); err == nil {
		c.Close()
	}
	os.Exit(code)
}

// TestMPIReducer runs under `mpirun -np N` (N dividing 8): the reduction
// over Open MPI gives every rank the bits of one process's tree sum.
func TestMPIReducer(t *testing.T) {
	if _, world, _, ok, _ := RankFromEnv(os.Getenv); !ok || world < 2 {
		t.Skip("not started by mpirun with several ranks: run `go test -c -tags mpi ./cluster && mpirun -np 2 ./cluster.test -test.run MPI`")
	}
	c, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	w := c.Size()
	if 8%w != 0 {
		t.Skipf("%d ranks do not divide the 8 parts", w)
	}
	const m = 3001
	parts := randParts(8, m, 11)
	g, r, err := rankSum(c, parts, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for j := range g {
		if want := naiveTree(parts, j); math.Float32bits(g[j]) != math.Float32bits(want) {
			t.Fatalf("rank %d of %d, value %d: %v, want %v", c.Rank(), w, j, g[j], want)
		}
	}
	x := []float64{float64(c.Rank() + 1)}
	if err := r.Sum64(x); err != nil || x[0] != float64(w*(w+1)/2) {
		t.Fatalf("Sum64: %v, %v", x, err)
	}
	buf := []byte(fmt.Sprint("rank", c.Rank()))
	if err := c.Broadcast(buf, 0); err != nil || string(buf) != "rank0" {
		t.Fatalf("Broadcast: %q, %v", buf, err)
	}
	if err := c.Barrier(); err != nil {
		t.Fatal(err)
	}
}
