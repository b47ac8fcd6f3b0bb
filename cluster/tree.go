package cluster

import (
	"fmt"
	"math/bits"
)

// The sums of data-parallel training follow one fixed binary tree over
// the n parts of a global batch (its micro-batches), so that the result
// does not depend on how many ranks computed them: T(n) splits at the
// largest power of two p < n into T(p) + T(n−p), and T(1) is the part.
// When every rank holds the same power-of-two number L of consecutive
// parts, each rank's T(L) is a node of T(n) and T(n) over the parts is
// T(n/L) over the ranks' sums: the rank tree (RankTreeSum) continues the
// local tree (LeafSum) exactly, and 1, 2 or n/L ranks give the same bits.
// Float addition is commutative, so only the tree's shape matters.

// split is where T(n) splits (n ≥ 2).
func split(n int) int {
	p := 1 << (bits.Len(uint(n-1)) - 1)
	return p
}

// treeSum32 sets dst to the tree sum of the n = len(parts) slices (all
// of len(dst)); tmp holds the partial sums, at least depth(n) slices of
// len(dst) (see treeDepth).
func treeSum32(dst []float32, parts [][]float32, tmp [][]float32) {
	n := len(parts)
	if n == 1 {
		copy(dst, parts[0])
		return
	}
	p := split(n)
	treeSum32(dst, parts[:p], tmp)
	t := tmp[0]
	treeSum32(t, parts[p:], tmp[1:])
	for i := range dst {
		dst[i] += t[i]
	}
}

// treeDepth is the number of scratch slices treeSum32 needs for n parts.
func treeDepth(n int) int {
	if n <= 1 {
		return 0
	}
	return 1 + max(treeDepth(split(n)), treeDepth(n-split(n)))
}

// TreeSum64 is the tree sum of scalars.
func TreeSum64(x []float64) float64 {
	switch len(x) {
	case 0:
		return 0
	case 1:
		return x[0]
	}
	p := split(len(x))
	return TreeSum64(x[:p]) + TreeSum64(x[p:])
}

// LeafSum sums a rank's parts of a global batch in the tree order, one at
// a time, with log₂ of their number in scratch buffers: the gradient of
// each part is computed into a zeroed buffer g, then Add moves it into the
// partial sums (and zeroes g), and Finish leaves the total in g. With one
// part it copies nothing.
type LeafSum struct {
	slots  [][]float32 // slots[l]: the sum of 2^l consecutive parts
	have   []bool
	losses []float64
}

// Add takes the part in g (leaving g zeroed) with its loss.
func (s *LeafSum) Add(g []float32, loss float64) {
	s.losses = append(s.losses, loss)
	for l := 0; ; l++ {
		if l == len(s.slots) {
			s.slots = append(s.slots, make([]float32, len(g)))
			s.have = append(s.have, false)
		}
		if !s.have[l] {
			copy(s.slots[l], g)
			s.have[l] = true
			break
		}
		add(g, s.slots[l])
		s.have[l] = false
	}
	clear(g)
}

// Finish adds the last part, in g, to the earlier ones and leaves their
// tree sum in g; it returns the tree sum of the losses and starts the
// next sum.
func (s *LeafSum) Finish(g []float32, loss float64) float64 {
	s.losses = append(s.losses, loss)
	for l := range s.slots {
		if s.have[l] {
			add(g, s.slots[l])
			s.have[l] = false
		}
	}
	total := TreeSum64(s.losses)
	s.losses = s.losses[:0]
	return total
}

func add(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}

// Reducer all-reduces float32 buffers over the ranks of a communicator in
// fixed-size buckets, in order, summing each element with the rank tree,
// so every rank gets the same bits and the sum continues each rank's
// LeafSum. Per bucket it is a reduce-scatter (all-to-all, each rank sums
// its 1/Size of the bucket) and an all-gather: each rank sends and
// receives 2·(Size−1)/Size of the buffer, the gradient's size for 2 ranks.
type Reducer struct {
	c                Comm
	bucket           int
	send, recv, red  []float32
	all              []float32
	parts, tmp, tmpv [][]float32
	scal, scalAll    []float64
	bytes            int64
}

// defaultBucket is the bucket size of NewReducer (values): 4 MiB.
const defaultBucket = 1 << 20

// NewReducer reduces over c in buckets of bucket values (0: defaultBucket,
// 1<<20 values).
func NewReducer(c Comm, bucket int) *Reducer {
	if bucket <= 0 {
		bucket = defaultBucket
	}
	return &Reducer{c: c, bucket: bucket}
}

// Comm is the reducer's communicator.
func (r *Reducer) Comm() Comm { return r.c }

// BytesSent is the number of bytes this rank has sent so far.
func (r *Reducer) BytesSent() int64 { return r.bytes }

// AllReduce replaces buf on every rank with the sum over the ranks.
func (r *Reducer) AllReduce(buf []float32) error {
	w := r.c.Size()
	if w == 1 {
		return nil
	}
	for lo := 0; lo < len(buf); lo += r.bucket {
		if err := r.bucketReduce(buf[lo:min(lo+r.bucket, len(buf))]); err != nil {
			return fmt.Errorf("all-reduce of values [%d, %d): %w", lo, min(lo+r.bucket, len(buf)), err)
		}
	}
	return nil
}

func (r *Reducer) bucketReduce(b []float32) error {
	w := r.c.Size()
	chunk := (len(b) + w - 1) / w
	n := chunk * w
	if cap(r.send) < n {
		r.send, r.recv, r.all = make([]float32, n), make([]float32, n), make([]float32, n)
	}
	send, recv, all := r.send[:n], r.recv[:n], r.all[:n]
	copy(send, b)
	clear(send[len(b):])
	if err := r.c.AllToAll(send, recv); err != nil {
		return err
	}
	if cap(r.red) < chunk {
		r.red = make([]float32, chunk)
		r.tmp = make([][]float32, treeDepth(w))
		for i := range r.tmp {
			r.tmp[i] = make([]float32, chunk)
		}
	}
	red := r.red[:chunk]
	r.parts = r.parts[:0]
	for i := range w {
		r.parts = append(r.parts, recv[i*chunk:(i+1)*chunk])
	}
	if len(r.tmpv) != len(r.tmp) {
		r.tmpv = make([][]float32, len(r.tmp))
	}
	for i := range r.tmpv {
		r.tmpv[i] = r.tmp[i][:chunk]
	}
	treeSum32(red, r.parts, r.tmpv)
	if err := r.c.AllGather(red, all); err != nil {
		return err
	}
	copy(b, all)
	r.bytes += int64(2*(w-1)*chunk) * 4
	return nil
}

// Sum64 replaces each value of x on every rank with its rank-tree sum over
// the ranks.
func (r *Reducer) Sum64(x []float64) error {
	w := r.c.Size()
	if w == 1 {
		return nil
	}
	n := len(x)
	if n == 0 {
		return nil
	}
	if cap(r.scalAll) < n*w {
		r.scalAll, r.scal = make([]float64, n*w), make([]float64, w)
	}
	all := r.scalAll[:n*w]
	if err := r.c.AllGather64(x, all); err != nil {
		return err
	}
	for j := range x {
		for i := range w {
			r.scal[i] = all[i*n+j]
		}
		x[j] = TreeSum64(r.scal[:w])
	}
	return nil
}

// Any reports on every rank whether flag is true on any rank.
func (r *Reducer) Any(flag bool) (bool, error) {
	v := []float64{0}
	if flag {
		v[0] = 1
	}
	if err := r.Sum64(v); err != nil {
		return false, err
	}
	return v[0] > 0, nil
}
