//go:build !mpi

package cluster

import "fmt"

// haveMPI reports whether this binary was built with Open MPI (-tags mpi).
const haveMPI = false

func openMPI(several bool) (Comm, error) {
	if several {
		return nil, fmt.Errorf("cluster: the launcher started several ranks, but %w", errNotMPI)
	}
	return Single{}, nil
}
