package benchutil

import (
	"testing"
	"time"
)

// TestCPUSecondsCountsWork checks that busy work shows up as CPU time and
// sleeping does not.
func TestCPUSecondsCountsWork(t *testing.T) {
	c0 := CPUSeconds()
	if c0 <= 0 {
		t.Skip("no CPU time on this platform")
	}
	x := uint64(1)
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
		for range 1000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	c1 := CPUSeconds()
	if c1-c0 < 0.005 {
		t.Errorf("50 ms of busy work used %.4f CPU seconds (x=%d)", c1-c0, x)
	}
	time.Sleep(100 * time.Millisecond)
	if c2 := CPUSeconds(); c2-c1 > 0.05 {
		t.Errorf("sleeping 100 ms used %.4f CPU seconds", c2-c1)
	}
}
