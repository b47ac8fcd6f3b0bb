package gguf

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/data/tokenizer"
)

// TestChatTemplateJinja renders chatTemplate with Python's Jinja2 as
// transformers does (data/tokenizer/hfcompat's renderer) and checks that
// it gives herd's chat format for chats without tools.
func TestChatTemplateJinja(t *testing.T) {
	renderer, err := filepath.Abs(filepath.Join("..", "..", "data", "tokenizer", "hfcompat", "testdata", "render_jinja.py"))
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("python3", "-c", "import jinja2").Run(); err != nil {
		t.Skip("python3 with jinja2 is not installed (Debian: python3-jinja2); the template is not rendered")
	}
	tok := trainTokenizer(t, 600)
	cfgPath := filepath.Join(t.TempDir(), "tokenizer_config.json")
	cfg, _ := json.Marshal(map[string]string{"chat_template": chatTemplate, "bos_token": tokenizer.BeginOfText, "eos_token": tokenizer.EOT})
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	type req struct {
		Messages            []map[string]string `json:"messages"`
		AddGenerationPrompt bool                `json:"add_generation_prompt"`
		TemplateKwargs      map[string]string   `json:"template_kwargs,omitempty"`
	}
	reqs := []req{
		{Messages: []map[string]string{{"role": "user", "content": "Hello there"}}, AddGenerationPrompt: true},
		{Messages: []map[string]string{{"role": "system", "content": " You are terse.\n"}, {"role": "user", "content": "Max: 3 9 2"},
			{"role": "assistant", "content": "9"}, {"role": "user", "content": "  Min? "}}, AddGenerationPrompt: true},
		{Messages: []map[string]string{{"role": "user", "content": "naïve"}, {"role": "assistant", "content": "ok"}}, TemplateKwargs: map[string]string{"date_string": "1 Jan 2025"}},
	}
	var in bytes.Buffer
	for _, r := range reqs {
		b, _ := json.Marshal(r)
		in.Write(append(b, '\n'))
	}
	cmd := exec.Command("python3", renderer, cfgPath)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("render_jinja.py: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(reqs) {
		t.Fatalf("%d answers for %d requests: %s", len(lines), len(reqs), out)
	}
	for i, r := range reqs {
		var got struct{ Text, Error string }
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil || got.Error != "" {
			t.Fatalf("request %d: %v %s", i, err, got.Error)
		}
		var msgs []tokenizer.Message
		for _, m := range r.Messages {
			msgs = append(msgs, tokenizer.Message{Role: m["role"], Content: m["content"]})
		}
		want, err := tok.RenderChat(msgs, tokenizer.ChatOptions{AddGenerationPrompt: r.AddGenerationPrompt, DateString: r.TemplateKwargs["date_string"]})
		if err != nil {
			t.Fatal(err)
		}
		if got.Text != want.Text {
			t.Errorf("request %d: Jinja2 renders\n%q\nherd's chat format is\n%q", i, got.Text, want.Text)
		}
	}
}
