package scaling

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"gonum.org/v1/gonum/mat"
)

// Parabola is y = A·x² + B·x + C fitted by least squares (x = ln N or
// ln D, y = loss).
type Parabola struct{ A, B, C float64 }

// At is the parabola's value at x.
func (p Parabola) At(x float64) float64 { return (p.A*x+p.B)*x + p.C }

// Vertex is the x of the minimum; ok is false when the parabola opens
// downwards (or is flat), so that it has no minimum.
func (p Parabola) Vertex() (x float64, ok bool) {
	if !(p.A > 0) {
		return math.NaN(), false
	}
	return -p.B / (2 * p.A), true
}

// fitParabola fits y = A x² + B x + C by least squares (QR). It needs
// three distinct x.
func fitParabola(xs, ys []float64) (Parabola, error) {
	if len(xs) < 3 || distinct(xs) < 3 {
		return Parabola{}, fmt.Errorf("a parabola needs at least 3 distinct sizes, got %d", distinct(xs))
	}
	// Centre x for conditioning.
	mx := mean(xs)
	a := mat.NewDense(len(xs), 3, nil)
	for i, x := range xs {
		d := x - mx
		a.Set(i, 0, d*d)
		a.Set(i, 1, d)
		a.Set(i, 2, 1)
	}
	var c mat.VecDense
	if err := c.SolveVec(a, mat.NewVecDense(len(ys), slices.Clone(ys))); err != nil {
		return Parabola{}, fmt.Errorf("parabola: %w", err)
	}
	qa, qb, qc := c.AtVec(0), c.AtVec(1), c.AtVec(2)
	// Undo the centring: A(x-m)² + B(x-m) + C.
	return Parabola{A: qa, B: qb - 2*qa*mx, C: qa*mx*mx - qb*mx + qc}, nil
}

func distinct(xs []float64) int {
	s := slices.Clone(xs)
	slices.Sort(s)
	return len(slices.Compact(s))
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// straightLine is y = Slope·x + Intercept.
type straightLine struct{ Slope, Intercept float64 }

// fitLine fits a straight line by least squares.
func fitLine(xs, ys []float64) (straightLine, error) {
	if len(xs) < 2 || distinct(xs) < 2 {
		return straightLine{}, errors.New("a power law needs at least 2 budgets")
	}
	mx, my := mean(xs), mean(ys)
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	s := sxy / sxx
	return straightLine{Slope: s, Intercept: my - s*mx}, nil
}

// Interval is a confidence interval.
type Interval struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// percentile interval of xs at level (e.g. 0.95); NaNs are dropped.
func percentiles(xs []float64, level float64) Interval {
	v := slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(v) == 0 {
		return Interval{math.NaN(), math.NaN()}
	}
	sort.Float64s(v)
	q := func(p float64) float64 {
		pos := p * float64(len(v)-1)
		i := int(math.Floor(pos))
		if i+1 >= len(v) {
			return v[len(v)-1]
		}
		f := pos - float64(i)
		return v[i]*(1-f) + v[i+1]*f
	}
	return Interval{q((1 - level) / 2), q((1 + level) / 2)}
}

// Budget is one IsoFLOP curve's fit.
type Budget struct {
	Budget  float64  `json:"budget"` // the curve's budget (its points' Budget)
	FLOPs   float64  `json:"flops"`  // mean compute of the curve's runs
	Points  int      `json:"points"`
	ParabN  Parabola `json:"parabola_log_n"` // loss vs ln N
	ParabD  Parabola `json:"parabola_log_d"` // loss vs ln D
	NOpt    float64  `json:"n_opt"`
	NOptCI  Interval `json:"n_opt_ci"`
	DOpt    float64  `json:"d_opt"`
	DOptCI  Interval `json:"d_opt_ci"`
	LossMin float64  `json:"loss_min"` // the parabola in ln N at its minimum
	// Interior is false when the minimum lies outside the sizes tried
	// (the curve does not bracket the optimum: extend the sizes).
	Interior bool `json:"interior"`
}

// PowerLaw is y = Coef · C^Exp, with a bootstrap interval of Exp.
type PowerLaw struct {
	Coef  float64  `json:"coef"`
	Exp   float64  `json:"exp"`
	ExpCI Interval `json:"exp_ci"`
}

// At is the power law at compute c.
func (p PowerLaw) At(c float64) float64 { return p.Coef * math.Pow(c, p.Exp) }

// IsoFLOP is method 1 (Llama 3 §3.2.1, Chinchilla approach 2): a parabola
// per budget, its minima, and power laws through them.
type IsoFLOP struct {
	Budgets []Budget `json:"budgets"`
	NOpt    PowerLaw `json:"n_opt"` // N*(C) = A·C^α
	DOpt    PowerLaw `json:"d_opt"` // D*(C) = B·C^β
	// Bootstrap is the number of residual-bootstrap resamples behind the
	// intervals (95%).
	Bootstrap int `json:"bootstrap"`
	// Excluded are the budgets whose curve has no minimum.
	Excluded []Excluded `json:"excluded,omitempty"`
}

// Excluded is a budget left out of the IsoFLOP power laws.
type Excluded struct {
	Budget float64 `json:"budget"`
	Points int     `json:"points"`
	Reason string  `json:"reason"`
}

// groupBudgets splits points (sorted by budget) into IsoFLOP curves.
func groupBudgets(pts []Point) [][]Point {
	var groups [][]Point
	for i := 0; i < len(pts); {
		j := i
		for j < len(pts) && pts[j].Budget == pts[i].Budget {
			j++
		}
		groups = append(groups, pts[i:j])
		i = j
	}
	return groups
}

// isoMinima fits the parabolas of each curve, given the losses (one per
// point of each group), and returns ln N*, ln D* and the loss at N*.
func isoMinima(groups [][]Point, losses [][]float64) (pn, pd []Parabola, lnN, lnD, lmin []float64, err error) {
	for gi, g := range groups {
		xs := make([]float64, len(g))
		zs := make([]float64, len(g))
		for i, p := range g {
			xs[i], zs[i] = math.Log(p.Params), math.Log(p.Tokens)
		}
		a, err := fitParabola(xs, losses[gi])
		if err != nil {
			return nil, nil, nil, nil, nil, fmt.Errorf("budget %.3g: %w", g[0].Budget, err)
		}
		b, err := fitParabola(zs, losses[gi])
		if err != nil {
			return nil, nil, nil, nil, nil, fmt.Errorf("budget %.3g: %w", g[0].Budget, err)
		}
		xn, _ := a.Vertex()
		xd, _ := b.Vertex()
		pn, pd = append(pn, a), append(pd, b)
		lnN, lnD = append(lnN, xn), append(lnD, xd)
		lmin = append(lmin, a.At(xn))
	}
	return pn, pd, lnN, lnD, lmin, nil
}

// fitIsoFLOP fits method 1 with a seeded residual bootstrap of b
// resamples: each resample adds the curve's residuals, drawn with
// replacement, to its fitted parabola and refits everything, so the
// intervals of N*, D* and of the exponents come from the same draws.
func fitIsoFLOP(pts []Point, b int, seed uint64) (*IsoFLOP, error) {
	groups := groupBudgets(pts)
	if len(groups) < 2 {
		return nil, fmt.Errorf("IsoFLOP fit: need at least 2 budgets, got %d", len(groups))
	}
	losses := make([][]float64, len(groups))
	cs := make([]float64, len(groups))
	for gi, g := range groups {
		var c float64
		for _, p := range g {
			losses[gi] = append(losses[gi], p.Loss)
			c += p.FLOPs
		}
		cs[gi] = c / float64(len(g))
	}
	pn, pd, lnN, lnD, lmin, err := isoMinima(groups, losses)
	if err != nil {
		return nil, err
	}
	lnC := make([]float64, len(cs))
	for i, c := range cs {
		lnC[i] = math.Log(c)
	}
	// Curves without a minimum (not convex across the sizes tried) are
	// left out of the power laws and listed.
	var excluded []Excluded
	keep := 0
	for i, g := range groups {
		_, ok1 := pn[i].Vertex()
		_, ok2 := pd[i].Vertex()
		if !ok1 || !ok2 {
			excluded = append(excluded, Excluded{Budget: g[0].Budget, Points: len(g),
				Reason: "no minimum: the loss is not convex in ln N (or ln D) across the sizes tried; widen the sizes around the best one or add runs"})
			continue
		}
		groups[keep], losses[keep], cs[keep], lnC[keep] = g, losses[i], cs[i], lnC[i]
		pn[keep], pd[keep], lnN[keep], lnD[keep], lmin[keep] = pn[i], pd[i], lnN[i], lnD[i], lmin[i]
		keep++
	}
	groups, losses, cs, lnC = groups[:keep], losses[:keep], cs[:keep], lnC[:keep]
	pn, pd, lnN, lnD, lmin = pn[:keep], pd[:keep], lnN[:keep], lnD[:keep], lmin[:keep]
	if keep < 2 {
		return nil, fmt.Errorf("IsoFLOP fit: %d of %d budgets have a minimum inside the sizes tried, need 2; widen the sizes around the best ones", keep, keep+len(excluded))
	}
	nl, err := fitLine(lnC, lnN)
	if err != nil {
		return nil, err
	}
	dl, err := fitLine(lnC, lnD)
	if err != nil {
		return nil, err
	}
	res := &IsoFLOP{Bootstrap: b, Excluded: excluded,
		NOpt: PowerLaw{Coef: math.Exp(nl.Intercept), Exp: nl.Slope},
		DOpt: PowerLaw{Coef: math.Exp(dl.Intercept), Exp: dl.Slope}}
	// Residual bootstrap.
	rng := rand.New(rand.NewPCG(seed, 0x5ca1e))
	bn := make([][]float64, len(groups))
	bd := make([][]float64, len(groups))
	var an, ad []float64
	resid := make([][]float64, len(groups))
	for gi, g := range groups {
		for _, p := range g {
			resid[gi] = append(resid[gi], p.Loss-pn[gi].At(math.Log(p.Params)))
		}
	}
	sim := make([][]float64, len(groups))
	for k := 0; k < b; k++ {
		for gi, g := range groups {
			sim[gi] = sim[gi][:0]
			for _, p := range g {
				r := resid[gi][rng.IntN(len(resid[gi]))]
				sim[gi] = append(sim[gi], pn[gi].At(math.Log(p.Params))+r)
			}
		}
		spn, spd, sN, sD, _, err := isoMinima(groups, sim)
		if err != nil {
			return nil, err
		}
		good := true
		for gi := range groups {
			_, ok1 := spn[gi].Vertex()
			_, ok2 := spd[gi].Vertex()
			if !ok1 || !ok2 {
				good = false
				continue
			}
			bn[gi] = append(bn[gi], math.Exp(sN[gi]))
			bd[gi] = append(bd[gi], math.Exp(sD[gi]))
		}
		if !good {
			an, ad = append(an, math.NaN()), append(ad, math.NaN())
			continue
		}
		l1, _ := fitLine(lnC, sN)
		l2, _ := fitLine(lnC, sD)
		an, ad = append(an, l1.Slope), append(ad, l2.Slope)
	}
	res.NOpt.ExpCI = percentiles(an, 0.95)
	res.DOpt.ExpCI = percentiles(ad, 0.95)
	for gi, g := range groups {
		lo, hi := math.Inf(1), math.Inf(-1)
		dlo, dhi := math.Inf(1), math.Inf(-1)
		for _, p := range g {
			lo, hi = min(lo, p.Params), max(hi, p.Params)
			dlo, dhi = min(dlo, p.Tokens), max(dhi, p.Tokens)
		}
		n, d := math.Exp(lnN[gi]), math.Exp(lnD[gi])
		res.Budgets = append(res.Budgets, Budget{Budget: g[0].Budget, FLOPs: cs[gi], Points: len(g), ParabN: pn[gi], ParabD: pd[gi],
			NOpt: n, NOptCI: percentiles(bn[gi], 0.95), DOpt: d, DOptCI: percentiles(bd[gi], 0.95),
			LossMin: lmin[gi], Interior: n >= lo && n <= hi && d >= dlo && d <= dhi})
	}
	return res, nil
}
