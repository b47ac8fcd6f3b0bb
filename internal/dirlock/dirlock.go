// Package dirlock gives one process at a time the right to write an output
// directory (a training run, a curation or tokenize output). The lock is an
// flock(2) on DIR/.herd.lock, so it is released by the kernel when the
// holder exits for any reason, kill -9 included; the file records the
// holder's pid and command so a refused writer can say who holds it.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// File is the lock file's name inside a locked directory.
const File = ".herd.lock"

// ErrLocked is wrapped by Acquire's error when another process holds the lock.
var ErrLocked = errors.New("directory is locked by another process")

// Lock is a held directory lock.
type Lock struct {
	f   *os.File
	dir string
}

// Acquire creates dir if needed and takes its exclusive lock without
// waiting. what names the kind of output in messages ("run directory").
// When another process holds it, the error wraps ErrLocked and names the
// holder's pid.
func Acquire(dir, what string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock %s %s: %w", what, dir, err)
	}
	path := filepath.Join(dir, File)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|noFollow, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s %s: %w", what, dir, err)
	}
	if err := tryLock(f); err != nil {
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if s := strings.TrimSpace(string(b)); s != "" {
				holder = s
			}
		}
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("%s %s is in use by %s; wait for it to finish or stop it (only one writer at a time): %w", what, dir, holder, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s %s: %w", what, dir, err)
	}
	// Record the holder for the message a second writer prints.
	info := "pid " + strconv.Itoa(os.Getpid())
	if len(os.Args) > 0 {
		info += " (" + filepath.Base(os.Args[0]) + ")"
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(info+"\n"), 0)
	}
	return &Lock{f: f, dir: dir}, nil
}

// Release gives the lock up. The lock file stays (removing it would race
// with a process that has just opened it). Release on nil is a no-op.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	f.Truncate(0)
	unlock(f)
	return f.Close()
}
