//go:build mpi

package cluster

// A thin cgo binding of the few MPI calls herd needs, rather than
// cogentcore.org/lab/base/mpi: that package's all-reduce sums in whatever
// order the MPI library picks (no bit-identical reduction), it has no
// all-to-all, and it ends the process on an MPI error instead of
// returning it.

/*
#cgo pkg-config: ompi-c
#include <mpi.h>
#include <stdlib.h>

static int herd_init(int *provided) {
	int flag = 0;
	MPI_Initialized(&flag);
	if (flag) { *provided = MPI_THREAD_SERIALIZED; return MPI_SUCCESS; }
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
	if (rc == MPI_SUCCESS) MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	return rc;
}
static int herd_finalized(void) { int f = 0; MPI_Finalized(&f); return f; }
static int herd_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int herd_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int herd_allgather_f32(float *in, float *out, int n) {
	return MPI_Allgather(in, n, MPI_FLOAT, out, n, MPI_FLOAT, MPI_COMM_WORLD);
}
static int herd_allgather_f64(double *in, double *out, int n) {
	return MPI_Allgather(in, n, MPI_DOUBLE, out, n, MPI_DOUBLE, MPI_COMM_WORLD);
}
static int herd_alltoall_f32(float *in, float *out, int n) {
	return MPI_Alltoall(in, n, MPI_FLOAT, out, n, MPI_FLOAT, MPI_COMM_WORLD);
}
static int herd_bcast(void *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_BYTE, root, MPI_COMM_WORLD);
}
static int herd_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static void herd_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static int herd_finalize(void) { return MPI_Finalize(); }
static void herd_error_string(int code, char *buf, int *n) { MPI_Error_string(code, buf, n); }
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"unsafe"
)

// haveMPI reports whether this binary was built with Open MPI (-tags mpi).
const haveMPI = true

// MPI can be initialised and finalised once per process, so the process's
// one world communicator is kept here; mpiState guards it.
var mpiState struct {
	sync.Mutex
	comm      *mpiComm
	finalized bool
}

// mpiComm is MPI_COMM_WORLD. MPI_THREAD_SERIALIZED: its mutex keeps calls
// from different goroutines (and so OS threads) apart.
type mpiComm struct {
	mu         sync.Mutex
	rank, size int
	closed     bool
}

func openMPI(several bool) (Comm, error) {
	mpiState.Lock()
	defer mpiState.Unlock()
	if mpiState.comm != nil {
		return mpiState.comm, nil
	}
	if mpiState.finalized || C.herd_finalized() != 0 {
		return nil, errors.New("cluster: MPI was already finalized in this process; open the communicator once and pass it on")
	}
	if !several {
		return Single{}, nil
	}
	var provided C.int
	if rc := C.herd_init(&provided); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("cluster: MPI_Init_thread: %s", mpiError(rc))
	}
	if provided < C.MPI_THREAD_SERIALIZED {
		return nil, fmt.Errorf("cluster: the MPI library gives thread level %d, herd needs MPI_THREAD_SERIALIZED", int(provided))
	}
	var r, s C.int
	if rc := C.herd_rank(&r); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("cluster: MPI_Comm_rank: %s", mpiError(rc))
	}
	if rc := C.herd_size(&s); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("cluster: MPI_Comm_size: %s", mpiError(rc))
	}
	if _, world, src, ok, _ := RankFromEnv(os.Getenv); ok && world != int(s) {
		return nil, fmt.Errorf("cluster: %s says %d ranks but MPI has %d: start herd with mpirun/srun (an array job's tasks are independent processes, not one MPI job)", src, world, int(s))
	}
	mpiState.comm = &mpiComm{rank: int(r), size: int(s)}
	return mpiState.comm, nil
}

func mpiError(rc C.int) string {
	buf := make([]byte, C.MPI_MAX_ERROR_STRING)
	var n C.int
	C.herd_error_string(rc, (*C.char)(unsafe.Pointer(&buf[0])), &n)
	return fmt.Sprintf("%s (MPI error %d)", string(buf[:n]), int(rc))
}

func (c *mpiComm) Rank() int { return c.rank }
func (c *mpiComm) Size() int { return c.size }

func (c *mpiComm) call(what string, f func() C.int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("%s: the MPI communicator is closed", what)
	}
	if rc := f(); rc != C.MPI_SUCCESS {
		return fmt.Errorf("%s on rank %d of %d: %s", what, c.rank, c.size, mpiError(rc))
	}
	return nil
}

// callN checks n against MPI's int count and runs an MPI call with it.
func (c *mpiComm) callN(what string, n int, f func(n C.int) C.int) error {
	if n > math.MaxInt32 {
		return fmt.Errorf("%s: %d values exceed MPI's count limit", what, n)
	}
	return c.call(what, func() C.int { return f(C.int(n)) })
}

func f32(s []float32) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(s))) }

func (c *mpiComm) AllGather(in, out []float32) error {
	if err := checkGather(len(in), len(out), c.size); err != nil {
		return err
	}
	return c.callN("MPI_Allgather", len(in), func(n C.int) C.int { return C.herd_allgather_f32(f32(in), f32(out), n) })
}

func (c *mpiComm) AllGather64(in, out []float64) error {
	if err := checkGather(len(in), len(out), c.size); err != nil {
		return err
	}
	return c.callN("MPI_Allgather", len(in), func(n C.int) C.int {
		return C.herd_allgather_f64((*C.double)(unsafe.Pointer(&in[0])), (*C.double)(unsafe.Pointer(&out[0])), n)
	})
}

func (c *mpiComm) AllToAll(in, out []float32) error {
	if err := checkAllToAll(len(in), len(out), c.size); err != nil {
		return err
	}
	return c.callN("MPI_Alltoall", len(in)/c.size, func(n C.int) C.int { return C.herd_alltoall_f32(f32(in), f32(out), n) })
}

func (c *mpiComm) Broadcast(buf []byte, root int) error {
	if len(buf) == 0 {
		return nil
	}
	return c.callN("MPI_Bcast", len(buf), func(n C.int) C.int { return C.herd_bcast(unsafe.Pointer(&buf[0]), n, C.int(root)) })
}

func (c *mpiComm) Barrier() error {
	return c.call("MPI_Barrier", func() C.int { return C.herd_barrier() })
}

func (c *mpiComm) Abort(code int, msg string) {
	fmt.Fprintln(os.Stderr, msg)
	C.herd_abort(C.int(code))
	os.Exit(code)
}

// Close finalizes MPI (once; later calls do nothing).
func (c *mpiComm) Close() error {
	mpiState.Lock()
	defer mpiState.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	mpiState.comm, mpiState.finalized = nil, true
	if rc := C.herd_finalize(); rc != C.MPI_SUCCESS {
		return fmt.Errorf("MPI_Finalize: %s", mpiError(rc))
	}
	return nil
}
