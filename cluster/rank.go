// Package cluster finds this process's place in a multi-process job: its
// rank and the world size, from the environment of the launchers herd runs
// under (Open MPI's mpirun, PMI, Slurm, Kubernetes indexed jobs). Curation,
// training and evaluation split their work by it.
//
// It also holds the communicator of data-parallel training (Comm: Open MPI
// through cgo with -tags mpi, Single without), the fixed-tree sums that make
// a run on N ranks bit-identical to one process (LeafSum, Reducer), and the
// launch specs (Job: mpirun, sbatch, Kubeflow MPIJob; shipped in launch/).
package cluster

import (
	"fmt"
	"os"
	"strconv"
)

// RankFromEnv returns this worker's rank and the world size from the
// environment of common launchers: Open MPI (OMPI_COMM_WORLD_RANK/SIZE),
// PMI (PMI_RANK/PMI_SIZE), Slurm arrays (SLURM_ARRAY_TASK_ID with
// SLURM_ARRAY_TASK_COUNT) and tasks (SLURM_PROCID/SLURM_NTASKS), and
// Kubernetes indexed jobs (JOB_COMPLETION_INDEX with JOB_COMPLETIONS).
// ok is false when none is set.
func RankFromEnv(getenv func(string) string) (rank, world int, source string, ok bool, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	pairs := [][2]string{
		{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
		{"PMI_RANK", "PMI_SIZE"},
		{"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"},
		{"SLURM_PROCID", "SLURM_NTASKS"},
		{"JOB_COMPLETION_INDEX", "JOB_COMPLETIONS"},
	}
	for _, p := range pairs {
		rs, ws := getenv(p[0]), getenv(p[1])
		if rs == "" {
			continue
		}
		if ws == "" {
			return 0, 0, p[0], false, fmt.Errorf("%s is set but %s is not: set it to the number of workers (or pass -world)", p[0], p[1])
		}
		r, err1 := strconv.Atoi(rs)
		w, err2 := strconv.Atoi(ws)
		if err1 != nil || err2 != nil || w < 1 || r < 0 || r >= w {
			return 0, 0, p[0], false, fmt.Errorf("%s=%q, %s=%q: want 0 <= rank < size", p[0], rs, p[1], ws)
		}
		return r, w, p[0], true, nil
	}
	return 0, 1, "", false, nil
}
