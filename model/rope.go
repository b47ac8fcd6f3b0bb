package model

import "math"

// InvFreq returns the rotary inverse frequencies of a configuration, one per
// rotated pair (head_dim/2 values), with Llama 3.1 "llama3" scaling applied
// when configured. inv_freq_i = rope_theta^(-2i/head_dim); under llama3
// scaling, with wavelen = 2π/f, low = original/low_freq_factor and
// high = original/high_freq_factor: wavelen < high keeps f, wavelen > low
// gives f/factor, and in between f is interpolated with
// smooth = (original/wavelen − low_freq_factor)/(high_freq_factor − low_freq_factor)
// as (1−smooth)·f/factor + smooth·f — the rule of Hugging Face transformers.
func InvFreq(c Config) []float64 {
	half := c.HeadDim / 2
	f := make([]float64, half)
	for i := range f {
		f[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(c.HeadDim))
	}
	rs := c.RopeScaling
	if rs == nil || rs.RopeType != "llama3" {
		return f
	}
	orig := float64(rs.OriginalMaxPositionEmbeddings)
	lowWavelen := orig / rs.LowFreqFactor
	highWavelen := orig / rs.HighFreqFactor
	for i, fi := range f {
		wavelen := 2 * math.Pi / fi
		switch {
		case wavelen < highWavelen:
		case wavelen > lowWavelen:
			f[i] = fi / rs.Factor
		default:
			smooth := (orig/wavelen - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
			f[i] = (1-smooth)*fi/rs.Factor + smooth*fi
		}
	}
	return f
}

// ropeTable holds cos and sin of pos·inv_freq for positions [0, n), laid
// out [pos][half]. Angles are computed in float64 and rounded once.
type ropeTable struct {
	invFreq  []float64
	half     int
	cos, sin []float32
}

func newRopeTable(c Config) *ropeTable {
	return &ropeTable{invFreq: InvFreq(c), half: c.HeadDim / 2}
}

// ensure grows the table to cover positions [0, n).
func (r *ropeTable) ensure(n int) {
	have := len(r.cos) / r.half
	if n <= have {
		return
	}
	if n < 2*have {
		n = 2 * have
	}
	cos := make([]float32, n*r.half)
	sin := make([]float32, n*r.half)
	copy(cos, r.cos)
	copy(sin, r.sin)
	for p := have; p < n; p++ {
		for i, f := range r.invFreq {
			a := float64(p) * f
			cos[p*r.half+i] = float32(math.Cos(a))
			sin[p*r.half+i] = float32(math.Sin(a))
		}
	}
	r.cos, r.sin = cos, sin
}
