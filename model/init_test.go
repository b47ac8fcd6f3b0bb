package model_test

import (
	"testing"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/modeltest"
)

// TestInitDeterministic checks that Params.Init is a function of the seed
// and initialises norm weights to 1.
func TestInitDeterministic(t *testing.T) {
	c := modeltest.TinyConfig(false, false)
	a, b, d := model.NewParams(model.NewLayout(c)), model.NewParams(model.NewLayout(c)), model.NewParams(model.NewLayout(c))
	a.Init(c, 1)
	b.Init(c, 1)
	d.Init(c, 2)
	same, diff := true, false
	for i := range a.Data {
		same = same && a.Data[i] == b.Data[i]
		diff = diff || a.Data[i] != d.Data[i]
	}
	if !same || !diff {
		t.Fatalf("init not a function of the seed: same seed equal %v, other seed differs %v", same, diff)
	}
	if v := a.Get("model.norm.weight"); v[0] != 1 {
		t.Fatalf("norm weight initialised to %v, want 1", v[0])
	}
}
