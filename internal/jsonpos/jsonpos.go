// Package jsonpos turns the byte offsets of encoding/json errors into the
// line and column a person can find in an editor.
package jsonpos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Wrap prefixes a json.SyntaxError or json.UnmarshalTypeError from
// decoding data with "line L, column C: " (both 1-based; the column counts
// bytes). For a syntax error the position is the offending byte; for a
// type error it is the end of the value of the wrong type. Other errors are
// returned unchanged.
func Wrap(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = max(se.Offset-1, 0) // Offset counts the bytes read, the bad one included
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}
