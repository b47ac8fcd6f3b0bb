package scaling

import (
	"errors"
	"fmt"
	"math"
)

// huberDelta is the Huber loss threshold of the parametric fit, on log
// loss, as in Chinchilla (Hoffmann et al. 2022, approach 3).
const huberDelta = 1e-3

// Law is L(N, D) = E + A/N^Alpha + B/D^Beta.
type Law struct {
	E     float64 `json:"E"`
	A     float64 `json:"A"`
	B     float64 `json:"B"`
	Alpha float64 `json:"alpha"`
	Beta  float64 `json:"beta"`
}

// Loss is the law's loss of a model of n parameters trained on d tokens.
func (l Law) Loss(n, d float64) float64 {
	return l.E + l.A/math.Pow(n, l.Alpha) + l.B/math.Pow(d, l.Beta)
}

// Optimal is the compute-optimal (N, D) for compute c, minimising the law
// under c = g·N·D (g: FLOPs per parameter per token, 6 plus attention).
func (l Law) Optimal(c, g float64) (n, d float64) {
	s := l.Alpha + l.Beta
	n = math.Pow(l.Alpha*l.A/(l.Beta*l.B), 1/s) * math.Pow(c/g, l.Beta/s)
	return n, c / g / n
}

// NExp and DExp are the exponents of N*(C) and D*(C) the law implies.
func (l Law) NExp() float64 { return l.Beta / (l.Alpha + l.Beta) }

// DExp is the exponent of D*(C) the law implies.
func (l Law) DExp() float64 { return l.Alpha / (l.Alpha + l.Beta) }

// Parametric is method 2's result.
type Parametric struct {
	Law Law `json:"law"`
	// G is the FLOPs per parameter per token of the points (the median of
	// C/(N·D)), used to turn a budget into N·D.
	G float64 `json:"flops_per_param_token"`
	// Objective is the summed Huber loss at the optimum; Starts the
	// number of L-BFGS starts and Converged how many of them converged.
	Objective float64 `json:"objective"`
	Starts    int     `json:"starts"`
	Converged int     `json:"converged"`
}

// huberObjective is Σ Huber_δ(lse(a − α ln N, b − β ln D, e) − ln L) over
// the points and its gradient in θ = (e, a, b, α, β).
type huberObjective struct {
	lnN, lnD, lnL []float64
}

func (h *huberObjective) f(x []float64) float64 { return h.eval(x, nil) }
func (h *huberObjective) grad(g, x []float64)   { h.eval(x, g) }

func (h *huberObjective) eval(x, g []float64) float64 {
	e, a, b, al, be := x[0], x[1], x[2], x[3], x[4]
	if g != nil {
		clear(g)
	}
	var sum float64
	for i := range h.lnN {
		ta, tb := a-al*h.lnN[i], b-be*h.lnD[i]
		m := max(ta, tb, e)
		ea, eb, ee := math.Exp(ta-m), math.Exp(tb-m), math.Exp(e-m)
		s := ea + eb + ee
		r := m + math.Log(s) - h.lnL[i]
		var dr float64
		if math.Abs(r) <= huberDelta {
			sum += r * r / 2
			dr = r
		} else {
			sum += huberDelta * (math.Abs(r) - huberDelta/2)
			dr = math.Copysign(huberDelta, r)
		}
		if g != nil {
			wa, wb, we := ea/s, eb/s, ee/s
			g[0] += dr * we
			g[1] += dr * wa
			g[2] += dr * wb
			g[3] -= dr * wa * h.lnN[i]
			g[4] -= dr * wb * h.lnD[i]
		}
	}
	return sum
}

// Grid is the grid of L-BFGS starts of the parametric fit (Chinchilla's:
// e ∈ {−1, −0.5, …, 1}, a, b ∈ {0, 5, …, 25}, α, β ∈ {0, 0.5, …, 2}).
type Grid struct {
	E, A, B, Alpha, Beta []float64
}

// defaultGrid is Chinchilla's grid of starts.
func defaultGrid() Grid {
	r := func(lo, hi, step float64) []float64 {
		var v []float64
		for x := lo; x <= hi+1e-9; x += step {
			v = append(v, x)
		}
		return v
	}
	return Grid{E: r(-1, 1, 0.5), A: r(0, 25, 5), B: r(0, 25, 5), Alpha: r(0, 2, 0.5), Beta: r(0, 2, 0.5)}
}

// fitParametric fits L(N, D) = E + A/N^α + B/D^β to the points by
// minimising the Huber loss (δ = 1e-3) of log L with L-BFGS (lbfgs.go) from every
// start of the grid, keeping the best.
func fitParametric(pts []Point, grid Grid) (*Parametric, error) {
	if len(pts) < 5 {
		return nil, fmt.Errorf("parametric fit: need at least 5 points for 5 parameters, got %d", len(pts))
	}
	h := &huberObjective{}
	var gs []float64
	for _, p := range pts {
		h.lnN = append(h.lnN, math.Log(p.Params))
		h.lnD = append(h.lnD, math.Log(p.Tokens))
		h.lnL = append(h.lnL, math.Log(p.Loss))
		gs = append(gs, p.FLOPs/(p.Params*p.Tokens))
	}
	best := &Parametric{Objective: math.Inf(1), G: median(gs)}
	x0 := make([]float64, 5)
	for _, e := range grid.E {
		for _, a := range grid.A {
			for _, b := range grid.B {
				for _, al := range grid.Alpha {
					for _, be := range grid.Beta {
						x0[0], x0[1], x0[2], x0[3], x0[4] = e, a, b, al, be
						best.Starts++
						res := minimise(h.eval, x0, 10, 1000, 1e-12)
						if res.Converged {
							best.Converged++
						}
						x := res.X
						if !(res.F < best.Objective) || !finiteAll(x) || x[3] <= 0 || x[4] <= 0 {
							continue
						}
						best.Objective = res.F
						best.Law = Law{E: math.Exp(x[0]), A: math.Exp(x[1]), B: math.Exp(x[2]), Alpha: x[3], Beta: x[4]}
					}
				}
			}
		}
	}
	if math.IsInf(best.Objective, 1) {
		return nil, errors.New("parametric fit: no start converged to positive exponents")
	}
	return best, nil
}

func finiteAll(x []float64) bool {
	for _, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// median is the middle value of xs (the mean of the two middle ones for
// an even count).
func median(xs []float64) float64 { return percentiles(xs, 0).Lo }
