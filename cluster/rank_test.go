package cluster

import "testing"

func TestRankFromEnv(t *testing.T) {
	cases := []struct {
		name          string
		env           map[string]string
		rank, world   int
		source        string
		ok, wantError bool
	}{
		{"none", nil, 0, 1, "", false, false},
		{"open mpi", map[string]string{"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4"}, 3, 4, "OMPI_COMM_WORLD_RANK", true, false},
		{"pmi", map[string]string{"PMI_RANK": "0", "PMI_SIZE": "2"}, 0, 2, "PMI_RANK", true, false},
		{"slurm array", map[string]string{"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "8"}, 7, 8, "SLURM_ARRAY_TASK_ID", true, false},
		{"slurm tasks", map[string]string{"SLURM_PROCID": "1", "SLURM_NTASKS": "16"}, 1, 16, "SLURM_PROCID", true, false},
		{"kubernetes indexed job", map[string]string{"JOB_COMPLETION_INDEX": "2", "JOB_COMPLETIONS": "5"}, 2, 5, "JOB_COMPLETION_INDEX", true, false},
		{"mpi wins over slurm", map[string]string{"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "SLURM_PROCID": "5", "SLURM_NTASKS": "9"}, 1, 2, "OMPI_COMM_WORLD_RANK", true, false},
		{"array wins over tasks", map[string]string{"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, 0, 3, "SLURM_ARRAY_TASK_ID", true, false},
		{"size missing", map[string]string{"JOB_COMPLETION_INDEX": "2"}, 0, 0, "", false, true},
		{"rank not a number", map[string]string{"PMI_RANK": "x", "PMI_SIZE": "2"}, 0, 0, "", false, true},
		{"rank too large", map[string]string{"SLURM_PROCID": "4", "SLURM_NTASKS": "4"}, 0, 0, "", false, true},
		{"negative rank", map[string]string{"SLURM_PROCID": "-1", "SLURM_NTASKS": "4"}, 0, 0, "", false, true},
		{"zero size", map[string]string{"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "0"}, 0, 0, "", false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rank, world, source, ok, err := RankFromEnv(func(k string) string { return c.env[k] })
			if c.wantError {
				if err == nil {
					t.Fatalf("no error; got rank %d world %d", rank, world)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rank != c.rank || world != c.world || ok != c.ok || source != c.source {
				t.Fatalf("got %d/%d from %q (ok %v), want %d/%d from %q (ok %v)", rank, world, source, ok, c.rank, c.world, c.source, c.ok)
			}
		})
	}
}
