package curate

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/herdml/herd/recipes"
)

// TestGoSourceVendoredCopies runs the shipped curate_gosrc recipe on the
// two vendor trees of the Go distribution (src/vendor and src/cmd/vendor)
// and checks, against a byte comparison of the files, that every file
// vendored identically in both trees is kept once and removed once.
func TestGoSourceVendoredCopies(t *testing.T) {
	src := filepath.Join(runtime.GOROOT(), "src")
	std, cmd := filepath.Join(src, "vendor"), filepath.Join(src, "cmd", "vendor")
	for _, d := range []string{std, cmd} {
		if _, err := os.Stat(d); err != nil {
			t.Skipf("Go source tree not available: %v", err)
		}
	}
	// Independent truth: identical files present under both trees.
	var twins []string
	filepath.WalkDir(std, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.Contains(p, "testdata") {
			return nil
		}
		rel, _ := filepath.Rel(std, p)
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(cmd, rel))
		if err == nil && bytes.Equal(a, b) {
			twins = append(twins, rel)
		}
		return nil
	})
	if len(twins) == 0 {
		t.Skip("this Go version vendors no identical file in both trees")
	}
	out := t.TempDir()
	cfg, err := recipes.Load("curate_gosrc", Default(), []string{"input.paths=[" + cmd + ", " + std + "]"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Output.Dir = out
	res, err := Run(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	kept, removed := readOutputs(t, out)
	isKept, reason := map[string]bool{}, map[string]string{}
	for _, r := range kept {
		isKept[r.ID] = true
	}
	for _, r := range removed {
		reason[r.ID] = r.Reason
	}
	for _, rel := range twins {
		a, b := filepath.Join(cmd, rel), filepath.Join(std, rel)
		// cmd/vendor sorts first, so its copy is the one kept.
		if !isKept[a] || reason[b] == "" {
			t.Errorf("%s: cmd copy kept %v, std copy removed as %q", rel, isKept[a], reason[b])
		}
	}
	near := res.Stats.Stages[StageMinHash]
	t.Logf("%d identical vendored files; kept %d, removed %d (exact %v, near %v)", len(twins), len(kept), len(removed),
		res.Stats.Stages[StageExactDedup].Removed, near.Removed)
}
