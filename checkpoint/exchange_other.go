//go:build !linux

package checkpoint

import "errors"

// exchange is unavailable off Linux; publish falls back to two renames.
func exchange(a, b string) error { return errors.ErrUnsupported }
