package cluster

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/herdml/herd/cluster/clustertest"
)

var update = flag.Bool("update", false, "rewrite the shipped launch specs in cluster/launch")

// The shipped launch specs are the generated ones (go test ./cluster
// -run LaunchSpecs -update rewrites them), and each is well formed: the
// sbatch script parses in bash and asks Slurm for the job's ranks, the
// MPIJob is a Kubeflow v2beta1 MPIJob whose launcher runs mpirun over the
// workers, and README.md shows the mpirun line.
func TestLaunchSpecs(t *testing.T) {
	j := ExampleJob()
	files := map[string]string{
		"herd-pretrain.sbatch":      j.Sbatch(),
		"herd-pretrain-mpijob.yaml": j.MPIJob(),
	}
	for name, want := range files {
		path := filepath.Join("launch", name)
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s is not what cluster.ExampleJob generates: run go test ./cluster -run LaunchSpecs -update", path)
		}
	}
	readme, err := os.ReadFile(filepath.Join("launch", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	local := "mpirun " + strings.Join(clustertest.MPIRunArgs(2), " ") + " pretrain -recipe pretrain_tiny train.micro_batch=8"
	for _, line := range []string{j.MPIRunLine(), local} {
		if !strings.Contains(string(readme), line) {
			t.Errorf("launch/README.md lacks the mpirun line %q", line)
		}
	}

	if out, err := exec.Command("bash", "-n", filepath.Join("launch", "herd-pretrain.sbatch")).CombinedOutput(); err != nil {
		t.Errorf("bash -n herd-pretrain.sbatch: %v\n%s", err, out)
	}
	sb := files["herd-pretrain.sbatch"]
	for _, want := range []string{"#SBATCH --ntasks=4\n", "#SBATCH --nodes=2\n", "#SBATCH --cpus-per-task=8\n", "srun --mpi=pmix --cpu-bind=cores pretrain -recipe pretrain_tiny"} {
		if !strings.Contains(sb, want) {
			t.Errorf("the sbatch script lacks %q", want)
		}
	}

	var job struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Spec       struct {
			SlotsPerWorker int `yaml:"slotsPerWorker"`
			Replicas       map[string]struct {
				Replicas int `yaml:"replicas"`
				Template struct {
					Spec struct {
						Containers []struct {
							Image   string   `yaml:"image"`
							Command []string `yaml:"command"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"mpiReplicaSpecs"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal([]byte(files["herd-pretrain-mpijob.yaml"]), &job); err != nil {
		t.Fatalf("the MPIJob manifest: %v", err)
	}
	l, w := job.Spec.Replicas["Launcher"], job.Spec.Replicas["Worker"]
	if job.APIVersion != "kubeflow.org/v2beta1" || job.Kind != "MPIJob" || l.Replicas != 1 || w.Replicas*job.Spec.SlotsPerWorker != j.Ranks {
		t.Errorf("MPIJob %s %s: %d launcher, %d workers × %d slots, want 1 and %d ranks", job.APIVersion, job.Kind, l.Replicas, w.Replicas, job.Spec.SlotsPerWorker, j.Ranks)
	}
	if len(l.Template.Spec.Containers) != 1 {
		t.Fatalf("launcher containers: %+v", l.Template.Spec.Containers)
	}
	cmd := strings.Join(l.Template.Spec.Containers[0].Command, " ")
	if want := "mpirun -np 4 "; !strings.HasPrefix(cmd, want) || !strings.HasSuffix(cmd, strings.Join(j.Command, " ")) {
		t.Errorf("launcher command %q: want mpirun -np 4 … %s", cmd, strings.Join(j.Command, " "))
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"a.b=c": "a.b=c", "it's": `'it'\''s'`, "": "''", "a b": "'a b'"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
