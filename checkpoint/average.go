package checkpoint

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"

	"github.com/herdml/herd/model"
)

// ErrInvalidWeights is wrapped by every error AverageWeighted and
// AverageModels return for unusable weights (wrong count, negative, NaN,
// infinite, or summing to zero), so that a command line can report them
// as a usage mistake.
var ErrInvalidWeights = errors.New("invalid averaging weights")

// Average returns the element-wise mean of the weights of the model
// directories dirs (Polyak averaging), with the configuration of the last
// one. It is AverageWeighted with uniform weights.
func Average(dirs []string) (model.Config, *model.Params, error) {
	return AverageWeighted(dirs, nil)
}

// AverageWeighted returns the weighted element-wise mean of the weights of
// the model directories dirs, with the configuration of the last one, as
// Llama 3 averages the models of several runs (uniform or weighted).
//
// weights nil means uniform. Otherwise there is one weight per directory,
// each finite and non-negative, with a positive sum; they are relative
// (normalised by their sum), so 2,1,1 is 0.5,0.25,0.25. A directory of
// weight zero contributes nothing: only its config.json is read, to check
// that it fits. Equal weights give bit for bit the uniform mean.
//
// Every directory must hold the same tensor layout (names and shapes) and
// the same architecture (attention heads, head size, activation, norm
// epsilon, RoPE base and scaling, biases); an error names the first
// directory that differs from dirs[0], and what differs.
//
// Each element is accumulated in float64 and rounded to float32 once at
// the end. The models are read one at a time, so memory stays bounded by
// a float64 accumulator plus one loaded model (about three float32 models'
// worth) however many directories are averaged.
func AverageWeighted(dirs []string, weights []float64) (model.Config, *model.Params, error) {
	coef, div, err := averageCoefficients(dirs, weights)
	if err != nil {
		return model.Config{}, nil, err
	}
	lastUsed := -1
	for i, c := range coef {
		if c != 0 {
			lastUsed = i
		}
	}
	var (
		cfg, refCfg model.Config
		ref         *model.Layout
		acc         []float64
		out         *model.Params
	)
	for i, dir := range dirs {
		var (
			c model.Config
			p *model.Params
		)
		if coef[i] == 0 {
			c, err = model.LoadConfig(filepath.Join(dir, ConfigFile))
		} else {
			c, p, err = LoadModel(dir)
		}
		if err != nil {
			return model.Config{}, nil, fmt.Errorf("average: %w", err)
		}
		layout := model.NewLayout(c)
		if p != nil {
			layout = p.Layout
		}
		if ref == nil {
			refCfg, ref = c, layout
			acc = make([]float64, layout.Total)
		} else if diff := modelDiff(refCfg, ref, c, layout); diff != "" {
			return model.Config{}, nil, fmt.Errorf("average: %s has a different model than %s: %s", dir, dirs[0], diff)
		}
		cfg = c
		if p == nil {
			continue
		}
		if len(p.Data) != len(acc) {
			return model.Config{}, nil, fmt.Errorf("average: %s holds %d weights, %s %d", dir, len(p.Data), dirs[0], len(acc))
		}
		w := coef[i]
		if w == 1 {
			for j, x := range p.Data {
				acc[j] += float64(x)
			}
		} else {
			for j, x := range p.Data {
				acc[j] += w * float64(x)
			}
		}
		if i == lastUsed {
			// Reuse the last model's buffer for the result rather than
			// allocating another one.
			out = p
		}
	}
	for j, s := range acc {
		out.Data[j] = float32(s / div)
	}
	return cfg, out, nil
}

// averageCoefficients checks weights against dirs and returns the factor
// each model is multiplied by and the divisor of the sum. Uniform weights
// (nil, or all equal) give factors 1 and the divisor len(dirs), so that
// they round exactly like the plain mean; others are normalised by their
// sum, with divisor 1.
func averageCoefficients(dirs []string, weights []float64) (coef []float64, div float64, err error) {
	if len(dirs) == 0 {
		return nil, 0, errors.New("average: no checkpoints")
	}
	coef = make([]float64, len(dirs))
	if weights == nil {
		for i := range coef {
			coef[i] = 1
		}
		return coef, float64(len(dirs)), nil
	}
	if len(weights) != len(dirs) {
		return nil, 0, fmt.Errorf("average: %w: %d weights for %d models (give one per model)", ErrInvalidWeights, len(weights), len(dirs))
	}
	sum := 0.0
	for i, w := range weights {
		switch {
		case math.IsNaN(w) || math.IsInf(w, 0):
			return nil, 0, fmt.Errorf("average: %w: weight %d (%g) for %s is not a finite number", ErrInvalidWeights, i+1, w, dirs[i])
		case w < 0:
			return nil, 0, fmt.Errorf("average: %w: weight %d (%g) for %s is negative", ErrInvalidWeights, i+1, w, dirs[i])
		}
		sum += w
	}
	switch {
	case sum == 0:
		return nil, 0, fmt.Errorf("average: %w: the weights sum to zero (at least one must be positive)", ErrInvalidWeights)
	case math.IsInf(sum, 0):
		return nil, 0, fmt.Errorf("average: %w: the weights sum to %g (scale them down; only their ratios matter)", ErrInvalidWeights, sum)
	}
	if !slices.ContainsFunc(weights, func(w float64) bool { return w != weights[0] }) {
		return averageCoefficients(dirs, nil)
	}
	for i, w := range weights {
		coef[i] = w / sum
	}
	return coef, 1, nil
}

// modelDiff describes how the model (b, lb) differs from (a, la) in what
// averaging needs to be equal (layout, attention shape, activation, norm,
// biases, tying), or returns "" when they fit. Both
// configurations are normalised, as LoadConfig returns them.
func modelDiff(a model.Config, la *model.Layout, b model.Config, lb *model.Layout) string {
	if len(la.Tensors) != len(lb.Tensors) || la.Total != lb.Total {
		return fmt.Sprintf("%d tensors of %d weights, not %d of %d", len(lb.Tensors), lb.Total, len(la.Tensors), la.Total)
	}
	for i, t := range lb.Tensors {
		if r := la.Tensors[i]; t.Name != r.Name || !slices.Equal(t.Shape, r.Shape) {
			return fmt.Sprintf("tensor %d is %s %v, not %s %v", i, t.Name, t.Shape, r.Name, r.Shape)
		}
	}
	fields := []struct {
		name     string
		got, ref any
	}{
		{"num_attention_heads", b.NumAttentionHeads, a.NumAttentionHeads},
		{"num_key_value_heads", b.NumKeyValueHeads, a.NumKeyValueHeads},
		{"head_dim", b.HeadDim, a.HeadDim},
		{"hidden_act", b.HiddenAct, a.HiddenAct},
		{"rms_norm_eps", b.RMSNormEps, a.RMSNormEps},
		{"attention_bias", b.AttentionBias, a.AttentionBias},
		{"mlp_bias", b.MLPBias, a.MLPBias},
		{"tie_word_embeddings", b.TieWordEmbeddings, a.TieWordEmbeddings},
	}
	// rope_theta, rope_scaling and the context length may differ: a run's
	// long-context stage changes them and keeps the weights' meaning, so
	// pretraining averages checkpoints across it (the last one's settings
	// are kept).
	for _, f := range fields {
		if f.got != f.ref {
			return fmt.Sprintf("%s is %v, not %v", f.name, f.got, f.ref)
		}
	}
	return ""
}
