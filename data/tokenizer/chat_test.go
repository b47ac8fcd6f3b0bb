package tokenizer

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type chatCase struct {
	req  ChatRequest
	Text string  `json:"text"`
	IDs  []int32 `json:"ids"`
}

func loadChatCases(t testing.TB) []chatCase {
	t.Helper()
	needRef(t)
	f, err := os.Open(filepath.Join(refDir, "chat_cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []chatCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var c chatCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		if c.req, err = ParseChatRequest(sc.Bytes()); err != nil {
			t.Fatalf("case %d: %v", len(out), err)
		}
		out = append(out, c)
	}
	return out
}

// TestChatCases renders every reference conversation: exact text and ids.
func TestChatCases(t *testing.T) {
	tok := loadRef(t)
	cases := loadChatCases(t)
	for i, c := range cases {
		got, err := tok.RenderChat(c.req.Messages, c.req.Options)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if got.Text != c.Text {
			t.Fatalf("case %d text:\n got %q\nwant %q", i, got.Text, c.Text)
		}
		if !slices.Equal(got.IDs, c.IDs) {
			t.Fatalf("case %d ids:\n got %v\nwant %v", i, got.IDs, c.IDs)
		}
		if sp := tok.EncodeSpecial([]byte(c.Text)); !slices.Equal(sp, c.IDs) {
			t.Fatalf("case %d: EncodeSpecial(text) differs from the reference ids", i)
		}
		if len(got.Target) != len(got.IDs) || len(got.Format) != len(got.IDs) {
			t.Fatalf("case %d: mask lengths %d, %d for %d ids", i, len(got.Target), len(got.Format), len(got.IDs))
		}
		checkMasks(t, tok, c.req, got)
	}
	t.Logf("%d of %d chat cases exact", len(cases), len(cases))
}

// checkMasks verifies the mask definitions independently of the renderer:
// decoding the Target tokens gives the assistant bodies each followed by its
// end token, and every special token other than <|python_tag|> is Format.
func checkMasks(t *testing.T, tok *Tokenizer, req ChatRequest, c *Chat) {
	t.Helper()
	var target []int32
	inHeader := false
	for i, id := range c.IDs {
		if c.Target[i] {
			target = append(target, id)
		}
		name := string(tok.Token(id))
		if tok.IsSpecial(id) && (name == PythonTag) == c.Format[i] {
			t.Fatalf("special %s at %d: format=%v", name, i, c.Format[i])
		}
		afterHeader := i > 0 && c.IDs[i-1] == mustID(t, tok, EndHeader)
		if !tok.IsSpecial(id) {
			// Formatting text is exactly the role inside a header and the
			// "\n\n" right after it.
			isFmt := inHeader || afterHeader && name == "\n\n"
			if c.Format[i] != isFmt {
				t.Fatalf("text token %q at %d: format=%v, want %v", name, i, c.Format[i], isFmt)
			}
		}
		switch name {
		case StartHeader:
			inHeader = true
		case EndHeader:
			inHeader = false
		}
	}
	dec, _ := tok.Decode(target)
	var want strings.Builder
	for _, m := range req.Messages {
		if m.Role != "assistant" {
			continue
		}
		if m.ToolCalls != nil {
			// The rendered call ends with an end token; its exact text
			// is checked by TestChatCases.
			continue
		}
		want.WriteString(pyTrim(m.Content) + EOT)
	}
	got := string(dec)
	if !strings.Contains(got, "call(") && !strings.Contains(got, `"parameters"`) && got != want.String() {
		t.Fatalf("target tokens decode to %q, want %q", got, want.String())
	}
}

func mustID(t *testing.T, tok *Tokenizer, name string) int32 {
	id, ok := tok.SpecialID(name)
	if !ok {
		t.Fatalf("no special %s", name)
	}
	return id
}

// TestChatMasksExplicit spells out the masks of a short conversation.
func TestChatMasksExplicit(t *testing.T) {
	tok := loadRef(t)
	c, err := tok.RenderChat([]Message{{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello there"}}, ChatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Walk the ids and describe each: T target, F format, B both, - neither.
	var desc strings.Builder
	for i := range c.IDs {
		switch {
		case c.Target[i] && c.Format[i]:
			desc.WriteByte('B')
		case c.Target[i]:
			desc.WriteByte('T')
		case c.Format[i]:
			desc.WriteByte('F')
		default:
			desc.WriteByte('-')
		}
	}
	// <bot> <sh> system <eh> \n\n [system text…] <eot> <sh> user <eh> \n\n Hi <eot> <sh> assistant <eh> \n\n Hello there <eot>
	sysText := tok.Encode([]byte("Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"))
	want := "FFFFF" + strings.Repeat("-", len(sysText)) + "F" + "FFFF" + "-" + "F" + "FFFF" + "TT" + "B"
	if desc.String() != want {
		t.Fatalf("masks %s\n want %s", desc.String(), want)
	}
	// With the generation prompt the trailing assistant header is format only.
	g, err := tok.RenderChat([]Message{{Role: "user", Content: "Hi"}}, ChatOptions{AddGenerationPrompt: true})
	if err != nil {
		t.Fatal(err)
	}
	n := len(g.IDs)
	for i := n - 4; i < n; i++ {
		if g.Target[i] || !g.Format[i] {
			t.Fatalf("generation prompt token %d: target=%v format=%v", i, g.Target[i], g.Format[i])
		}
	}
}

func TestChatErrors(t *testing.T) {
	tok := loadRef(t)
	tools := []Value{{Kind: Object}}
	cases := []struct {
		name string
		msgs []Message
		o    ChatOptions
		want string
	}{
		{"tools without user", []Message{{Role: "system", Content: "s"}}, ChatOptions{Tools: tools}, "no first user message"},
		{"two tool calls", []Message{{Role: "assistant", ToolCalls: []ToolCall{{Name: "a"}, {Name: "b"}}}}, ChatOptions{}, "single tool-calls"},
		{"structured user content", []Message{{Role: "user", Data: &Value{Kind: Array}}}, ChatOptions{}, "Python repr"},
		{"no messages", nil, ChatOptions{}, "no messages"},
		{"builtin non-string arg", []Message{{Role: "assistant", ToolCalls: []ToolCall{{Name: "brave_search", Arguments: Value{Kind: Object, Keys: []string{"q"}, Fields: []Value{{Kind: Number, Num: "1"}}}}}}}, ChatOptions{BuiltinTools: []string{"brave_search"}}, "not a string"},
	}
	for _, c := range cases {
		if _, err := tok.RenderChat(c.msgs, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	other := *tok.withConfig(func(c *Config) { c.ChatTemplate = "{{ messages }}" })
	if _, err := other.RenderChat([]Message{{Role: "user", Content: "x"}}, ChatOptions{}); err == nil || !strings.Contains(err.Error(), "unsupported chat template") {
		t.Errorf("foreign template: %v", err)
	}
	for _, bad := range []string{`{"messages": [{"content": "x"}]}`, `{"messages": [{"role": "tool"}]}`, `{"messages": [], "tools": 3}`, `{"messages": [], "temperature": 1}`} {
		if _, err := ParseChatRequest([]byte(bad)); err == nil {
			t.Errorf("ParseChatRequest(%s) accepted", bad)
		}
	}
}

func TestPyJSON(t *testing.T) {
	cases := []struct{ in, compact, str string }{
		{`1`, `1`, `1`},
		{`-0`, `0`, `0`},
		{`1.0`, `1.0`, `1.0`},
		{`1e2`, `100.0`, `100.0`},
		{`1e16`, `1e+16`, `1e+16`},
		{`1.5e-5`, `1.5e-05`, `1.5e-05`},
		{`0.0001`, `0.0001`, `0.0001`},
		{`123456789012345678`, `123456789012345678`, `123456789012345678`},
		{`1e400`, `Infinity`, `inf`},
		{`true`, `true`, `True`},
		{`null`, `null`, `None`},
		{`"a\"b\\c\n\u0001é</>"`, `"a\"b\\c\n\u0001é</>"`, "a\"b\\c\n\x01é</>"},
		{`{"b": 1, "a": [1, {"x": null}], "e": {}}`, `{"b": 1, "a": [1, {"x": null}], "e": {}}`, `{"b": 1, "a": [1, {"x": null}], "e": {}}`},
	}
	for _, c := range cases {
		var v Value
		if err := json.Unmarshal([]byte(c.in), &v); err != nil {
			t.Fatal(err)
		}
		if got := dumps(&v, -1); got != c.compact {
			t.Errorf("dumps(%s) = %s, want %s", c.in, got, c.compact)
		}
		if got := v.pyStr(); got != c.str {
			t.Errorf("str(%s) = %s, want %s", c.in, got, c.str)
		}
	}
	var v Value
	json.Unmarshal([]byte(`{"a": [1, 2], "b": {}}`), &v)
	if got, want := dumps(&v, 4), "{\n    \"a\": [\n        1,\n        2\n    ],\n    \"b\": {}\n}"; got != want {
		t.Errorf("indent 4: %q, want %q", got, want)
	}
	// MarshalJSON keeps key order and the numbers as written.
	var big Value
	json.Unmarshal([]byte(`{"z": 1e400, "a": [1.50]}`), &big)
	if b, err := json.Marshal(big); err != nil || string(b) != `{"z":1e400,"a":[1.50]}` {
		t.Errorf("MarshalJSON = %s, %v", b, err)
	}
	if pyFloatRepr(math.Pi*1e15) != "3141592653589793.0" || pyFloatRepr(-2.5e-7) != "-2.5e-07" {
		t.Errorf("float repr: %s %s", pyFloatRepr(math.Pi*1e15), pyFloatRepr(-2.5e-7))
	}
}

func FuzzParseChatRequest(f *testing.F) {
	f.Add([]byte(`{"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true}`))
	f.Add([]byte(`{"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"a": "b"}}}]}, {"role": "tool", "content": {"x": [1.5e300]}}], "tools": [{"a": 1}], "builtin_tools": ["f"]}`))
	tok := tinyTokenizer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseChatRequest(data)
		if err != nil {
			return
		}
		c, err := tok.RenderChat(req.Messages, req.Options)
		if err != nil {
			return
		}
		if dec, err := tok.Decode(c.IDs); err != nil || string(dec) != c.Text {
			t.Fatalf("ids decode to %q, text %q", dec, c.Text)
		}
	})
}
