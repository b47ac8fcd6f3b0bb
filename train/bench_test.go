package train

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/optim"
)

// idle is a trainer whose step computes nothing: what is left is the
// engine's own cost per step.
type idle struct{}

func (idle) Step(int) (StepResult, error)       { return StepResult{Loss: 1, Tokens: 16}, nil }
func (idle) Position() (json.RawMessage, error) { return json.RawMessage(`{}`), nil }
func (idle) Restore(json.RawMessage) error      { return nil }

// BenchmarkEngineStep measures the engine's overhead per step (gradient
// norm, AdamW on a tiny model, the metrics line) around a step that
// computes nothing; allocs/op are the engine's allocations per step.
func BenchmarkEngineStep(b *testing.B) {
	cfg := model.Config{VocabSize: 16, HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 1, NumAttentionHeads: 2,
		NumKeyValueHeads: 1, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 16, TieWordEmbeddings: true}
	cfg.Normalize()
	p := model.NewParams(model.NewLayout(cfg))
	g := model.NewParams(p.Layout)
	e, err := New(Options{
		Dir: filepath.Join(b.TempDir(), "run"), Params: p, Grads: g, Config: func() model.Config { return cfg },
		AdamW:  optim.DefaultAdamWConfig(),
		Stages: []Stage{{Name: "main", End: b.N, Schedule: optim.Constant{Peak: 1e-3}}}, MaxBadSteps: 1, Keep: 1,
	}, idle{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if err := e.Claim(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if _, err := e.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
}
