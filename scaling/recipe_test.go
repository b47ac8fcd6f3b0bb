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
