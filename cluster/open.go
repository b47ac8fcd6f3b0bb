package cluster

import "os"

// Open returns the communicator of this process's job: Open MPI's world
// when the binary is built with -tags mpi and started by an MPI launcher
// (mpirun, srun, an MPIJob), else Single. A build without MPI refuses to
// run as one rank of several, rather than train alone on part of the data.
// Close it when done (under MPI: MPI_Finalize, after which no communicator
// can be opened again in this process).
func Open() (Comm, error) {
	_, world, _, ok, err := RankFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	if !ok || world == 1 {
		return openMPI(false)
	}
	return openMPI(true)
}
