// Package classify is a fastText-style supervised linear text classifier:
// hashed word (and optional character) n-gram features are embedded,
// averaged into one hidden vector, and mapped to label probabilities by a
// linear layer and softmax. Training is single-threaded SGD on softmax
// cross-entropy with fastText's linearly decaying learning rate, so a seed
// gives the same model bit for bit. Curation uses it for quality scores
// ("looks like reference-quality text") and domain tags (code / math /
// general).
//
// A trained Model is read-only and safe for concurrent use.
package classify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Config holds the model and training settings. Zero fields take the
// documented defaults.
type Config struct {
	// Dim is the embedding dimension; default 32.
	Dim int
	// Buckets is the number of hashed feature rows; default 2²⁰ (memory
	// Buckets × Dim × 4 bytes: 128 MiB at the defaults; tests use 2¹⁶).
	Buckets int
	// WordNgrams is the longest word n-gram; default 2 (unigrams and bigrams).
	WordNgrams int
	// CharNgramMin and CharNgramMax enable character n-grams of each word
	// (fastText's subwords, e.g. 3 and 5); default 0 = off.
	CharNgramMin, CharNgramMax int
	// MaxTokens caps the tokens read per text (0 = default 10,000;
	// negative = no cap).
	MaxTokens int
	// Epochs is the number of passes over the data; default 10.
	Epochs int
	// LR is the initial learning rate, decayed linearly to 0 over all
	// tokens of all epochs; default 0.5.
	LR float64
	// Seed drives initialization and the per-epoch shuffling.
	Seed uint64
}

func (c Config) withDefaults() Config {
	if c.Dim == 0 {
		c.Dim = 32
	}
	if c.Buckets == 0 {
		c.Buckets = 1 << 20
	}
	if c.WordNgrams == 0 {
		c.WordNgrams = 2
	}
	if c.CharNgramMax > 0 && c.CharNgramMin == 0 {
		c.CharNgramMin = 3
	}
	if c.MaxTokens == 0 {
		c.MaxTokens = 10_000
	}
	if c.Epochs == 0 {
		c.Epochs = 10
	}
	if c.LR == 0 {
		c.LR = 0.5
	}
	return c
}

// Limits on model shapes, also enforced when loading a file.
const (
	maxDim     = 1024
	maxBuckets = 1 << 26
	maxParams  = 1 << 28 // Buckets × Dim floats (1 GiB)
	maxLabels  = 1 << 16
	maxNgrams  = 8
	maxLabel   = 1024 // bytes per label name
)

func (c Config) validate() error {
	switch {
	case c.Dim < 1 || c.Dim > maxDim:
		return fmt.Errorf("classify: Dim %d: want 1..%d", c.Dim, maxDim)
	case c.Buckets < 1 || c.Buckets > maxBuckets:
		return fmt.Errorf("classify: Buckets %d: want 1..%d", c.Buckets, maxBuckets)
	case c.Buckets*c.Dim > maxParams:
		return fmt.Errorf("classify: Buckets × Dim = %d floats exceeds %d", c.Buckets*c.Dim, maxParams)
	case c.WordNgrams < 1 || c.WordNgrams > maxNgrams:
		return fmt.Errorf("classify: WordNgrams %d: want 1..%d", c.WordNgrams, maxNgrams)
	case c.CharNgramMax < 0 || c.CharNgramMax > 16 || (c.CharNgramMax > 0 && (c.CharNgramMin < 1 || c.CharNgramMin > c.CharNgramMax)):
		return fmt.Errorf("classify: character n-grams %d..%d: want 1 ≤ min ≤ max ≤ 16 (or max 0 = off)", c.CharNgramMin, c.CharNgramMax)
	case c.Epochs < 1:
		return fmt.Errorf("classify: Epochs %d: want ≥ 1", c.Epochs)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("classify: LR %v: want > 0", c.LR)
	}
	return nil
}

// Example is one labelled text.
type Example struct {
	Text  string
	Label string
}

// Model is a trained classifier.
type Model struct {
	cfg    Config
	labels []string
	index  map[string]int
	in     []float32 // Buckets × Dim, row-major
	out    []float32 // len(labels) × Dim
}

// Config returns the model's configuration (defaults filled in).
func (m *Model) Config() Config { return m.cfg }

// Labels returns the label names; probability vectors follow this order
// (sorted by name).
func (m *Model) Labels() []string { return slices.Clone(m.labels) }

// TrainStats reports the mean training loss of each epoch.
type TrainStats struct {
	EpochLoss []float64
	Tokens    int64 // features seen per epoch
}

// Train fits a model to examples. At least two distinct labels are needed.
func Train(ctx context.Context, examples []Example, cfg Config) (*Model, TrainStats, error) {
	var st TrainStats
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, st, err
	}
	if len(examples) == 0 {
		return nil, st, errors.New("classify: Train: no examples")
	}
	m := &Model{cfg: cfg, index: map[string]int{}}
	for _, e := range examples {
		if e.Label == "" || len(e.Label) > maxLabel {
			return nil, st, fmt.Errorf("classify: Train: label %q: want 1..%d bytes", e.Label, maxLabel)
		}
		if _, ok := m.index[e.Label]; !ok {
			m.index[e.Label] = 0
			m.labels = append(m.labels, e.Label)
		}
	}
	if len(m.labels) < 2 || len(m.labels) > maxLabels {
		return nil, st, fmt.Errorf("classify: Train: %d distinct labels, want 2..%d", len(m.labels), maxLabels)
	}
	slices.Sort(m.labels)
	for i, l := range m.labels {
		m.index[l] = i
	}
	d, k := cfg.Dim, len(m.labels)
	m.in = make([]float32, cfg.Buckets*d)
	m.out = make([]float32, k*d)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x66617374))
	for i := range m.out {
		m.out[i] = float32((rng.Float64()*2 - 1) / float64(d))
	}

	// Featurize once: offsets into one flat feature array.
	fz := newFeaturizer(cfg)
	var feats []int32
	offs := make([]int, len(examples)+1)
	ys := make([]int, len(examples))
	for i, e := range examples {
		fz.each(e.Text, func(row int) { feats = append(feats, int32(row)) })
		offs[i+1] = len(feats)
		ys[i] = m.index[e.Label]
	}
	st.Tokens = int64(len(feats))
	total := float64(cfg.Epochs) * float64(max(len(feats), 1))
	seen := 0.0
	order := make([]int, len(examples))
	for i := range order {
		order[i] = i
	}
	g := newGrad(d, k)
	for range cfg.Epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		loss := 0.0
		for n, i := range order {
			if n&1023 == 0 && ctx.Err() != nil {
				return nil, st, fmt.Errorf("classify: Train: %w", ctx.Err())
			}
			f := feats[offs[i]:offs[i+1]]
			lr := cfg.LR * (1 - seen/total)
			seen += float64(len(f))
			loss += m.step(f, ys[i], float32(lr), g)
		}
		st.EpochLoss = append(st.EpochLoss, loss/float64(len(examples)))
	}
	return m, st, nil
}

// grad holds per-step scratch.
type grad struct {
	hidden, gh []float32
	z, p       []float64
}

func newGrad(d, k int) *grad {
	return &grad{hidden: make([]float32, d), gh: make([]float32, d), z: make([]float64, k), p: make([]float64, k)}
}

// forward fills g.hidden (mean of the feature rows) and g.p (softmax).
func (m *Model) forward(f []int32, g *grad) {
	d := m.cfg.Dim
	clear(g.hidden)
	for _, r := range f {
		row := m.in[int(r)*d : int(r)*d+d]
		h := g.hidden[:len(row)]
		for j, v := range row {
			h[j] += v
		}
	}
	if len(f) > 0 {
		inv := 1 / float32(len(f))
		for j := range g.hidden {
			g.hidden[j] *= inv
		}
	}
	m.softmax(g.hidden, g.z, g.p)
}

func (m *Model) softmax(hidden []float32, z, p []float64) {
	d := m.cfg.Dim
	zmax := math.Inf(-1)
	for c := range z {
		row := m.out[c*d : c*d+d]
		s := float32(0)
		for j, v := range row {
			s += v * hidden[j]
		}
		z[c] = float64(s)
		zmax = max(zmax, z[c])
	}
	sum := 0.0
	for c := range z {
		p[c] = math.Exp(z[c] - zmax)
		sum += p[c]
	}
	for c := range p {
		p[c] /= sum
	}
}

// step does one SGD update on (features f, label y) and returns the loss
// before the update.
func (m *Model) step(f []int32, y int, lr float32, g *grad) float64 {
	if len(f) == 0 {
		return math.Log(float64(len(m.labels)))
	}
	d := m.cfg.Dim
	m.forward(f, g)
	loss := -math.Log(max(g.p[y], 1e-300))
	clear(g.gh)
	for c := range g.p {
		gc := float32(g.p[c])
		if c == y {
			gc -= 1
		}
		row := m.out[c*d : c*d+d]
		for j := range row {
			g.gh[j] += gc * row[j]
			row[j] -= lr * gc * g.hidden[j]
		}
	}
	scale := lr / float32(len(f))
	for _, r := range f {
		row := m.in[int(r)*d : int(r)*d+d]
		for j := range row {
			row[j] -= scale * g.gh[j]
		}
	}
	return loss
}

// Probs returns the probability of each label (in Labels order).
func (m *Model) Probs(text string) []float64 {
	d := m.cfg.Dim
	hidden := make([]float32, d)
	n := newFeaturizer(m.cfg).each(text, func(r int) {
		row := m.in[r*d : r*d+d]
		h := hidden[:len(row)]
		for j, v := range row {
			h[j] += v
		}
	})
	if n > 0 {
		inv := 1 / float32(n)
		for j := range hidden {
			hidden[j] *= inv
		}
	}
	p := make([]float64, len(m.labels))
	m.softmax(hidden, make([]float64, len(m.labels)), p)
	return p
}

// Prob returns the probability of label (0 for an unknown label).
func (m *Model) Prob(text, label string) float64 {
	i, ok := m.index[label]
	if !ok {
		return 0
	}
	return m.Probs(text)[i]
}

// Predict returns the most probable label and its probability (ties: the
// first label in Labels order).
func (m *Model) Predict(text string) (string, float64) {
	p := m.Probs(text)
	best := 0
	for c := range p {
		if p[c] > p[best] {
			best = c
		}
	}
	return m.labels[best], p[best]
}
