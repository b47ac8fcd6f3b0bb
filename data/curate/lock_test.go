package curate

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herdml/herd/internal/dirlock"
)

// TestSecondWriterRefused: while one writer holds a curation output (a
// whole run, or one rank of a multi-rank run), a second writer of the same
// part is refused with the holder's pid and nothing is written; other
// ranks are not locked out.
func TestSecondWriterRefused(t *testing.T) {
	pid := "pid " + strconv.Itoa(os.Getpid())
	cases := []struct {
		name        string
		held        string // directory locked by "the other process", relative to the output
		rank, world int
		refused     bool
	}{
		{"whole run", ".", 0, 1, true},
		{"rank 0 of 2 while a run holds the output", ".", 0, 2, true},
		{"same rank", "work/rank-1", 1, 2, true},
		{"other rank", "work/rank-1", 2, 3, false},
		{"single rank while a rank of a larger world runs", "work/rank-1", 0, 1, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := t.TempDir()
			writeTextFiles(t, in, 3)
			cfg := Default()
			cfg.Input.Paths = []string{in}
			cfg.Input.FilesPerUnit = 1
			cfg.Output.Dir = t.TempDir()
			cfg.Stages = []string{StageNormalize}
			l, err := dirlock.Acquire(filepath.Join(cfg.Output.Dir, c.held), "test holder")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			// The other ranks' units are done so that a rank that is not
			// refused finishes.
			_, err = Run(t.Context(), cfg, Options{Rank: c.rank, World: c.world, Logger: quietLogger(), Poll: time.Millisecond, WaitTimeout: time.Millisecond})
			if !c.refused {
				if errors.Is(err, dirlock.ErrLocked) {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, dirlock.ErrLocked) || !strings.Contains(err.Error(), pid) {
				t.Fatalf("got %v, want a lock error naming %s", err, pid)
			}
			if m, _ := filepath.Glob(filepath.Join(cfg.Output.Dir, "docs-*")); len(m) > 0 {
				t.Errorf("refused writer wrote %v", m)
			}
			if _, err := os.Stat(filepath.Join(cfg.Output.Dir, "recipe.yaml")); err == nil {
				t.Errorf("refused writer wrote recipe.yaml")
			}
		})
	}
}
