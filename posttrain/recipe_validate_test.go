package posttrain

import (
	"strings"
	"testing"
)

// TestValidateRoundsOverrides: a rounds recipe's per-stage overrides are
// checked up front, each error naming the list element.
func TestValidateRoundsOverrides(t *testing.T) {
	base := func() Recipe {
		r := Default()
		r.Kind, r.Model = KindRounds, "base"
		r.Rounds.SFTData = []string{"sft.jsonl"}
		return r
	}
	cases := []struct {
		name string
		edit func(*Recipe)
		want string // "" = valid
	}{
		{"fine", func(r *Recipe) {
			r.Rounds.SFT = []string{"optim.lr=1e-3", "train.steps=5"}
			r.Rounds.DPO = []string{"dpo.beta=0.2"}
		}, ""},
		{"unknown key", func(r *Recipe) { r.Rounds.SFT = []string{"optim.lr=1e-3", "optim.lrr=1e-3"} }, `rounds.sft.1: override "optim.lrr=1e-3": unknown field "lrr"`},
		{"wrong type", func(r *Recipe) { r.Rounds.DPO = []string{"dpo.beta=high"} }, `rounds.dpo.0: override "dpo.beta=high"`},
		{"no equals", func(r *Recipe) { r.Rounds.RM = []string{"train.steps"} }, `rounds.rm.0: override "train.steps": want key=value`},
		{"rs", func(r *Recipe) { r.Rounds.RS = []string{"rs.k=x"} }, `rounds.rs.0:`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := base()
			c.edit(&r)
			err := r.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate: %v, want %q", err, c.want)
			}
		})
	}
}
