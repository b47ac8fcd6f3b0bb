package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/herdml/herd/internal/outdir"
	"github.com/herdml/herd/model"
)

// A checkpoint root holds one directory per saved step:
//
//	root/step-000100/   config.json, generation_config.json,
//	                    model.safetensors (or shards + index),
//	                    optimizer.safetensors, trainer_state.json
//	root/step-000200/   …
//
// Each step directory is built as root/.step-000200.tmp-RANDOM and renamed
// into place once complete, so a directory named step-N is always whole.
// Leftover temporary directories (from a crash) are ignored by List and
// Latest and removed by Save and Prune. One trainer writes to a root at a
// time.

// stepPrefix starts every step directory name.
const stepPrefix = "step-"

// ErrNoCheckpoint is returned (wrapped) by Latest when the root holds no
// complete checkpoint.
var ErrNoCheckpoint = errors.New("no checkpoint found")

// StepDirName is the directory name of a step: "step-000123" (at least six
// digits; larger steps get more).
func StepDirName(step int) string { return fmt.Sprintf("%s%06d", stepPrefix, step) }

// Entry is a complete checkpoint in a root.
type Entry struct {
	Step int
	Dir  string
}

// Save writes a complete checkpoint of step st.Step under root (model
// files plus training state) atomically and returns its directory. Saving
// a step that already exists replaces it atomically. Leftovers of earlier
// interrupted saves are removed first.
func Save(root string, cfg model.Config, p *model.Params, st *TrainingState, opt SaveOptions) (string, error) {
	if st == nil {
		return "", errors.New("save checkpoint: training state is nil")
	}
	if st.Step < 0 {
		return "", fmt.Errorf("save checkpoint: negative step %d", st.Step)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("save checkpoint: %w", err)
	}
	if err := cleanTemp(root); err != nil {
		return "", err
	}
	dir := filepath.Join(root, StepDirName(st.Step))
	err := writeDirAtomic(dir, outdir.Checkpoint, opt.faults, func(s sink) error {
		if err := writeModel(s, cfg, p, opt); err != nil {
			return err
		}
		return writeTrainingState(s, st)
	})
	if err != nil {
		return "", err
	}
	return dir, nil
}

// Load reads a checkpoint directory written by Save: the model and its
// training state.
func Load(dir string) (model.Config, *model.Params, *TrainingState, error) {
	cfg, p, err := LoadModel(dir)
	if err != nil {
		return model.Config{}, nil, nil, err
	}
	st, err := loadTrainingState(dir, p.Layout)
	if err != nil {
		return model.Config{}, nil, nil, err
	}
	return cfg, p, st, nil
}

// parseStepDir returns the step of a directory name "step-N".
func parseStepDir(name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, stepPrefix)
	if !ok || digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil
}

// complete reports whether a step directory holds a finished checkpoint.
func complete(dir string) bool {
	for _, f := range []string{ConfigFile, TrainerStateFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// List returns the complete checkpoints under root, oldest step first. A
// missing root has none.
func List(root string) ([]Entry, error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	var out []Entry
	for _, e := range ents {
		step, ok := parseStepDir(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if complete(dir) {
			out = append(out, Entry{Step: step, Dir: dir})
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return a.Step - b.Step })
	return out, nil
}

// Latest returns the complete checkpoint with the highest step, or an
// error wrapping ErrNoCheckpoint.
func Latest(root string) (Entry, error) {
	all, err := List(root)
	if err != nil {
		return Entry{}, err
	}
	if len(all) == 0 {
		return Entry{}, fmt.Errorf("%s: %w", root, ErrNoCheckpoint)
	}
	return all[len(all)-1], nil
}

// Prune keeps the keepLast newest complete checkpoints under root and
// removes the older ones, plus leftovers of interrupted saves. Each
// directory is first renamed to a temporary name, so an interrupted prune
// never leaves a partly deleted step-N directory.
func Prune(root string, keepLast int) error {
	if keepLast < 1 {
		return fmt.Errorf("prune checkpoints: keepLast must be at least 1, got %d", keepLast)
	}
	all, err := List(root)
	if err != nil {
		return err
	}
	for _, e := range all[:max(0, len(all)-keepLast)] {
		old, err := os.MkdirTemp(root, "."+filepath.Base(e.Dir)+oldMarker)
		if err == nil {
			err = os.Remove(old)
		}
		if err == nil {
			err = os.Rename(e.Dir, old)
		}
		if err == nil {
			err = os.RemoveAll(old)
		}
		if err != nil {
			return fmt.Errorf("prune checkpoint %s: %w", e.Dir, err)
		}
	}
	return cleanTemp(root)
}

// cleanTemp removes leftover temporary step directories from root.
func cleanTemp(root string) error {
	ents, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("clean checkpoint root: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "."+stepPrefix) && isTempName(e.Name()) {
			if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
				return fmt.Errorf("clean checkpoint root: %w", err)
			}
		}
	}
	return nil
}
