package model

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/herdml/herd/internal/testenv"
)

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		c := Config{VocabSize: 100, HiddenSize: 64, IntermediateSize: 128, NumHiddenLayers: 2,
			NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 128}
		return c
	}
	cases := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" = valid
	}{
		{"valid", func(*Config) {}, ""},
		{"kv defaults to heads", func(c *Config) { c.NumKeyValueHeads = 0 }, ""},
		{"zero vocab", func(c *Config) { c.VocabSize = 0 }, "vocab_size must be positive"},
		{"zero layers", func(c *Config) { c.NumHiddenLayers = 0 }, "num_hidden_layers must be positive"},
		{"negative ffn", func(c *Config) { c.IntermediateSize = -1 }, "intermediate_size must be positive"},
		{"zero heads", func(c *Config) { c.NumAttentionHeads = 0; c.NumKeyValueHeads = 0 }, "num_attention_heads must be positive"},
		{"heads not dividing hidden", func(c *Config) { c.NumAttentionHeads = 5; c.NumKeyValueHeads = 5 }, "num_attention_heads (5) must divide hidden_size (64)"},
		{"kv not dividing heads", func(c *Config) { c.NumKeyValueHeads = 3 }, "num_key_value_heads (3) must divide num_attention_heads (4)"},
		{"odd head dim", func(c *Config) { c.HeadDim = 15 }, "head_dim must be even"},
		{"explicit head dim", func(c *Config) { c.HeadDim = 32 }, ""},
		{"bad eps", func(c *Config) { c.RMSNormEps = -1 }, "rms_norm_eps"},
		{"bad act", func(c *Config) { c.HiddenAct = "gelu" }, "hidden_act"},
		{"bias", func(c *Config) { c.AttentionBias = true }, "bias"},
		{"unknown rope", func(c *Config) { c.RopeScaling = &RopeScaling{RopeType: "yarn"} }, `rope_type "yarn"`},
		{"llama3 incomplete", func(c *Config) { c.RopeScaling = &RopeScaling{RopeType: "llama3", Factor: 8} }, "low_freq_factor"},
		{"huge", func(c *Config) { c.VocabSize = 1 << 30 }, "beyond the supported limit"},
		{"llama", func(c *Config) { c.ModelType = "llama" }, ""},
		{"mistral", func(c *Config) { c.ModelType = "mistral" }, `model_type "mistral" is not supported (only "llama"`},
		{"LLaMA capitalised", func(c *Config) { c.ModelType = "LLaMA" }, `model_type "LLaMA"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			c.Normalize()
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestConfigRoundTrip reads the reference configs and writes them back:
// every key, known or not, survives.
func TestConfigRoundTrip(t *testing.T) {
	for _, name := range []string{"tiny-a", "tiny-b"} {
		path := "../../shared/testdata/llama-ref/" + name + "/config.json"
		testenv.Testdata(t, path)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseConfig(raw)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.MarshalIndent()
		if err != nil {
			t.Fatal(err)
		}
		var a, b map[string]any
		json.Unmarshal(raw, &a)
		json.Unmarshal(out, &b)
		for k, v := range a {
			if got, ok := b[k]; !ok {
				t.Errorf("%s: key %q lost", name, k)
			} else if gj, _ := json.Marshal(got); string(gj) != mustJSON(v) {
				t.Errorf("%s: key %q = %s, want %s", name, k, gj, mustJSON(v))
			}
		}
		c2, err := ParseConfig(out)
		if err != nil {
			t.Fatal(err)
		}
		if c2.HeadDim != c.HeadDim || (c.RopeScaling == nil) != (c2.RopeScaling == nil) {
			t.Fatalf("%s: config changed on round trip", name)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestParseConfigErrors(t *testing.T) {
	for _, in := range []string{``, `{`, `[]`, `{"vocab_size": "x"}`, `{"vocab_size": 10}`} {
		if _, err := ParseConfig([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":8}`))
	f.Add([]byte(`{"rope_scaling":{"rope_type":"llama3"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		// A valid config must give a layout and survive a round trip.
		_ = NewLayout(c)
		out, err := c.MarshalIndent()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseConfig(out); err != nil {
			t.Fatalf("round trip of a valid config fails: %v\n%s", err, out)
		}
	})
}
