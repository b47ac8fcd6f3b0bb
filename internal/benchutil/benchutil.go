// Package benchutil holds helpers for benchmarks: CPU time of the process,
// so that throughput can be reported per CPU second — steadier than wall
// time on a machine shared with other work, and a direct "per core" figure
// when a benchmark runs on several goroutines.
package benchutil

import "testing"

// CPUSeconds returns the CPU time (user + system) this process has used,
// or 0 where the platform does not say.
func CPUSeconds() float64 { return cpuSeconds() }

// ReportMBPerCPUSecond reports b.N passes over bytes each since cpu0 (a
// CPUSeconds reading) as the metric "MB/cpu-s".
func ReportMBPerCPUSecond(b *testing.B, cpu0 float64, bytes int64) {
	if d := CPUSeconds() - cpu0; d > 0 && cpu0 > 0 {
		b.ReportMetric(float64(bytes)*float64(b.N)/1e6/d, "MB/cpu-s")
	}
}
