//go:build !unix

package safetensors

import (
	"errors"
	"os"
)

// mmapFile is unavailable on this platform; reads fall back to ReadAt.
func mmapFile(f *os.File, size int64) ([]byte, func() error, error) {
	return nil, nil, errors.New("memory mapping not supported")
}
