//go:build !race

package kernels

// raceEnabled is set in -race builds; see race_test.go.
const raceEnabled = false
