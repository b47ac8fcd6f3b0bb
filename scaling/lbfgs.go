package scaling

import "math"

// Why not gonum/optimize: its package imports gonum's stat/distmv, which
// needs golang.org/x/tools, and the version of x/tools the rest of herd's
// module graph selects raises golang.org/x/net past the one herd's HTML
// extraction is tested against (a different open-element limit). The fits
// here need only a small, smooth, five-parameter minimisation, so this file
// holds a compact L-BFGS (Nocedal & Wright, Algorithm 7.4/7.5) with a
// backtracking Armijo line search.

// lbfgsResult is the outcome of minimise.
type lbfgsResult struct {
	X         []float64
	F         float64
	Converged bool // the gradient norm or the change of f fell below the tolerance
}

// minimise minimises f from x0 by L-BFGS with memory m; fg returns f(x)
// and writes the gradient into g.
func minimise(fg func(x, g []float64) float64, x0 []float64, m, maxIter int, gtol float64) lbfgsResult {
	n := len(x0)
	x := append([]float64(nil), x0...)
	g := make([]float64, n)
	f := fg(x, g)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return lbfgsResult{X: x, F: f}
	}
	s := make([][]float64, 0, m)
	y := make([][]float64, 0, m)
	rho := make([]float64, 0, m)
	alpha := make([]float64, m)
	d := make([]float64, n)
	xn := make([]float64, n)
	gn := make([]float64, n)
	for iter := 0; iter < maxIter; iter++ {
		if norm(g) <= gtol {
			return lbfgsResult{X: x, F: f, Converged: true}
		}
		// Two-loop recursion: d = −H·g.
		copy(d, g)
		for i := len(s) - 1; i >= 0; i-- {
			alpha[i] = rho[i] * dot(s[i], d)
			axpy(-alpha[i], y[i], d)
		}
		if k := len(s) - 1; k >= 0 {
			scale(dot(s[k], y[k])/dot(y[k], y[k]), d)
		} else {
			scale(1/math.Max(norm(g), 1), d)
		}
		for i := range s {
			b := rho[i] * dot(y[i], d)
			axpy(alpha[i]-b, s[i], d)
		}
		scale(-1, d)
		slope := dot(g, d)
		if !(slope < 0) { // not a descent direction: restart from −g
			s, y, rho = s[:0], y[:0], rho[:0]
			copy(d, g)
			scale(-1/math.Max(norm(g), 1), d)
			slope = dot(g, d)
		}
		// Backtracking line search (Armijo).
		step, fn := 1.0, math.Inf(1)
		for try := 0; try < 60; try++ {
			for i := range x {
				xn[i] = x[i] + step*d[i]
			}
			fn = fg(xn, gn)
			if fn <= f+1e-4*step*slope {
				break
			}
			step /= 2
		}
		if !(fn <= f+1e-4*step*slope) {
			return lbfgsResult{X: x, F: f, Converged: false}
		}
		var sk, yk []float64
		if len(s) == m {
			sk, yk = s[0], y[0]
			s, y, rho = s[1:], y[1:], rho[1:]
		} else {
			sk, yk = make([]float64, n), make([]float64, n)
		}
		for i := range x {
			sk[i], yk[i] = xn[i]-x[i], gn[i]-g[i]
		}
		if sy := dot(sk, yk); sy > 1e-300 {
			s, y, rho = append(s, sk), append(y, yk), append(rho, 1/sy)
		}
		done := math.Abs(f-fn) <= 1e-15*math.Max(1, math.Abs(f))
		copy(x, xn)
		copy(g, gn)
		f = fn
		if done {
			return lbfgsResult{X: x, F: f, Converged: true}
		}
	}
	return lbfgsResult{X: x, F: f, Converged: norm(g) <= gtol}
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func norm(a []float64) float64 { return math.Sqrt(dot(a, a)) }

func axpy(a float64, x, y []float64) {
	for i := range x {
		y[i] += a * x[i]
	}
}

func scale(a float64, x []float64) {
	for i := range x {
		x[i] *= a
	}
}
