// Package clustertest builds herd's tools with Open MPI and runs them
// under mpirun in tests, skipping (saying why) where Open MPI is missing.
package clustertest

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
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
