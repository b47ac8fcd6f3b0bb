package checkpoint

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/outdir"
)

// faults injects failures into a save, for tests: the byte budget makes
// the file writers fail once that many bytes have been written in total,
// and failAt names a stage ("publish") at which the save fails.
type faults struct {
	failAfterBytes int64 // < 0: never
	failAt         string
	noExchange     bool // take the two-rename path of publish
	written        int64
}

var errInjected = errors.New("injected failure")

func (f *faults) stage(name string) error {
	if f != nil && f.failAt == name {
		return fmt.Errorf("%s: %w", name, errInjected)
	}
	return nil
}

// faultWriter fails once the shared byte budget is spent.
type faultWriter struct {
	w io.Writer
	f *faults
}

func (fw faultWriter) Write(p []byte) (int, error) {
	left := fw.f.failAfterBytes - fw.f.written
	if int64(len(p)) > left {
		n, _ := fw.w.Write(p[:max(left, 0)])
		fw.f.written += int64(n)
		return n, fmt.Errorf("write: %w", errInjected)
	}
	n, err := fw.w.Write(p)
	fw.f.written += int64(n)
	return n, err
}

// sink creates the files of a checkpoint.
type sink interface {
	// write creates the file name, fills it with fn and makes it durable.
	write(name string, fn func(w io.Writer) error) error
}

// dirBuilder writes files into a fresh temporary directory that publish
// later renames into place, so each file needs no atomic write of its own.
type dirBuilder struct {
	tmp    string
	faults *faults
}

func (b *dirBuilder) write(name string, fn func(w io.Writer) error) error {
	path := filepath.Join(b.tmp, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	var w io.Writer = f
	if b.faults != nil && b.faults.failAfterBytes >= 0 {
		w = faultWriter{w: f, f: b.faults}
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	err = fn(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Temporary directories are named ".BASE.tmp-RANDOM" (being built) and
// ".BASE.old-RANDOM" (a replaced directory awaiting removal).
const (
	tmpMarker = ".tmp-"
	oldMarker = ".old-"
)

// isTempName reports whether a directory entry is a leftover of an
// unfinished or interrupted save.
func isTempName(name string) bool {
	return strings.HasPrefix(name, ".") && (strings.Contains(name, tmpMarker) || strings.Contains(name, oldMarker))
}

// writeDirAtomic builds the directory dst in a temporary sibling with
// fill, marks it as a herd output of kind (internal/outdir), makes it
// durable, and renames it into place. When dst exists it is swapped out
// atomically where the platform allows (Linux renameat2 RENAME_EXCHANGE)
// and then removed, so dst always holds either the old or the new complete
// content. Only an empty directory or one marked kind is ever replaced:
// anything else at dst is refused before any work. On any failure the
// temporary directory is removed and dst is untouched. Leftovers of
// earlier interrupted saves of dst are removed first.
func writeDirAtomic(dst, kind string, fs *faults, fill func(s sink) error) (err error) {
	if err := outdir.CheckReplace(dst, kind); err != nil {
		return fmt.Errorf("save %s: %w", dst, err)
	}
	parent, base := filepath.Split(filepath.Clean(dst))
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("save %s: %w", dst, err)
	}
	if err := removeLeftovers(parent, base); err != nil {
		return fmt.Errorf("save %s: %w", dst, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+tmpMarker)
	if err != nil {
		return fmt.Errorf("save %s: %w", dst, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("save %s: %w", dst, err)
	}
	b := &dirBuilder{tmp: tmp, faults: fs}
	if err := fill(b); err != nil {
		return fmt.Errorf("save %s: %w", dst, err)
	}
	if err := b.write(outdir.MarkerFile, func(w io.Writer) error { _, err := w.Write(outdir.Marker(kind)); return err }); err != nil {
		return fmt.Errorf("save %s: %w", dst, err)
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return fmt.Errorf("save %s: %w", dst, err)
	}
	if err := fs.stage("publish"); err != nil {
		return fmt.Errorf("save %s: %w", dst, err)
	}
	// dst may have appeared while the files were written.
	if err := outdir.CheckReplace(dst, kind); err != nil {
		return fmt.Errorf("save %s: %w", dst, err)
	}
	if err := publish(tmp, dst, fs == nil || !fs.noExchange); err != nil {
		return fmt.Errorf("save %s: %w", dst, err)
	}
	return atomicfile.SyncDir(parent)
}

// publish moves the finished directory tmp to dst, swapping atomically
// when useExchange is set and the platform supports it.
func publish(tmp, dst string, useExchange bool) error {
	if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
		return os.Rename(tmp, dst)
	}
	if useExchange && exchange(tmp, dst) == nil {
		// tmp now holds the previous content.
		return os.RemoveAll(tmp)
	}
	// No atomic exchange: move the old directory aside first. A crash
	// between the two renames leaves the previous content under the
	// ".old-" name and the new one under ".tmp-".
	old, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+oldMarker)
	if err != nil {
		return err
	}
	if err := os.Remove(old); err != nil {
		return err
	}
	if err := os.Rename(dst, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Rename(old, dst)
		return err
	}
	return os.RemoveAll(old)
}

// removeLeftovers deletes the temporary and replaced directories that
// interrupted saves of parent/base left behind (".BASE.tmp-*",
// ".BASE.old-*"), and nothing else.
func removeLeftovers(parent, base string) error {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || !isTempName(name) || !strings.HasPrefix(name, "."+base+tmpMarker) && !strings.HasPrefix(name, "."+base+oldMarker) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(parent, name)); err != nil {
			return err
		}
	}
	return nil
}
