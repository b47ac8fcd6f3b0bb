package pretrain

import (
	"os"
	"testing"

	"github.com/herdml/herd/cluster"
)

// TestMain finalizes MPI when the tests or benchmarks ran as ranks of an
// mpirun job (BenchmarkDataParallel): a rank that exits without
// MPI_Finalize fails the job.
func TestMain(m *testing.M) {
	code := m.Run()
	if c, err := cluster.Open(); err == nil {
		c.Close()
	}
	os.Exit(code)
}
