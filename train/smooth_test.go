package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/plot/plotter"
)

// TestSmoothLossFollowsTheLoss: the smoothed loss line of loss.png stays
// within tol of the noiseless curve everywhere, its first records
// included — where a falling loss is steepest and the former bias-corrected
// EMA (beta 0.95) stayed 0.6–0.8 nats above it in a 36-step run — and,
// where the curve is flat, removes most of the noise.
func TestSmoothLossFollowsTheLoss(t *testing.T) {
	for _, c := range []struct {
		name  string
		n     int
		curve func(step float64) float64
		noise float64 // standard deviation of the raw loss around curve
		tol   float64 // max |smoothed - curve|
		quiet float64 // where curve is flat (last half): RMS error ≤ quiet·noise
	}{
		{"36-step run, 2 nats down", 36, func(s float64) float64 { return 3.8 + 2.9*math.Exp(-s/30) }, 0.03, 0.08, 0},
		{"300-step run, steep start", 300, func(s float64) float64 { return 3 + 7*math.Exp(-s/40) }, 0.05, 0.15, 0.6},
		{"3000-step run, steep start", 3000, func(s float64) float64 { return 3 + 7*math.Exp(-s/150) }, 0.1, 0.2, 0.3},
		{"straight line", 200, func(s float64) float64 { return 5 - s/100 }, 0, 1e-9, 0},
		{"flat and noisy", 1000, func(float64) float64 { return 2.5 }, 0.2, 0.25, 0.3},
		{"one record", 1, func(float64) float64 { return 7 }, 0, 0, 0},
		{"two records", 2, func(s float64) float64 { return 8 - s }, 0, 1e-12, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(c.n)))
			xy := make(plotter.XYs, c.n)
			for i := range xy {
				s := float64(i + 1)
				xy[i] = plotter.XY{X: s, Y: c.curve(s) + c.noise*rng.NormFloat64()}
			}
			got := smoothLoss(xy)
			worst, at, sq := 0.0, 0, 0.0
			for i, p := range got {
				if p.X != xy[i].X {
					t.Fatalf("record %d: x %v, want %v", i, p.X, xy[i].X)
				}
				e := math.Abs(p.Y - c.curve(p.X))
				if !(e <= worst) {
					worst, at = e, i
				}
				if i >= c.n/2 {
					sq += e * e
				}
			}
			rms := math.Sqrt(sq / float64(c.n-c.n/2))
			t.Logf("max error %.3g at step %d; flat-half RMS %.3g (noise %.3g)", worst, at+1, rms, c.noise)
			if !(worst <= c.tol) {
				t.Errorf("the smoothed loss is %.3g from the curve at step %d (raw %.3f, smoothed %.3f, curve %.3f), want ≤ %g",
					worst, at+1, xy[at].Y, got[at].Y, c.curve(xy[at].X), c.tol)
			}
			if c.quiet > 0 && !(rms <= c.quiet*c.noise) {
				t.Errorf("over the flat half the smoothed loss is %.3g RMS from the curve, want ≤ %.2g × the noise %.3g", rms, c.quiet, c.noise)
			}
		})
	}
}
