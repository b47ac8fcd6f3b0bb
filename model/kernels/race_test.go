//go:build race

package kernels

// raceEnabled is set in -race builds, where sync.Pool drops items at random
// on purpose, so allocation counts are not meaningful.
const raceEnabled = true
