package optim

import (
	"math"

	"github.com/herdml/herd/model"
)

// GradNorm is the global L2 norm of all gradients, accumulated in float64
// in a fixed order (deterministic).
func GradNorm(g *model.Params) float64 {
	return math.Sqrt(sumSquares(g.Data))
}

func sumSquares(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a, b, c, d := float64(x[i]), float64(x[i+1]), float64(x[i+2]), float64(x[i+3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		a := float64(x[i])
		s0 += a * a
	}
	return (s0 + s1) + (s2 + s3)
}

// ClipGradNorm scales the gradients so that their global L2 norm is at
// most maxNorm, as torch.nn.utils.clip_grad_norm_ does: with norm ‖g‖,
// coef = maxNorm/(‖g‖ + 1e-6), and g is multiplied by coef when coef < 1.
// It returns the norm before clipping. When that norm is NaN or infinite
// the gradients are left untouched; the caller should skip the step.
func ClipGradNorm(g *model.Params, maxNorm float64) float64 {
	norm := GradNorm(g)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	if coef := maxNorm / (norm + 1e-6); coef < 1 {
		scale(g, float32(coef))
	}
	return norm
}

// scale multiplies every element by s.
func scale(g *model.Params, s float32) {
	for i := range g.Data {
		g.Data[i] *= s
	}
}
