package cluster

import (
	"errors"
	"fmt"
	"os"
)

// Comm is a communicator over the ranks of one job: the few collectives
// data-parallel training needs. Every rank must call the collectives in
// the same order with buffers of the same length. Implementations: Single
// (one process), the Open MPI one (build tag mpi, see Open) and, for tests,
// Local (goroutines of one process).
type Comm interface {
	// Rank is this process's index in [0, Size()).
	Rank() int
	// Size is the number of ranks.
	Size() int
	// AllGather sets out, Size()·len(in) values, to every rank's in in
	// rank order.
	AllGather(in, out []float32) error
	// AllGather64 is AllGather for float64 values.
	AllGather64(in, out []float64) error
	// AllToAll sends the j-th of Size() equal blocks of in to rank j and
	// puts the block rank i sent this rank at the i-th block of out.
	AllToAll(in, out []float32) error
	// Broadcast sets buf on every rank to root's buf.
	Broadcast(buf []byte, root int) error
	// Barrier returns once every rank has called it.
	Barrier() error
	// Abort stops every rank of the job with code (under MPI it does not
	// return); msg is printed first, naming this rank.
	Abort(code int, msg string)
	// Close ends this process's part in the job (MPI_Finalize for the
	// communicator Open made).
	Close() error
}

// Single is the communicator of a one-process job: every collective is a
// copy.
type Single struct{}

func (Single) Rank() int                           { return 0 }
func (Single) Size() int                           { return 1 }
func (Single) AllGather(in, out []float32) error   { return copyChecked(in, out, checkGather) }
func (Single) AllGather64(in, out []float64) error { return copyChecked(in, out, checkGather) }
func (Single) AllToAll(in, out []float32) error    { return copyChecked(in, out, checkAllToAll) }

// copyChecked is a one-rank collective: a copy, after check.
func copyChecked[T any](in, out []T, check func(in, out, ranks int) error) error {
	if err := check(len(in), len(out), 1); err != nil {
		return err
	}
	copy(out, in)
	return nil
}
func (Single) Broadcast([]byte, int) error { return nil }
func (Single) Barrier() error              { return nil }
func (Single) Abort(code int, msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(code)
}
func (Single) Close() error { return nil }

// fail stops a job of several ranks after an error on this rank: the others
// may be waiting in a collective for it, so it prints err naming the rank
// and aborts the whole job (which does not return under MPI). With one
// rank, or no error, it does nothing.
func fail(c Comm, err error) {
	if c == nil || c.Size() < 2 || err == nil {
		return
	}
	c.Abort(1, fmt.Sprintf("herd: rank %d of %d failed, stopping every rank of the job: %v", c.Rank(), c.Size(), err))
}

// With runs fn on the communicator given, or, when given is nil, on the
// one cluster.Open returns (closed afterwards). An error on this rank of a
// job of several stops the job (Fail), since the other ranks may be
// waiting for this one in a collective.
func With[T any](given Comm, fn func(Comm) (T, error)) (T, error) {
	c := given
	if c == nil {
		var err error
		if c, err = Open(); err != nil {
			var zero T
			return zero, err
		}
	}
	res, err := fn(c)
	fail(c, err)
	if given == nil {
		if cerr := c.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	return res, err
}

// checkGather checks an all-gather's buffer lengths.
func checkGather(in, out, ranks int) error {
	if out != in*ranks || in == 0 {
		return fmt.Errorf("all-gather: %d values out for %d in from %d ranks", out, in, ranks)
	}
	return nil
}

// checkAllToAll checks an all-to-all's buffer lengths.
func checkAllToAll(in, out, ranks int) error {
	if in != out || in%ranks != 0 || in == 0 {
		return fmt.Errorf("all-to-all: %d values in, %d out, over %d ranks", in, out, ranks)
	}
	return nil
}

// errNotMPI explains how to run several ranks with a build lacking MPI.
var errNotMPI = errors.New("this binary was built without MPI support; rebuild it with `go build -tags mpi` (needs libopenmpi-dev) to run it under mpirun, Slurm or an MPIJob")
