//go:build !unix

package benchutil

func cpuSeconds() float64 { return 0 }
