package checkpoint

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"

	"github.com/herdml/herd/internal/atomicfile"
)

// saveTrainingState writes trainer_state.json (and, with optimizer state,
// optimizer.safetensors, F32) into the existing directory dir, each file
// atomically. Save writes the same files as part of a whole checkpoint.
func saveTrainingState(dir string, st *TrainingState) error {
	if err := writeTrainingState(fileSink{dir: dir}, st); err != nil {
		return fmt.Errorf("save training state in %s: %w", dir, err)
	}
	return nil
}

// fileSink writes files into an existing directory, each atomically.
type fileSink struct{ dir string }

func (s fileSink) write(name string, fn func(w io.Writer) error) error {
	path := filepath.Join(s.dir, name)
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return err
	}
	defer f.Abort()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := fn(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}
