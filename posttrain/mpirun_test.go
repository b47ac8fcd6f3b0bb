package posttrain

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/cluster/clustertest"
	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/recipes"
)

// Must-show 1 for post-training: `mpirun -np 2 posttrain -recipe …` of an
// SFT and a DPO recipe write the checkpoints of the same run in one
// process, bit for bit, and the same training numbers.
func TestMPIRunPosttrainMatchesOneProcess(t *testing.T) {
	bin := clustertest.Build(t, "posttrain")
	tok := testTokenizer(t)
	c := tinyLM()
	dir := traintest.SaveModel(t, c, initParams(c, 21), tok)
	for _, kind := range []string{KindSFT, KindDPO} {
		r := testRecipe(t, kind, dir, 4, 8, writeLines(t, taskRows(t, kind != KindSFT, 64, 5)))
		r.Train.MicroBatches, r.Checkpoint.Every, r.Workers = 2, 2, 1
		text, err := recipes.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), kind+".yaml")
		if err := os.WriteFile(file, text, 0o644); err != nil {
			t.Fatal(err)
		}
		one, two := filepath.Join(t.TempDir(), "one"), filepath.Join(t.TempDir(), "two")
		for _, c := range [][]string{
			{bin, "-recipe", file, "-out", one},
			append(append([]string{"mpirun"}, clustertest.MPIRunArgs(2)...), bin, "-recipe", file, "-out", two),
		} {
			out, err := exec.Command(c[0], c[1:]...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
			}
			// The summary is printed once (by rank 0 under mpirun).
			if n := strings.Count(string(out), "final model:"); n != 1 {
				t.Errorf("%s printed its summary %d times:\n%s", strings.Join(c, " "), n, out)
			}
		}
		sameRuns(t, fmt.Sprintf("%s: mpirun -np 2 vs one process", kind), one, two)
	}
}
