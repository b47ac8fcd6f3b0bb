package gguf

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/template"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/model"
)

// TestOllama: -format ollama writes model.gguf (loadable, the model's
// weights) and a Modelfile whose template, executed as Ollama does (Go
// text/template over .System and .Messages), renders a conversation
// exactly as herd's Llama 3.1 chat format does (less the BOS the runner
// adds), with stop parameters for the end tokens and the sampling defaults
// of generation_config.json.
func TestOllama(t *testing.T) {
	tok := trainTokenizer(t, 600)
	cfg := model.Config{VocabSize: tok.VocabSize(), HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 1,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, MaxPositionEmbeddings: 128, TieWordEmbeddings: true}
	cfg.Normalize()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 5)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	gen := &checkpoint.GenerationConfig{DoSample: true, Temperature: 0.7, TopP: 0.95, TopK: 40}
	if err := checkpoint.SaveModel(src, cfg, p, checkpoint.SaveOptions{Generation: gen, Extra: traintest.TokenizerFiles(t, tok)}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "ollama")
	for range 2 { // the second export replaces herd's own directory
		if err := Convert(ConvertOptions{Model: src, Format: FormatOllama, Type: Q8_0, Out: out}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Load(filepath.Join(out, ollamaModelFile))
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.VocabSize != cfg.VocabSize || m.Name != "src" {
		t.Errorf("model.gguf: vocab %d name %q", m.Config.VocabSize, m.Name)
	}
	mf, err := os.ReadFile(filepath.Join(out, modelfileName))
	if err != nil {
		t.Fatal(err)
	}
	text := string(mf)
	for _, line := range []string{"FROM ./model.gguf", `PARAMETER stop "<|eot_id|>"`, `PARAMETER stop "<|eom_id|>"`, `PARAMETER stop "<|end_of_text|>"`,
		"PARAMETER temperature 0.7", "PARAMETER top_p 0.95", "PARAMETER top_k 40", "PARAMETER num_ctx 128"} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("Modelfile lacks %q:\n%s", line, text)
		}
	}
	tm := regexp.MustCompile(`(?s)\nTEMPLATE """(.*?)"""\n`).FindStringSubmatch(text)
	if tm == nil {
		t.Fatalf("no TEMPLATE in\n%s", text)
	}
	tpl, err := template.New("ollama").Parse(tm[1])
	if err != nil {
		t.Fatal(err)
	}
	type msg struct{ Role, Content string }
	for _, conv := range [][]msg{
		{{"user", "Hello there"}},
		{{"system", "You are terse."}, {"user", "Max: 3 9 2"}, {"assistant", "9"}, {"user", "Min?"}},
	} {
		var msgs []tokenizer.Message
		system := ""
		for _, c := range conv {
			msgs = append(msgs, tokenizer.Message{Role: c.Role, Content: c.Content})
			if c.Role == "system" {
				system = c.Content
			}
		}
		want, err := tok.RenderChat(msgs, tokenizer.ChatOptions{AddGenerationPrompt: true})
		if err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		if err := tpl.Execute(&got, map[string]any{"System": system, "Messages": conv}); err != nil {
			t.Fatal(err)
		}
		if w := strings.TrimPrefix(want.Text, tokenizer.BeginOfText); got.String() != w {
			t.Errorf("Ollama template renders\n%q\nherd's chat format is\n%q", got.String(), w)
		}
	}
	// A directory herd did not make is refused, untouched.
	user := filepath.Join(tmp, "user")
	os.MkdirAll(user, 0o755)
	os.WriteFile(filepath.Join(user, "notes.txt"), []byte("mine"), 0o644)
	if err := Convert(ConvertOptions{Model: src, Format: FormatOllama, Out: user}); err == nil {
		t.Error("export into a user's directory accepted")
	}
	if entries, _ := os.ReadDir(user); len(entries) != 1 {
		t.Errorf("the user's directory now has %d entries", len(entries))
	}
}
