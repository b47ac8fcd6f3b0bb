// Package clustertest is what tests of data-parallel runs share: building
// herd's tools with Open MPI and running them under mpirun (skipping,
// saying why, where Open MPI is missing), running in-process ranks on
// goroutines, and comparing two runs' checkpoints bit for bit.
package clustertest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/herdml/herd/checkpoint"
)

// MPIRunArgs are mpirun's arguments for a job of n ranks on this machine,
// as CI runs it (as root, more ranks than cores).
func MPIRunArgs(n int) []string {
	return []string{"--allow-run-as-root", "--oversubscribe", "-np", strconv.Itoa(n)}
}

// Build skips the test, saying why, under -short or where Open MPI is
// missing (CI installs it), else builds the module's cmd/name with -tags
// mpi and returns the binary's path.
func Build(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the mpirun tests build and run the tools")
	}
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev; CI does): the multi-process tests need it")
	}
	if err := exec.Command("pkg-config", "--exists", "ompi-c").Run(); err != nil {
		t.Skip("Open MPI's headers are not installed (apt-get install libopenmpi-dev; CI does): cannot build with -tags mpi")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-tags", "mpi", "-o", bin, "./cmd/"+name)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags mpi ./cmd/%s: %v\n%s", name, err, out)
	}
	return bin
}

// RunRanks runs run once for each of comms (the communicators of one job,
// as cluster.Local(world) returns them), each rank on its own goroutine,
// waits for all of them, fails t naming every rank that returned an error,
// and returns rank 0's result. It does not import package cluster, whose
// own tests use this package.
func RunRanks[C, R any](t testing.TB, comms []C, run func(rank int, comm C) (R, error)) R {
	t.Helper()
	res := make([]R, len(comms))
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for rank, comm := range comms {
		wg.Go(func() { res[rank], errs[rank] = run(rank, comm) })
	}
	wg.Wait()
	failed := false
	for rank, err := range errs {
		if err != nil {
			t.Errorf("rank %d of %d: %v", rank, len(comms), err)
			failed = true
		}
	}
	if failed {
		t.FailNow()
	}
	return res[0]
}

// SameCheckpoints fails t unless the runs whose output directories are a
// and b wrote the same checkpoints under checkpoints/: as many, at least
// one, with the same weights and optimizer state byte for byte.
func SameCheckpoints(t testing.TB, what, a, b string) {
	t.Helper()
	ca, err := checkpoint.List(filepath.Join(a, "checkpoints"))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	cb, err := checkpoint.List(filepath.Join(b, "checkpoints"))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(ca) != len(cb) || len(ca) == 0 {
		t.Fatalf("%s: %d and %d checkpoints", what, len(ca), len(cb))
	}
	for i := range ca {
		for _, f := range []string{checkpoint.WeightsFile, checkpoint.OptimizerFile} {
			x, err1 := os.ReadFile(filepath.Join(ca[i].Dir, f))
			y, err2 := os.ReadFile(filepath.Join(cb[i].Dir, f))
			if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
				t.Fatalf("%s: %s of step %d differs (%v, %v)", what, f, ca[i].Step, err1, err2)
			}
		}
	}
}
