//go:build unix

package safetensors

import (
	"os"
	"syscall"
)

// mmapFile maps the whole file read-only.
func mmapFile(f *os.File, size int64) ([]byte, func() error, error) {
	if int64(int(size)) != size {
		return nil, nil, syscall.EFBIG
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return m, func() error { return syscall.Munmap(m) }, nil
}
