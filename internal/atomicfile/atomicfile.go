// Package atomicfile writes files so that readers see either the old content
// or the complete new content, never a partial file: data goes to a
// temporary file in the same directory, is fsynced, renamed over the
// destination, and the directory is fsynced.
//
// Only regular files are replaced. A destination that is a directory, a
// named pipe (FIFO), a device (/dev/null, /dev/full) or a socket is refused
// with an error wrapping errNotRegular, since renaming over it would
// replace it with a regular file. A symbolic link is kept: the regular file
// it resolves to is the one replaced (its temporary file goes next to the
// target); a link to anything else, or to nothing, is refused.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// errNotRegular is wrapped by the errors of Check, Create, Commit and
// WriteFile when the destination exists and is not a regular file (or a
// symbolic link to one).
var errNotRegular = errors.New("atomic writes replace only regular files")

// File is a pending atomic write. Write to it, then call Commit to publish
// it or Abort to discard it. Abort after Commit is a no-op, so
// `defer f.Abort()` is the idiomatic cleanup.
type File struct {
	*os.File
	path   string // as the caller named it, for messages
	target string // the file replaced: path, or where its symlinks lead
	done   bool
}

// Check reports whether path can be written atomically: it must not exist,
// be a regular file, or be a symbolic link that resolves to a regular
// file. Tools call it before long work so that a bad output path fails
// early; Create checks again.
func Check(path string) error {
	_, err := resolve(path)
	return err
}

// resolve returns the file an atomic write of path replaces: path itself
// when it does not exist or is a regular file, the resolved target when it
// is a symbolic link to a regular file. Anything else is an error wrapping
// errNotRegular that names path and what it is.
func resolve(path string) (string, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, nil
	}
	if err != nil {
		return "", fmt.Errorf("atomic write of %s: %w", path, err)
	}
	if fi.Mode().IsRegular() {
		return path, nil
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return "", fmt.Errorf("atomic write of %s: it is %s: %w; give the path of a new or regular file",
			path, kind(fi.Mode()), errNotRegular)
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("atomic write of %s: it is a symbolic link that does not resolve to a file (%v): %w; remove the link or fix its target",
			path, err, errNotRegular)
	}
	tfi, err := os.Lstat(target)
	if err != nil {
		return "", fmt.Errorf("atomic write of %s: %w", path, err)
	}
	if !tfi.Mode().IsRegular() {
		return "", fmt.Errorf("atomic write of %s: it is a symbolic link to %s, which is %s: %w; give the path of a new or regular file",
			path, target, kind(tfi.Mode()), errNotRegular)
	}
	return target, nil
}

// kind names a non-regular file type for error messages.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return fmt.Sprintf("a special file (%s)", m.Type())
}

// Create starts an atomic write of path with the given permissions. It
// refuses destinations that are not regular files (see the package
// documentation); for a symbolic link to a regular file it writes the
// link's target.
func Create(path string, perm os.FileMode) (*File, error) {
	target, err := resolve(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(target)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("atomic write of %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("atomic write of %s: %w", path, err)
	}
	return &File{File: tmp, path: path, target: target}, nil
}

// Commit flushes the data to stable storage and renames the temporary file
// over the destination, after checking again that the destination is not
// something other than a regular file by now.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("atomic write of %s: already finished", f.path)
	}
	f.done = true
	tmp := f.File.Name()
	if err := f.File.Sync(); err != nil {
		f.File.Close()
		os.Remove(tmp)
		return fmt.Errorf("atomic write of %s: sync: %w", f.path, err)
	}
	if err := f.File.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomic write of %s: close: %w", f.path, err)
	}
	if target, err := resolve(f.path); err != nil || target != f.target {
		os.Remove(tmp)
		if err == nil {
			err = fmt.Errorf("atomic write of %s: it now resolves to %s instead of %s; write again", f.path, target, f.target)
		}
		return err
	}
	if err := os.Rename(tmp, f.target); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomic write of %s: %w", f.path, err)
	}
	return SyncDir(filepath.Dir(f.target))
}

// Abort discards the pending write. It is safe to call after Commit.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
}

// WriteFile atomically replaces path with data.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("atomic write of %s: %w", path, err)
	}
	return f.Commit()
}

// SyncDir fsyncs a directory so that a rename inside it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// IsTemp reports whether a directory entry name is a leftover of an
// unfinished atomic write: ".NAME.tmp-RANDOM" (a file or directory being
// built) or ".NAME.old-RANDOM" (a replaced directory awaiting removal).
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && (strings.Contains(name, ".tmp-") || strings.Contains(name, ".old-"))
}

// RemoveTemps deletes the leftovers of interrupted atomic writes directly
// inside dir (see IsTemp) and returns their names. Call it only while
// holding the directory's lock, so no live writer's temporary is removed.
// A missing dir has nothing to clean.
func RemoveTemps(dir string) ([]string, error) { return RemoveTempsFunc(dir, nil) }

// RemoveTempsFunc is RemoveTemps limited to the leftovers for which own
// returns true (nil: all of them), for a directory shared by several
// writers that each clean only their own.
func RemoveTempsFunc(dir string, own func(name string) bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("clean %s: %w", dir, err)
	}
	var removed []string
	for _, e := range entries {
		if !IsTemp(e.Name()) || own != nil && !own(e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return removed, fmt.Errorf("clean %s: %w", dir, err)
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}
