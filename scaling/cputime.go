//go:build unix

package scaling

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) this process has used so far,
// so that the sweep can log each run's cost independently of machine load.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
