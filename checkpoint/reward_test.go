package checkpoint

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/herdml/herd/model"
)

// TestRewardModelDirectory saves a reward model (a sequence classifier
// with one label) and checks the directory is what Hugging Face's
// LlamaForSequenceClassification loads: config keys, tensor names and
// shapes (score.weight [1, hidden], no lm_head), no generation config, and
// a bit-exact round trip.
func TestRewardModelDirectory(t *testing.T) {
	for _, tied := range []bool{true, false} {
		base := tinyConfig(tied)
		cfg := base.AsSequenceClassifier(1, 39)
		p := tinyParams(cfg, 7)
		dir := filepath.Join(t.TempDir(), "rm")
		if err := SaveModel(dir, cfg, p, SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		if a, _ := raw["architectures"].([]any); len(a) != 1 || a[0] != "LlamaForSequenceClassification" {
			t.Errorf("architectures = %v", raw["architectures"])
		}
		if raw["num_labels"] != 1.0 || raw["pad_token_id"] != 39.0 || raw["model_type"] != "llama" {
			t.Errorf("num_labels %v pad_token_id %v model_type %v", raw["num_labels"], raw["pad_token_id"], raw["model_type"])
		}
		if _, err := os.Stat(filepath.Join(dir, GenerationConfigFile)); !os.IsNotExist(err) {
			t.Errorf("a reward model directory has %s (err %v)", GenerationConfigFile, err)
		}
		sf, err := safetensors.Open(filepath.Join(dir, WeightsFile))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, ti := range sf.Tensors {
			names = append(names, ti.Name)
			if ti.Name == model.ScoreWeight && !slices.Equal(ti.Shape, []int{1, base.HiddenSize}) {
				t.Errorf("score.weight shape %v, want [1 %d]", ti.Shape, base.HiddenSize)
			}
		}
		sf.Close()
		if !slices.Contains(names, model.ScoreWeight) || slices.Contains(names, "lm_head.weight") {
			t.Errorf("tied=%v: tensors %v: want score.weight and no lm_head.weight", tied, names)
		}
		lm := model.NewLayout(base)
		if len(names) != len(lm.Tensors)+boolInt(tied) {
			t.Errorf("tied=%v: %d tensors, want the trunk's %d plus score.weight", tied, len(names), len(lm.Tensors)-1+boolInt(!tied))
		}
		gotCfg, got, err := LoadModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !gotCfg.HasScoreHead() || gotCfg.NumLabels != 1 || *gotCfg.PadTokenID != 39 {
			t.Errorf("loaded config: head %v labels %d", gotCfg.HasScoreHead(), gotCfg.NumLabels)
		}
		sameBits(t, "weights", got.Data, p.Data)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSequenceClassifierConfigs checks what a configuration may say about
// heads: id2label (as transformers writes it) gives the number of labels,
// unknown architectures and labels without a classifier are refused.
func TestSequenceClassifierConfigs(t *testing.T) {
	base := `"model_type": "llama", "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1, "num_attention_heads": 4, "max_position_embeddings": 8`
	for _, tc := range []struct {
		json   string
		labels int
		err    bool
	}{
		{`{"architectures": ["LlamaForSequenceClassification"], "id2label": {"0": "LABEL_0"}, ` + base + `}`, 1, false},
		{`{"architectures": ["LlamaForSequenceClassification"], "num_labels": 3, ` + base + `}`, 3, false},
		{`{"architectures": ["LlamaForSequenceClassification"], ` + base + `}`, 2, false},
		{`{"architectures": ["LlamaForTokenClassification"], ` + base + `}`, 0, true},
		{`{"architectures": ["LlamaForCausalLM"], "num_labels": 1, ` + base + `}`, 0, true},
		{`{"architectures": ["LlamaForSequenceClassification"], "pad_token_id": 40, ` + base + `}`, 0, true},
	} {
		c, err := model.ParseConfig([]byte(tc.json))
		if tc.err != (err != nil) {
			t.Errorf("%s: err %v, want error %v", tc.json, err, tc.err)
			continue
		}
		if err == nil && c.NumLabels != tc.labels {
			t.Errorf("%s: %d labels, want %d", tc.json, c.NumLabels, tc.labels)
		}
	}
}
