// Package outdir marks the directories herd creates, and checks a
// destination before herd writes into it or replaces it, so that herd never
// removes or overwrites something it did not create.
//
// Every output directory herd makes (a model directory, a checkpoint, a
// training run, a token-shard folder) holds a small marker file,
// .herd-output, naming its kind. A destination may be replaced or written
// into only when it does not exist, is an empty directory, or carries the
// marker of the same kind.
package outdir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/dirlock"
)

// MarkerFile is the marker's file name inside an output directory.
const MarkerFile = ".herd-output"

// Kinds of output directories.
const (
	Model      = "model"         // a Hugging Face model directory (final/, pretrain average)
	Checkpoint = "checkpoint"    // a training checkpoint (model + training state)
	Run        = "pretrain-run"  // a pretraining run directory
	PostRun    = "posttrain-run" // a post-training (SFT, reward model, DPO) run directory
	Tokens     = "tokens"        // token shards + manifest.json (pretrain tokenize)
)

// maxMarkerBytes bounds what is read of a marker file.
const maxMarkerBytes = 4096

type marker struct {
	Kind string `json:"kind"`
}

// Marker returns the content of the marker file for kind.
func Marker(kind string) []byte {
	b, _ := json.Marshal(marker{Kind: kind})
	return append(b, '\n')
}

// KindOf returns the kind recorded in dir's marker, or "" when dir has no
// marker file.
func KindOf(dir string) (string, error) {
	path := filepath.Join(dir, MarkerFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMarkerBytes))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	var m marker
	if err := json.Unmarshal(data, &m); err != nil || m.Kind == "" {
		return "", fmt.Errorf("%s: not a herd output marker (want {\"kind\": …})", path)
	}
	return m.Kind, nil
}

// checkName refuses destinations that name the current directory, a
// parent or the root instead of a directory of their own.
func checkName(dst string) error {
	clean := filepath.Clean(dst)
	base := filepath.Base(clean)
	if raw := filepath.Base(dst); raw == "." || raw == ".." {
		base = raw
	}
	if dst == "" || base == "." || base == ".." || base == string(filepath.Separator) || clean == filepath.VolumeName(clean)+string(filepath.Separator) {
		return fmt.Errorf("output %q must name a directory of its own, not the current directory, a parent or the root", dst)
	}
	return nil
}

// CheckReplace reports whether dst may be replaced as a whole by a new
// directory of kind: it does not exist, it is an empty directory, or it is
// a directory whose marker says kind. Anything else (a user's directory, a
// directory of another kind, a symlink, a file) is refused with an error
// that says what is missing.
func CheckReplace(dst, kind string) error {
	if err := checkName(dst); err != nil {
		return err
	}
	st, err := os.Lstat(dst)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symbolic link; herd replaces only directories it made (give the link's target, or another path)", dst)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s exists and is not a directory; refusing to replace it (choose another output path)", dst)
	}
	return checkContent(dst, kind)
}

// checkContent accepts an empty directory or one marked kind.
func checkContent(dir, kind string) error {
	got, err := KindOf(dir)
	if err != nil {
		return err
	}
	if got == kind {
		return nil
	}
	if got != "" {
		return fmt.Errorf("%s is a herd %s directory, not a %s directory; refusing to write a %s over it (choose another output path)", dir, got, kind, kind)
	}
	empty, err := isEmpty(dir)
	if err != nil {
		return err
	}
	if empty {
		return nil
	}
	return fmt.Errorf("%s is not empty and has no %s marker, so herd did not make it as a %s directory; refusing to replace or write into it. Choose another output path (or, if an earlier herd version made it, add the marker: echo '{\"kind\":\"%s\"}' > %s)",
		dir, MarkerFile, kind, kind, filepath.Join(dir, MarkerFile))
}

// isEmpty reports whether dir has no entries but a lock file (left by a
// run that was refused before it claimed the directory) and leftovers of
// an interrupted write of the marker itself (a kill inside Claim).
func isEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(16)
		for _, n := range names {
			if n != dirlock.File && !isMarkerTemp(n) {
				return false, nil
			}
		}
		if errors.Is(err, io.EOF) || len(names) == 0 {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// isMarkerTemp reports whether name is a temporary file of an atomic
// write of the marker.
func isMarkerTemp(name string) bool {
	return atomicfile.IsTemp(name) && strings.HasPrefix(name, "."+MarkerFile+".tmp-")
}

// Claim prepares dir to be written in place by an output of kind: it
// creates dir when missing and writes the marker; an existing directory
// must be empty or already carry the marker of kind.
func Claim(dir, kind string) error {
	if err := CheckReplace(dir, kind); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if got, err := KindOf(dir); err != nil || got == kind {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, MarkerFile), Marker(kind), 0o644)
}

// Overlaps reports whether the directories a and b are the same or one
// holds the other, after resolving symbolic links of the parts that exist.
func Overlaps(a, b string) (bool, error) {
	ra, err := resolve(a)
	if err != nil {
		return false, err
	}
	rb, err := resolve(b)
	if err != nil {
		return false, err
	}
	return within(ra, rb) || within(rb, ra), nil
}

// within reports whether path p is dir or inside it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && (rel == "." || rel != ".." && !filepath.IsAbs(rel) && !startsWithParent(rel))
}

func startsWithParent(rel string) bool {
	return len(rel) >= 3 && rel[:2] == ".." && os.IsPathSeparator(rel[2])
}

// resolve makes p absolute and resolves symbolic links in its longest
// existing prefix.
func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}
