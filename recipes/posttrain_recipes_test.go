package recipes_test

// The post-training recipes are tested here, in an external test package,
// because package posttrain imports recipes.

import (
	"path"
	"strings"
	"testing"

	"github.com/herdml/herd/posttrain"
	"github.com/herdml/herd/pretrain"
	"github.com/herdml/herd/recipes"
)

// posttrainKind is the post-training kind a shipped recipe's name claims
// (its prefix), "any" for a posttrain_* recipe, or "" for another tool's.
func posttrainKind(name string) string {
	for _, k := range []string{posttrain.KindSFT, posttrain.KindRM, posttrain.KindDPO, posttrain.KindRS, posttrain.KindRounds} {
		if strings.HasPrefix(name, k+"_") {
			return k
		}
	}
	if strings.HasPrefix(name, "posttrain_") {
		return "any"
	}
	return ""
}

// loadPosttrain decodes a shipped recipe strictly onto posttrain.Default()
// and validates it.
func loadPosttrain(t *testing.T, name string) posttrain.Recipe {
	t.Helper()
	r, err := recipes.Load(name, posttrain.Default(), nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

// TestShippedPosttrainRecipes: every shipped post-training recipe (named
// posttrain_* or by its kind: sft_*, rm_*, dpo_*, rs_*, rounds_*) decodes
// strictly onto the post-training defaults, validates, is of the kind its
// name says, and its resolved form round-trips through Marshal. Every
// shipped recipe belongs to one tool, by its name's prefix.
func TestShippedPosttrainRecipes(t *testing.T) {
	var found []string
	for _, name := range recipes.AllShipped() {
		kind := posttrainKind(name)
		if kind == "" {
			if recipes.OwnerOf(name) == "" {
				t.Errorf("shipped recipe %s: the name names no tool (curate_, pretrain_, scaling_, posttrain_, or a post-training kind: sft_, rm_, dpo_, rs_, rounds_)", name)
			}
			continue
		}
		found = append(found, name)
		r := loadPosttrain(t, name)
		if kind != "any" && r.Kind != kind {
			t.Errorf("%s: kind %q, want %q", name, r.Kind, kind)
		}
		text, err := recipes.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		back := posttrain.Default()
		if err := recipes.Decode(text, "resolved", &back); err != nil {
			t.Fatalf("%s: the resolved recipe does not decode: %v\n%s", name, err, text)
		}
		if again, _ := recipes.Marshal(back); string(again) != string(text) {
			t.Fatalf("%s: the resolved recipe does not round-trip", name)
		}
	}
	for _, want := range []string{"sft_tiny", "rm_tiny", "dpo_tiny", "sft_llama3_8b", "dpo_llama3_8b"} {
		if !strings.Contains(" "+strings.Join(found, " ")+" ", " "+want+" ") {
			t.Errorf("shipped recipe %s is missing (post-training recipes: %v)", want, found)
		}
	}
}

// TestShippedTinyPosttrainChain: the CI-sized recipes form the demo's
// chain (pretraining → SFT → RM and DPO) in runs/demo, and their sequences
// fit the tiny model that pretrain_tiny makes.
func TestShippedTinyPosttrainChain(t *testing.T) {
	pre, err := recipes.Load("pretrain_tiny", pretrain.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sft := loadPosttrain(t, "sft_tiny")
	if want := path.Join(pre.Out, "final"); sft.Model != want {
		t.Errorf("sft_tiny starts from %s, want the pretraining run's %s", sft.Model, want)
	}
	for _, name := range []string{"sft_tiny", "rm_tiny", "dpo_tiny"} {
		r := loadPosttrain(t, name)
		// The smallest max_position_embeddings of a pretrain_tiny model is
		// its main stage's seq_len (the long-context stage only raises it).
		if r.Train.SeqLen > pre.Train.SeqLen {
			t.Errorf("%s: train.seq_len %d exceeds the tiny model's %d positions", name, r.Train.SeqLen, pre.Train.SeqLen)
		}
		if !strings.HasPrefix(r.Out, "runs/demo/posttrain/") {
			t.Errorf("%s: out %s is not under runs/demo/posttrain/", name, r.Out)
		}
		if len(r.Data.Paths) != 1 || !strings.HasPrefix(r.Data.Paths[0], "runs/demo/posttrain/data/") {
			t.Errorf("%s: data.paths %v, want the demo's task data", name, r.Data.Paths)
		}
		if r.Data.HeldOut <= 0 {
			t.Errorf("%s: no held-out split; the demo prints held-out metrics", name)
		}
		if name != "sft_tiny" && r.Model != path.Join(sft.Out, "final") {
			t.Errorf("%s starts from %s, want the SFT run's final/ %s", name, r.Model, path.Join(sft.Out, "final"))
		}
	}
}

// TestShippedLlama3PosttrainRecipes: the reference recipes hold the Llama 3
// paper's settings.
func TestShippedLlama3PosttrainRecipes(t *testing.T) {
	sft := loadPosttrain(t, "sft_llama3_8b")
	if sft.Optim.LR != 1e-5 || sft.Train.SeqLen != 8192 || sft.Train.Steps < 8500 || sft.Train.Steps > 9000 || sft.Data.LossOn != "assistant" {
		t.Errorf("sft_llama3_8b: lr %v, seq_len %d, steps %d, loss_on %s; want 1e-5, 8192, 8.5K–9K, assistant",
			sft.Optim.LR, sft.Train.SeqLen, sft.Train.Steps, sft.Data.LossOn)
	}
	dpo := loadPosttrain(t, "dpo_llama3_8b")
	if dpo.Optim.LR != 1e-5 || dpo.Train.SeqLen != 8192 || dpo.DPO.Beta != 0.1 || dpo.DPO.NLLCoef != 0.2 || dpo.DPO.Loss != posttrain.LossSigmoid {
		t.Errorf("dpo_llama3_8b: lr %v, seq_len %d, beta %v, nll_coef %v, loss %s; want 1e-5, 8192, 0.1, 0.2, sigmoid",
			dpo.Optim.LR, dpo.Train.SeqLen, dpo.DPO.Beta, dpo.DPO.NLLCoef, dpo.DPO.Loss)
	}
	if dpo.Model != path.Join(sft.Out, "final") {
		t.Errorf("dpo_llama3_8b starts from %s, want the SFT run's %s", dpo.Model, path.Join(sft.Out, "final"))
	}
}
