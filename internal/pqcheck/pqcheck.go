// Package pqcheck guards readers of Parquet files against damaged input:
// the Parquet library trusts a file's footer length (a corrupted one makes
// it allocate gigabytes) and panics on some corrupted metadata.
package pqcheck

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"
)

// maxFooter bounds the footer (file metadata) size accepted before the
// library parses it.
const maxFooter = 64 << 20

// Footer checks the framing of a Parquet file of size bytes: the "PAR1"
// magic at both ends and a footer length that fits in the file and below
// maxFooter. name is used in the error.
func Footer(name string, r io.ReaderAt, size int64) error {
	if size < 12 {
		return fmt.Errorf("%s: not a Parquet file (%d bytes, too short)", name, size)
	}
	var head [4]byte
	var tail [8]byte
	if _, err := r.ReadAt(head[:], 0); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := r.ReadAt(tail[:], size-8); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if !bytes.Equal(head[:], []byte("PAR1")) || !bytes.Equal(tail[4:], []byte("PAR1")) {
		return fmt.Errorf("%s: not a Parquet file (missing PAR1 magic); re-create it", name)
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n+12 > size || n > maxFooter {
		return fmt.Errorf("%s: corrupted Parquet file (footer of %d bytes in a %d-byte file); re-create it", name, n, size)
	}
	return nil
}

// Recover, deferred, turns a panic of the Parquet library into *err naming
// the file. Use it only around library calls, not around callbacks.
func Recover(name string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: corrupted Parquet file (%v); re-create it", name, r)
	}
}

// Open opens a Parquet file after checking its framing (Footer); the
// caller closes the returned file when done with the Parquet file. Errors
// name the path. Call it under Recover: the library may panic on damaged
// metadata.
func Open(path string, opts ...parquet.FileOption) (*parquet.File, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := Footer(path, f, st.Size()); err != nil {
		f.Close()
		return nil, nil, err
	}
	pf, err := parquet.OpenFile(f, st.Size(), opts...)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: not a readable Parquet file: %w", path, err)
	}
	return pf, f, nil
}
