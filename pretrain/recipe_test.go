package pretrain

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/recipes"
)

// TestRecipeErrors: strict decoding names the file, line and column of
// unknown keys, wrong types and duplicates; Validate names the field.
func TestRecipeErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "train:\n  steps: 10\n  lerning_rate: 3\n", `bad.yaml: [3:3] unknown field "lerning_rate"`},
		{"unknown top", "modle:\n  hidden_size: 8\n", `bad.yaml: [1:1] unknown field "modle"`},
		{"wrong type", "train:\n  steps: ten\n", `bad.yaml: [2:10] "train.steps" wants an integer`},
		{"float for int", "optim:\n  warmup_steps: 2.5\n", `bad.yaml: [2:17] "optim.warmup_steps" wants an integer`},
		{"string for float", "optim:\n  lr: fast\n", `bad.yaml: [2:7] "optim.lr" wants a number`},
		{"duplicate", "seed: 1\nseed: 2\n", "bad.yaml: [2:1]"},
		{"source unknown key", "data:\n  sources:\n    - name: a\n      path: [x]\n", `bad.yaml: [4:7] unknown field "path"`},
		{"stage type", "stages:\n  - steps: [1]\n", `bad.yaml: [2:12] "stages[0].steps" wants an integer`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "bad.yaml")
			if err := os.WriteFile(path, []byte(c.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := recipes.Load(path, Default(), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
	for _, c := range []struct{ override, want string }{
		{"train.stpes=3", `unknown field "stpes"`},
		{"optim.lr=abc", "wants a number"},
	} {
		if _, err := recipes.Load("", Default(), []string{c.override}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("override %s: %v, want %q", c.override, err, c.want)
		}
	}
	src := []Source{{Name: "a", Paths: []string{"x"}, Weight: weight(1)}}
	for _, c := range []struct {
		name string
		edit func(*Recipe)
		want string
	}{
		{"no sources", func(r *Recipe) { r.Data.Sources = nil }, "data.sources: at least one source"},
		{"batch multiple", func(r *Recipe) { r.Train.BatchTokens = 1000 }, "batch_tokens (1000) must be a positive multiple of seq_len (128)"},
		{"micro", func(r *Recipe) { r.Train.MicroBatch = 5 }, "micro_batch (5) must divide the 16 sequences"},
		{"schedule", func(r *Recipe) { r.Optim.Schedule = "cosin" }, `schedule "cosin" is not one of`},
		{"min lr", func(r *Recipe) { r.Optim.MinLR = 1 }, "minimum learning rate must be in [0, peak]"},
		{"average", func(r *Recipe) { r.Average.Last = 9 }, "average.last (9) must be in [0, checkpoint.keep = 3]"},
		{"weights", func(r *Recipe) { r.Data.Sources[0].Weight = weight(0) }, "weights sum to 0"},
		{"long context", func(r *Recipe) { r.Stages = []Stage{{Kind: "long_context", Steps: 5, SeqLen: 64}} }, "must lengthen sequences"},
		{"model", func(r *Recipe) { r.Model.NumAttentionHeads = 3 }, "num_attention_heads (3) must divide hidden_size (128)"},
		{"stage kind", func(r *Recipe) { r.Stages = []Stage{{Kind: "cooldown", Steps: 5}} }, `stages[0].kind "cooldown"`},
	} {
		r := Default()
		r.Data.Sources = append([]Source(nil), src...)
		c.edit(&r)
		if err := r.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestShippedRecipes: the pretraining recipes load by name and validate,
// and a resolved recipe round-trips through Marshal.
func TestShippedRecipes(t *testing.T) {
	for _, name := range []string{"pretrain_tiny", "pretrain_llama3_8b"} {
		r, err := recipes.Load(name, Default(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		text, err := recipes.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		back := Default()
		if err := recipes.Decode(text, "resolved", &back); err != nil {
			t.Fatalf("%s: resolved recipe does not decode: %v\n%s", name, err, text)
		}
		again, _ := recipes.Marshal(back)
		if string(again) != string(text) {
			t.Fatalf("%s: resolved recipe does not round-trip", name)
		}
	}
	r, _ := recipes.Load("pretrain_llama3_8b", Default(), nil)
	plans := r.Plan()
	if len(plans) != 3 || plans[1].SeqLen != 131072 || plans[1].RopeScaling == nil || plans[2].Schedule != "linear" {
		t.Fatalf("8B plan: %+v", plans)
	}
	c, err := r.ModelConfig(plans[0], r.Model.VocabSize)
	if err != nil {
		t.Fatal(err)
	}
	// Llama 3 8B has 8.03B parameters.
	if n := float64(model.NewLayout(c).Total); n < 8.0e9 || n > 8.06e9 {
		t.Fatalf("8B recipe describes %.3g parameters", n)
	}
}

// TestWarmupClamp: a run shorter than its warmup warms up over the whole
// run (and says so) instead of failing; stages keep their own warmup.
func TestWarmupClamp(t *testing.T) {
	src := []Source{{Name: "a", Paths: []string{"x"}, Weight: weight(1)}}
	cases := []struct {
		name       string
		edit       func(*Recipe)
		warmup     int
		note       string // "" = not clamped
		invalidErr string
	}{
		{"short run", func(r *Recipe) { r.Train.Steps = 3 }, 3, "optim.warmup_steps 50 exceeds the run (train.steps 3): warming up over 3 steps", ""},
		{"equal", func(r *Recipe) { r.Train.Steps = 50 }, 50, "", ""},
		{"long run", func(r *Recipe) { r.Train.Steps = 1000 }, 50, "", ""},
		{"zero steps", func(r *Recipe) { r.Train.Steps = 0 }, 0, "warming up over 0 steps", ""},
		{"no warmup", func(r *Recipe) { r.Train.Steps = 3; r.Optim.Warmup = 0 }, 0, "", ""},
		{"linear", func(r *Recipe) { r.Train.Steps = 5; r.Optim.Schedule = "linear" }, 5, "warming up over 5 steps", ""},
		{"constant", func(r *Recipe) { r.Train.Steps = 5; r.Optim.Schedule = "constant" }, 5, "warming up over 5 steps", ""},
		{"wsd", func(r *Recipe) { r.Train.Steps = 10; r.Optim.Schedule = "wsd"; r.Optim.DecaySteps = 4 }, 6,
			"optim.warmup_steps 50 exceeds the run (train.steps 10 − optim.decay_steps 4): warming up over 6 steps", ""},
		{"wsd decay too long", func(r *Recipe) { r.Train.Steps = 10; r.Optim.Schedule = "wsd"; r.Optim.DecaySteps = 12 }, 10, "warming up over 10 steps", "decay steps must be in"},
		{"negative warmup", func(r *Recipe) { r.Train.Steps = 3; r.Optim.Warmup = -1 }, -1, "", "warmup steps must not be negative"},
		{"negative steps", func(r *Recipe) { r.Train.Steps = -5 }, 50, "", "train.steps must be >= 0, got -5"},
		{"stage warmup kept", func(r *Recipe) {
			r.Train.Steps = 3
			r.Stages = []Stage{{Kind: "anneal", Steps: 2, Warmup: 4}}
		}, 3, "warming up over 3 steps", "stages[0]: schedule: total steps (2) must be at least the warmup steps (4)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Default()
			r.Data.Sources = append([]Source(nil), src...)
			c.edit(&r)
			if got := r.Plan()[0].Warmup; got != c.warmup {
				t.Errorf("main warmup %d, want %d", got, c.warmup)
			}
			note := r.WarmupClamped()
			if (c.note == "") != (note == "") || !strings.Contains(note, c.note) {
				t.Errorf("note %q, want %q", note, c.note)
			}
			err := r.Validate()
			if c.invalidErr == "" && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if c.invalidErr != "" && (err == nil || !strings.Contains(err.Error(), c.invalidErr)) {
				t.Fatalf("Validate: %v, want %q", err, c.invalidErr)
			}
			if r.Optim.Warmup != Default().Optim.Warmup && c.name != "no warmup" && c.name != "negative warmup" {
				t.Errorf("the recipe itself was changed: warmup %d", r.Optim.Warmup)
			}
		})
	}
	// The clamped schedule reaches the peak at the end of the warmup.
	r := Default()
	r.Data.Sources = src
	r.Train.Steps = 3
	s, err := r.Plan()[0].schedule()
	if err != nil {
		t.Fatal(err)
	}
	if lr := s.LR(2); lr != r.Optim.LR {
		t.Errorf("LR at the last warmup step %v, want the peak %v", lr, r.Optim.LR)
	}
}
