package scaling

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// chinchilla is the law Hoffmann et al. (2022) fitted (approach 3).
var chinchilla = Law{E: 1.69, A: 406.4, B: 410.7, Alpha: 0.34, Beta: 0.28}

// synthetic draws IsoFLOP sweeps from law: per budget, sizes spaced
// log-uniformly over ±ln(span) around a guess of the optimum that is off
// the true one (a factor 1.5 and a different exponent), with
// multiplicative Gaussian noise of relative size noise on the loss.
func synthetic(law Law, budgets []float64, sizes int, span, noise float64, seed uint64) []Point {
	rng := rand.New(rand.NewPCG(seed, 7))
	const g = 6.0
	var pts []Point
	for _, c := range budgets {
		nTrue, _ := law.Optimal(c, g)
		guess := 1.5 * nTrue * math.Pow(c/budgets[0], 0.05)
		for i := range sizes {
			x := math.Log(guess) + math.Log(span)*(2*float64(i)/float64(sizes-1)-1)
			n := math.Exp(x)
			d := c / (g * n)
			l := law.Loss(n, d) * (1 + noise*rng.NormFloat64())
			pts = append(pts, Point{FLOPs: c, Params: n, Tokens: d, Loss: l, Budget: c})
		}
	}
	return pts
}

func TestRecoverKnownLaw(t *testing.T) {
	budgets := []float64{1e18, 3e18, 1e19, 3e19, 1e20, 3e20, 1e21}
	pts := synthetic(chinchilla, budgets, 9, 4, 0.001, 1)
	iso, err := fitIsoFLOP(pts, 200, 1)
	if err != nil {
		t.Fatal(err)
	}
	par, err := fitParametric(pts, defaultGrid())
	if err != nil {
		t.Fatal(err)
	}
	wantN, wantD := chinchilla.NExp(), chinchilla.DExp()
	t.Logf("true a=%.4f b=%.4f; isoflop a=%.4f %v b=%.4f; parametric a=%.4f b=%.4f law %+v (converged %d/%d)",
		wantN, wantD, iso.NOpt.Exp, iso.NOpt.ExpCI, iso.DOpt.Exp, par.Law.NExp(), par.Law.DExp(), par.Law, par.Converged, par.Starts)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"isoflop N* exponent", iso.NOpt.Exp, wantN},
		{"isoflop D* exponent", iso.DOpt.Exp, wantD},
		{"parametric N* exponent", par.Law.NExp(), wantN},
		{"parametric D* exponent", par.Law.DExp(), wantD},
	} {
		if rel := math.Abs(c.got/c.want - 1); rel > 0.02 {
			t.Errorf("%s = %.4f, want %.4f within 2%% (off %.2f%%)", c.name, c.got, c.want, 100*rel)
		}
	}
	target := 1e23
	n, d := chinchilla.Optimal(target, 6)
	want := chinchilla.Loss(n, d)
	pn, pd := par.Law.Optimal(target, par.G)
	got := par.Law.Loss(pn, pd)
	if rel := math.Abs(got/want - 1); rel > 0.01 {
		t.Errorf("forecast loss at %.0e = %.4f, want %.4f within 1%%", target, got, want)
	}
	// The IsoFLOP method's forecast size with the law's loss.
	ni := iso.NOpt.At(target)
	if rel := math.Abs(chinchilla.Loss(ni, target/6/ni)/want - 1); rel > 0.01 {
		t.Errorf("loss at the IsoFLOP forecast size %.3g: off %.2f%%", ni, 100*rel)
	}
}

// TestNonConvexBudgetLeftOut: a curve whose loss falls across all its
// sizes is listed as excluded and the power laws use the others.
func TestNonConvexBudgetLeftOut(t *testing.T) {
	budgets := []float64{1e18, 1e19, 1e20}
	pts := synthetic(chinchilla, budgets, 7, 4, 0, 1)
	var bad []Point
	for i := range 5 {
		n := 1e6 * math.Exp(float64(i))
		bad = append(bad, Point{FLOPs: 3e19, Params: n, Tokens: 3e19 / 6 / n, Loss: 4 - 0.01*float64(i*i), Budget: 3e19})
	}
	all := append(append([]Point{}, pts[:7]...), pts[7:]...)
	all = append(all, bad...)
	sortPoints(all)
	iso, err := fitIsoFLOP(all, 20, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(iso.Excluded) != 1 || iso.Excluded[0].Budget != 3e19 || len(iso.Budgets) != 3 {
		t.Fatalf("excluded %+v, %d budgets", iso.Excluded, len(iso.Budgets))
	}
	if _, err := fitIsoFLOP(append(pts[:7:7], bad...), 20, 1); err == nil || !strings.Contains(err.Error(), "1 of 2 budgets") {
		t.Fatalf("one convex budget: %v", err)
	}
}
