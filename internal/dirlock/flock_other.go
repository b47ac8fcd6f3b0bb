//go:build !unix

package dirlock

import (
	"errors"
	"os"
)

// Without flock the lock is advisory only in name: every Acquire succeeds.
var errWouldBlock = errors.New("would block")

const noFollow = 0

func tryLock(f *os.File) error { return nil }

func unlock(f *os.File) {}
