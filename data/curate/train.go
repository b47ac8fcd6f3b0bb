package curate

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/herdml/herd/data/classify"
	"github.com/herdml/herd/data/reader"
	"github.com/herdml/herd/data/textnorm"
)

// Class is one label of a classifier and the inputs holding its examples.
type Class struct {
	Label string
	Paths []string
}

// TrainSpec configures TrainClassifier.
type TrainSpec struct {
	Classes   []Class // the first class is the positive one for AUC
	Holdout   float64 // fraction of each class held out (default 0.2)
	Seed      uint64
	Epochs    int // 0 = classify default
	Buckets   int // hashed feature rows (0 = classify default)
	TextField string
	HTML      reader.HTMLExtractor
}

// TrainResult is a trained model and its held-out evaluation.
type TrainResult struct {
	Model *classify.Model
	Train int
	Eval  classify.Eval
}

// TrainClassifier reads labelled inputs (any reader format: a directory
// of text files is one document per file), normalizes them as the
// pipeline does, splits each class into train and held-out parts with
// the seed, trains a classify.Model and evaluates it.
func TrainClassifier(ctx context.Context, spec TrainSpec) (*TrainResult, error) {
	if len(spec.Classes) < 2 {
		return nil, fmt.Errorf("train-classifier: need at least two classes")
	}
	if spec.Holdout <= 0 || spec.Holdout >= 1 {
		spec.Holdout = 0.2
	}
	norm := textnorm.New(textnorm.Default())
	rng := rand.New(rand.NewPCG(spec.Seed, 0x636c6173))
	var train, test []classify.Example
	for _, c := range spec.Classes {
		rc := reader.Default()
		rc.Paths = c.Paths
		if spec.TextField != "" {
			rc.TextField = spec.TextField
		}
		units, err := reader.Plan(rc)
		if err != nil {
			return nil, fmt.Errorf("class %s: %w", c.Label, err)
		}
		var ex []classify.Example
		for _, u := range units {
			err := reader.Read(ctx, u, rc, spec.HTML, func(r *reader.Record) error {
				if r.Problem == "" {
					ex = append(ex, classify.Example{Text: norm.Normalize(r.Doc.Text), Label: c.Label})
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		if len(ex) < 2 {
			return nil, fmt.Errorf("class %s: %d usable documents in %v, need at least 2", c.Label, len(ex), c.Paths)
		}
		rng.Shuffle(len(ex), func(i, j int) { ex[i], ex[j] = ex[j], ex[i] })
		n := max(1, int(float64(len(ex))*spec.Holdout+0.5))
		test = append(test, ex[:n]...)
		train = append(train, ex[n:]...)
	}
	rng.Shuffle(len(train), func(i, j int) { train[i], train[j] = train[j], train[i] })
	cfg := classify.Config{Seed: spec.Seed, Epochs: spec.Epochs, Buckets: spec.Buckets}
	m, _, err := classify.Train(ctx, train, cfg)
	if err != nil {
		return nil, err
	}
	ev, err := m.Evaluate(test, spec.Classes[0].Label)
	if err != nil {
		return nil, err
	}
	return &TrainResult{Model: m, Train: len(train), Eval: ev}, nil
}
