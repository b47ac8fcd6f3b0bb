package scaling

import (
	"math"
	"strings"
	"testing"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/pretrain"
	"github.com/herdml/herd/recipes"
)

// TestShippedRecipe: scaling_tiny decodes strictly, validates, has at
// least 3 budgets × 4 sizes, and plans each run's tokens as the budget
// over the model's FLOPs per token.
func TestShippedRecipe(t *testing.T) {
	r, err := recipes.LoadFor(recipes.ToolNamed("scaling"), "scaling_tiny", Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(r.Budgets) < 3 || len(r.Sizes) < 4 {
		t.Fatalf("%d budgets × %d sizes", len(r.Budgets), len(r.Sizes))
	}
	runs, err := r.Plan(2048)
	if err != nil || len(runs) != len(r.Budgets)*len(r.Sizes) {
		t.Fatalf("%d runs, %v", len(runs), err)
	}
	for _, run := range runs {
		fpt := model.FLOPsPerToken(run.Config, run.Recipe.Train.SeqLen)
		if fpt != run.FLOPsPerToken || run.FLOPs != float64(run.Tokens)*fpt {
			t.Errorf("%s: FLOPs %v for %d tokens × %v", run.Name, run.FLOPs, run.Tokens, fpt)
		}
		// Whole batches: within half a batch of the budget.
		if math.Abs(run.FLOPs-run.Budget) > fpt*float64(run.Recipe.Train.BatchTokens)/2+1 {
			t.Errorf("%s: C = %.4g for budget %.4g", run.Name, run.FLOPs, run.Budget)
		}
		if err := run.Recipe.Validate(); err != nil {
			t.Errorf("%s: %v", run.Name, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		edit func(r *Recipe)
		want string
	}{
		{func(r *Recipe) { r.Budgets = nil }, "budgets: list at least one"},
		{func(r *Recipe) { r.Budgets = []float64{1e12, -1} }, "budgets[1] must be a positive"},
		{func(r *Recipe) { r.Sizes = []int{2, 2} }, "a size is listed twice"},
		{func(r *Recipe) { r.Sizes = []int{0} }, "sizes[0] must be in [1, 1024]"},
		{func(r *Recipe) { r.Shape.HeadDim = 24 }, "must divide one another"},
		{func(r *Recipe) { r.Pretrain.Stages = make([]pretrain.Stage, 1) }, "pretrain.stages must be empty"},
		{func(r *Recipe) { r.MaxSteps = -1 }, "max_steps must be >= 0"},
		{func(r *Recipe) { r.Pretrain.Train.BatchTokens = 100 }, "size 2: train/optim: batch_tokens (100)"},
	} {
		r := Default()
		r.Budgets, r.Sizes = []float64{1e12}, []int{2}
		r.Pretrain.Data.Sources = []pretrain.Source{{Name: "a", Paths: []string{"tokens/"}}}
		if err := r.Validate(); err != nil {
			t.Fatalf("base recipe: %v", err)
		}
		c.edit(&r)
		err := r.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}

// TestMaxSteps: a run over max_steps at the recipe's batch doubles the batch
// (and micro batch) until it fits, keeps its budget to within half a batch,
// and runs already under the cap keep the recipe's batch.
func TestMaxSteps(t *testing.T) {
	r := Default()
	r.Budgets, r.Sizes = []float64{1e11, 1e12}, []int{1, 2, 6}
	r.Shape = ShapeRule{WidthPerSize: 16, HeadDim: 16, KVGroup: 2, FFNMult: 3, LayersPerSize: 0.5}
	r.Pretrain.Data.Sources = []pretrain.Source{{Name: "a", Paths: []string{"tokens/"}}}
	r.Pretrain.Train.BatchTokens, r.Pretrain.Train.MicroBatch = 1024, 8
	uncapped, err := r.Plan(2048)
	if err != nil {
		t.Fatal(err)
	}
	r.MaxSteps = 500
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	capped, err := r.Plan(2048)
	if err != nil {
		t.Fatal(err)
	}
	grew := 0
	for i, run := range capped {
		u := uncapped[i]
		tr := run.Recipe.Train
		if tr.Steps > r.MaxSteps {
			t.Errorf("%s: %d steps over max_steps %d", run.Name, tr.Steps, r.MaxSteps)
		}
		if u.Recipe.Train.Steps <= r.MaxSteps {
			if tr.BatchTokens != 1024 || tr.Steps != u.Recipe.Train.Steps {
				t.Errorf("%s: under the cap but batch %d, %d steps (uncapped %d)", run.Name, tr.BatchTokens, tr.Steps, u.Recipe.Train.Steps)
			}
			continue
		}
		grew++
		if tr.BatchTokens <= 1024 || tr.BatchTokens%1024 != 0 || tr.MicroBatch*1024 != 8*tr.BatchTokens {
			t.Errorf("%s: batch %d, micro batch %d", run.Name, tr.BatchTokens, tr.MicroBatch)
		}
		// The smallest doubling that fits: half the batch would not.
		if half := math.Round(run.Budget / (run.FLOPsPerToken * float64(tr.BatchTokens/2))); int(half) <= r.MaxSteps {
			t.Errorf("%s: batch %d, but %d would fit in %v steps", run.Name, tr.BatchTokens, tr.BatchTokens/2, half)
		}
		if run.Tokens != int64(tr.Steps)*int64(tr.BatchTokens) || math.Abs(run.FLOPs-run.Budget) > run.FLOPsPerToken*float64(tr.BatchTokens)/2+1 {
			t.Errorf("%s: D = %d, C = %.4g for budget %.4g", run.Name, run.Tokens, run.FLOPs, run.Budget)
		}
		if err := run.Recipe.Validate(); err != nil {
			t.Errorf("%s: %v", run.Name, err)
		}
	}
	if grew == 0 {
		t.Fatal("no run went over the cap: the test checks nothing")
	}
}
