package kernels

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// coverTask counts how often each index is run and checks chunk sizes.
type coverTask struct {
	hits  []atomic.Int32
	n     int
	grain int
	short atomic.Int32 // chunks shorter than grain that do not end at n
	bad   atomic.Int32 // chunks outside [0, n) or empty
}

func newCoverTask(n, grain int) *coverTask {
	return &coverTask{hits: make([]atomic.Int32, n), n: n, grain: grain}
}

func (c *coverTask) Run(lo, hi int) {
	if lo < 0 || hi > c.n || lo >= hi {
		c.bad.Add(1)
		return
	}
	if hi-lo < c.grain && hi != c.n {
		c.short.Add(1)
	}
	for i := lo; i < hi; i++ {
		c.hits[i].Add(1)
	}
}

func (c *coverTask) check(t *testing.T, label string) {
	t.Helper()
	if err := c.verify(label); err != nil {
		t.Fatal(err)
	}
}

// verify is check for a goroutine other than the test's, which must not
// call t.Fatal: it returns what is wrong.
func (c *coverTask) verify(label string) error {
	if b := c.bad.Load(); b != 0 {
		return fmt.Errorf("%s: %d chunks out of range or empty", label, b)
	}
	if s := c.short.Load(); s != 0 {
		return fmt.Errorf("%s: %d chunks shorter than grain %d", label, s, c.grain)
	}
	for i := range c.hits {
		if h := c.hits[i].Load(); h != 1 {
			return fmt.Errorf("%s: index %d run %d times, want once", label, i, h)
		}
	}
	return nil
}

func (c *coverTask) reset() {
	for i := range c.hits {
		c.hits[i].Store(0)
	}
	c.short.Store(0)
	c.bad.Store(0)
}

func TestParallelCoversEveryIndexOnce(t *testing.T) {
	ns := []int{0, 1, 2, 3, 7, 16, 17, 100, 1000, 4097}
	grains := []int{-1, 0, 1, 2, 3, 16, 100, 5000}
	for _, workers := range []int{1, 2, 3, 8} {
		cpu := NewCPU(workers)
		for _, n := range ns {
			for _, grain := range grains {
				task := newCoverTask(n, grain)
				// Several rounds on the same pool exercise the hand-over
				// between generations (spinning and parked workers).
				for round := range 3 {
					cpu.Parallel(n, grain, task)
					task.check(t, "workers="+strconv.Itoa(workers)+" n="+strconv.Itoa(n)+" grain="+strconv.Itoa(grain)+" round="+strconv.Itoa(round))
					task.reset()
				}
			}
		}
		cpu.Close()
	}
}

// nestedTask calls Parallel on the same backend from inside each chunk.
type nestedTask struct {
	cpu   *CPU
	inner []*coverTask
}

func (nt *nestedTask) Run(lo, hi int) {
	for i := lo; i < hi; i++ {
		nt.cpu.Parallel(len(nt.inner[i].hits), 1, nt.inner[i])
	}
}

func TestParallelNestedRunsInline(t *testing.T) {
	cpu := NewCPU(3)
	defer cpu.Close()
	nt := &nestedTask{cpu: cpu}
	for i := range 10 {
		nt.inner = append(nt.inner, newCoverTask(50+i, 1))
	}
	cpu.Parallel(len(nt.inner), 1, nt)
	for i, in := range nt.inner {
		in.check(t, "inner "+strconv.Itoa(i))
	}
}

// TestParallelFromManyGoroutines calls Parallel from several goroutines at
// once and one after another; each call must still cover its range once.
func TestParallelFromManyGoroutines(t *testing.T) {
	cpu := NewCPU(2)
	defer cpu.Close()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			task := newCoverTask(500+g, 3)
			for round := range 50 {
				cpu.Parallel(task.n, task.grain, task)
				if err := task.verify("goroutine " + strconv.Itoa(g) + " round " + strconv.Itoa(round)); err != nil {
					t.Error(err) // not Fatal: this is not the test's goroutine
					return
				}
				task.reset()
			}
		})
	}
	wg.Wait()
}

func TestParallelAfterClose(t *testing.T) {
	cpu := NewCPU(4)
	cpu.Close()
	cpu.Close() // idempotent
	task := newCoverTask(1000, 1)
	cpu.Parallel(1000, 1, task)
	task.check(t, "after Close")
}

type nopTask struct{ sum atomic.Int64 }

func (n *nopTask) Run(lo, hi int) { n.sum.Add(int64(hi - lo)) }

func TestParallelAllocsNothing(t *testing.T) {
	cpu := NewCPU(3)
	defer cpu.Close()
	task := &nopTask{}
	for _, c := range []struct{ n, grain int }{{1000, 1}, {10, 1}, {1, 1}, {100000, 64}} {
		allocs := testing.AllocsPerRun(200, func() { cpu.Parallel(c.n, c.grain, task) })
		if allocs != 0 {
			t.Errorf("Parallel(%d, %d): %v allocations per call, want 0", c.n, c.grain, allocs)
		}
	}
}

func TestWorkers(t *testing.T) {
	for _, w := range []int{1, 2, 5} {
		cpu := NewCPU(w)
		if got := cpu.Workers(); got != w {
			t.Errorf("NewCPU(%d).Workers() = %d", w, got)
		}
		cpu.Close()
	}
	cpu := NewCPU(0)
	defer cpu.Close()
	if cpu.Workers() < 1 {
		t.Errorf("NewCPU(0).Workers() = %d, want GOMAXPROCS", cpu.Workers())
	}
}
