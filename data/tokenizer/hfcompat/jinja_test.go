package hfcompat_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/data/tokenizer"
)

// jsonStr quotes s as JSON without HTML escaping.
func jsonStr(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// chatGen draws random chat requests from the domain the renderer
// supports: every role, whitespace to trim (Unicode spaces and Python's
// extra separators included), quotes, backslashes, control characters,
// non-ASCII, special-token texts, tool schemas with nested values and
// numbers of every form, builtin and custom tool calls, results of every
// JSON type, and invalid combinations that both renderers must refuse.
type chatGen struct{ rng *rand.Rand }

func (g chatGen) pick(xs ...string) string { return xs[g.rng.IntN(len(xs))] }

func (g chatGen) text() string {
	var b strings.Builder
	for range g.rng.IntN(6) {
		b.WriteString(g.pick(" ", "\n", "\t", "\u00a0", "\u3000", "\x1c", "\x85", "\u200b", "hello", "Wörld", "東京", "🤔", `"q"`, `\`, "\x01", "<|eot_id|>", "{", "}", "it's", "  x  ", "1.50"))
	}
	return b.String()
}

func (g chatGen) number() string {
	return g.pick("0", "-0", "7", "-12", "123456789012345678901", "1.0", "1.50", "2.5e-7", "1e16", "1E2", "3.14159", "0.0001", "1e400")
}

func (g chatGen) value(depth int) string {
	switch k := g.rng.IntN(7); {
	case k == 0:
		return "null"
	case k == 1:
		return g.pick("true", "false")
	case k == 2:
		return g.number()
	case k == 3 || depth > 2:
		return jsonStr(g.text())
	case k == 4:
		var parts []string
		for range g.rng.IntN(3) {
			parts = append(parts, g.value(depth+1))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		return g.object(depth + 1)
	}
}

func (g chatGen) object(depth int) string {
	var parts []string
	for i := range g.rng.IntN(4) {
		parts = append(parts, fmt.Sprintf("%s: %s", jsonStr(fmt.Sprintf("k%d%s", i, g.pick("", "é", " x"))), g.value(depth)))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (g chatGen) request() string {
	builtins := []string{"brave_search", "wolfram_alpha", "code_interpreter"}
	var msgs []string
	if g.rng.IntN(2) == 0 {
		msgs = append(msgs, fmt.Sprintf(`{"role": "system", "content": %s}`, jsonStr(g.text())))
	}
	for range g.rng.IntN(6) {
		switch g.rng.IntN(6) {
		case 0, 1:
			msgs = append(msgs, fmt.Sprintf(`{"role": %s, "content": %s}`, jsonStr(g.pick("user", "assistant", "user", "critic")), jsonStr(g.text())))
		case 2:
			name := g.pick(append(builtins, "get_weather", "lookup")...)
			args := g.object(0)
			if g.rng.IntN(3) == 0 {
				args = fmt.Sprintf(`{"query": %s, "n": %s}`, jsonStr(g.text()), jsonStr(g.text()))
			}
			if g.rng.IntN(10) == 0 {
				args = jsonStr(`{"a": 1}`) // OpenAI-style arguments string
			}
			calls := fmt.Sprintf(`{"type": "function", "function": {"name": %s, "arguments": %s}}`, jsonStr(name), args)
			if g.rng.IntN(12) == 0 {
				calls += ", " + calls // two calls: the template refuses
			}
			content := ""
			if g.rng.IntN(2) == 0 {
				content = `"content": null, `
			}
			msgs = append(msgs, fmt.Sprintf(`{"role": "assistant", %s"tool_calls": [%s]}`, content, calls))
		case 3:
			msgs = append(msgs, fmt.Sprintf(`{"role": %s, "content": %s}`, jsonStr(g.pick("tool", "ipython")), g.value(0)))
		default:
			msgs = append(msgs, fmt.Sprintf(`{"role": "user", "content": %s}`, jsonStr(g.text())))
		}
	}
	kw := []string{fmt.Sprintf(`"date_string": %s`, jsonStr(g.pick("26 Jul 2024", "1 Jan 2025", "héllo")))}
	if g.rng.IntN(2) == 0 {
		var tools []string
		for range g.rng.IntN(3) {
			tools = append(tools, fmt.Sprintf(`{"type": "function", "function": {"name": "f", "parameters": %s}}`, g.object(0)))
		}
		kw = append(kw, `"tools": [`+strings.Join(tools, ", ")+`]`)
		if g.rng.IntN(2) == 0 {
			kw = append(kw, fmt.Sprintf(`"tools_in_user_message": %v`, g.rng.IntN(2) == 0))
		}
	}
	if g.rng.IntN(3) == 0 {
		var bs []string
		for _, b := range builtins {
			if g.rng.IntN(2) == 0 {
				bs = append(bs, jsonStr(b))
			}
		}
		kw = append(kw, `"builtin_tools": [`+strings.Join(bs, ", ")+`]`)
	}
	return fmt.Sprintf(`{"messages": [%s], "add_generation_prompt": %v, "template_kwargs": {%s}}`,
		strings.Join(msgs, ", "), g.rng.IntN(2) == 0, strings.Join(kw, ", "))
}

// TestChatMatchesJinja2 renders random conversations with herd and with
// Python's Jinja2 running the official template from the reference
// tokenizer_config.json (as transformers does): the same text, or an
// error from both.
func TestChatMatchesJinja2(t *testing.T) {
	needRef(t)
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: the Jinja2 chat-template check needs python3 with jinja2 (Debian: python3-jinja2)")
	}
	if err := exec.Command(python, "-c", "import jinja2").Run(); err != nil {
		t.Skip("python3 has no jinja2 module: install python3-jinja2 to enable the chat-template check")
	}
	tok := loadRef(t)
	g := chatGen{rand.New(rand.NewPCG(11, 12))}
	var reqs []string
	for range 1500 {
		reqs = append(reqs, g.request())
	}
	cmd := exec.Command(python, filepath.Join(jsDir, "render_jinja.py"), filepath.Join(refDir, "tokenizer_config.json"))
	cmd.Stdin = strings.NewReader(strings.Join(reqs, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("render_jinja.py: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<24)
	rendered, refused, unsupported := 0, 0, 0
	for i := 0; sc.Scan(); i++ {
		var want struct {
			Text  *string
			Error string
		}
		if err := json.Unmarshal(sc.Bytes(), &want); err != nil {
			t.Fatal(err)
		}
		req, err := tokenizer.ParseChatRequest([]byte(reqs[i]))
		var c *tokenizer.Chat
		if err == nil {
			c, err = tok.RenderChat(req.Messages, req.Options)
		}
		switch {
		case want.Text == nil && err == nil:
			t.Fatalf("request %d: Jinja2 fails (%s), herd renders %q\n%s", i, want.Error, c.Text, reqs[i])
		case want.Text != nil && errors.Is(err, tokenizer.ErrUnsupported):
			unsupported++ // documented: herd refuses, Jinja2 prints a Python repr
		case want.Text != nil && err != nil:
			t.Fatalf("request %d: herd fails (%v), Jinja2 renders %q\n%s", i, err, *want.Text, reqs[i])
		case want.Text != nil && c.Text != *want.Text:
			t.Fatalf("request %d:\n herd %q\nJinja2 %q\n%s", i, c.Text, *want.Text, reqs[i])
		case want.Text != nil:
			rendered++
			// Without special-token texts in the contents, the ids of the
			// segment-wise encoding equal those of the whole text.
			if !strings.Contains(reqs[i], "<|") && !slices.Equal(c.IDs, tok.EncodeSpecial([]byte(c.Text))) {
				t.Fatalf("request %d: ids differ from EncodeSpecial(text)\n%s", i, reqs[i])
			}
		default:
			refused++
		}
	}
	if rendered+refused+unsupported != len(reqs) {
		t.Fatalf("%d results for %d requests", rendered+refused+unsupported, len(reqs))
	}
	if rendered < len(reqs)/2 {
		t.Fatalf("only %d of %d requests rendered: the generator is off", rendered, len(reqs))
	}
	t.Logf("%d conversations rendered identically, %d refused by both, %d refused by herd as unsupported", rendered, refused, unsupported)
}
