package cluster

import (
	"fmt"
	"sync"
)

// Local returns the n communicators of a job whose ranks are goroutines
// of this process (tests run data-parallel training with it where MPI is
// missing). Each must be used by one goroutine; Abort panics.
func Local(n int) []Comm {
	w := &localWorld{n: n, slots: make([]any, n)}
	w.cond = sync.NewCond(&w.mu)
	out := make([]Comm, n)
	for i := range out {
		out[i] = &localComm{w: w, rank: i}
	}
	return out
}

// localWorld exchanges one value per rank per collective: every rank puts
// its value in its slot, the last to arrive publishes the round, and each
// reads all slots before the next round may start.
type localWorld struct {
	mu      sync.Mutex
	cond    *sync.Cond
	n       int
	slots   []any
	arrived int
	left    int
	round   int
	result  []any
}

func (w *localWorld) exchange(rank int, v any) []any {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.left > 0 { // the previous round is still being read
		w.cond.Wait()
	}
	w.slots[rank] = v
	w.arrived++
	round := w.round
	if w.arrived == w.n {
		w.result = append([]any(nil), w.slots...)
		w.arrived, w.left = 0, w.n
		w.round++
		w.cond.Broadcast()
	}
	for w.round == round {
		w.cond.Wait()
	}
	res := w.result
	w.left--
	if w.left == 0 {
		w.cond.Broadcast()
	}
	return res
}

type localComm struct {
	w    *localWorld
	rank int
}

func (c *localComm) Rank() int { return c.rank }
func (c *localComm) Size() int { return c.w.n }

func (c *localComm) AllGather(in, out []float32) error   { return localGather(c, in, out) }
func (c *localComm) AllGather64(in, out []float64) error { return localGather(c, in, out) }

func localGather[T any](c *localComm, in, out []T) error {
	if err := checkGather(len(in), len(out), c.w.n); err != nil {
		return err
	}
	all := c.w.exchange(c.rank, append([]T(nil), in...))
	for i, v := range all {
		copy(out[i*len(in):], v.([]T))
	}
	return nil
}

func (c *localComm) AllToAll(in, out []float32) error {
	if err := checkAllToAll(len(in), len(out), c.w.n); err != nil {
		return err
	}
	b := len(in) / c.w.n
	all := c.w.exchange(c.rank, append([]float32(nil), in...))
	for i, v := range all {
		copy(out[i*b:(i+1)*b], v.([]float32)[c.rank*b:(c.rank+1)*b])
	}
	return nil
}

func (c *localComm) Broadcast(buf []byte, root int) error {
	all := c.w.exchange(c.rank, append([]byte(nil), buf...))
	copy(buf, all[root].([]byte))
	return nil
}

func (c *localComm) Barrier() error {
	c.w.exchange(c.rank, nil)
	return nil
}

func (c *localComm) Abort(code int, msg string) { panic(fmt.Sprintf("abort (%d): %s", code, msg)) }
func (c *localComm) Close() error               { return nil }
