package tokenizer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Chat rendering
//
// herd renders chats with a hand-written implementation of the official
// Llama 3.1 Instruct chat template (the Jinja template in Meta's
// tokenizer_config.json, rendered by transformers with trim_blocks and
// lstrip_blocks and a tojson that is Python's json.dumps with
// ensure_ascii=False). It supports everything that template does:
//
//   - a leading system message (trimmed) after a system header that always
//     carries "Cutting Knowledge Date: December 2023" and "Today Date: "
//     + DateString (default "26 Jul 2024");
//   - custom tools (JSON schemas, rendered with json.dumps indent=4), placed
//     in the first user message (ToolsInUserMessage, the default) or in the
//     system message, with "Environment: ipython";
//   - builtin tools ("Tools: a, b", code_interpreter left out of the list);
//   - user/assistant/any-role messages (content trimmed);
//   - an assistant message with exactly one tool call: a builtin tool as
//     <|python_tag|>name.call(arg="value", …) ended by <|eom_id|>, any
//     other as {"name": …, "parameters": …} ended by <|eot_id|> (<|eom_id|>
//     whenever builtin tools are defined);
//   - tool/ipython results under the "ipython" header: strings, objects and
//     arrays through json.dumps (a string result therefore appears quoted),
//     numbers and booleans as Python prints them;
//   - the generation prompt (an empty assistant header).
//
// It raises the template's errors (no messages, tools in the user message
// without a user message, more than one tool call, non-string builtin-tool
// arguments). Message contents other than strings print as Python would
// (1.5, True, None); an object or array outside a tool result, which the
// template prints as a Python repr, is refused with ErrUnsupported. A
// tokenizer whose tokenizer_config.json carries a different chat template
// is refused, naming the template's hash.
//
// Ids: the template inserts special tokens as token ids; message contents
// are encoded as ordinary text, so a special-token text typed in a message
// cannot forge a header. For contents without such texts the ids equal
// EncodeSpecial(text), which is how the reference ids are made.

// llama31TemplateSHA256 are the SHA-256 hashes of the official Llama 3.1
// Instruct chat template, with and without its trailing newline.
var llama31TemplateSHA256 = []string{
	"e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65",
	"93c0e9aa3629bbd77e68dbc0f5621f6e6b23aa8d74b932595cdb8d64684526d7",
}

// defaultDate is the template's date_string when none is given.
const defaultDate = "26 Jul 2024"

// Message is one chat message in the Hugging Face / OpenAI layout:
// {"role": …, "content": …, "tool_calls": [{"function": {"name": …,
// "arguments": …}}]}.
type Message struct {
	Role    string
	Content string // text content (absent or null content reads as "")
	// Data is a structured content (a JSON object, array, number or boolean,
	// typically a tool result) used instead of Content when non-nil.
	Data      *Value
	ToolCalls []ToolCall
}

// ToolCall is an assistant's call of a function.
type ToolCall struct {
	Name      string
	Arguments Value // usually an object; a string is rendered as a JSON string
}

// UnmarshalJSON reads a message in the Hugging Face layout.
func (m *Message) UnmarshalJSON(data []byte) error {
	var v Value
	if err := v.UnmarshalJSON(data); err != nil {
		return err
	}
	if v.Kind != Object {
		return errors.New("a message must be a JSON object")
	}
	role := v.Get("role")
	if role == nil || role.Kind != String {
		return errors.New("message has no string \"role\"")
	}
	*m = Message{Role: role.Str}
	if c := v.Get("content"); c != nil {
		switch c.Kind {
		case String:
			m.Content = c.Str
		default:
			cc := *c
			m.Data = &cc
		}
	}
	if tc := v.Get("tool_calls"); tc != nil {
		if tc.Kind != Array || len(tc.Elems) == 0 {
			return fmt.Errorf("message \"tool_calls\" must be a non-empty array")
		}
		for i := range tc.Elems {
			fn := tc.Elems[i].Get("function")
			if fn == nil {
				fn = &tc.Elems[i] // {"name", "arguments"} directly
			}
			name := fn.Get("name")
			if name == nil || name.Kind != String {
				return fmt.Errorf("tool call %d has no string \"name\"", i)
			}
			call := ToolCall{Name: name.Str, Arguments: Value{Kind: Object}}
			if a := fn.Get("arguments"); a != nil {
				call.Arguments = *a
			}
			m.ToolCalls = append(m.ToolCalls, call)
		}
	}
	if (m.Role == "tool" || m.Role == "ipython") && v.Get("content") == nil {
		return fmt.Errorf("%s message has no \"content\"", m.Role)
	}
	return nil
}

// ChatOptions are the template variables besides the messages.
type ChatOptions struct {
	AddGenerationPrompt bool    // end with an empty assistant header
	DateString          string  // "Today Date: …"; "" = the template's default, "26 Jul 2024"
	Tools               []Value // custom tools (JSON schemas); nil = none, non-nil empty = an empty list
	ToolsInSystem       bool    // tools go in the system message (tools_in_user_message=false)
	BuiltinTools        []string
	HasBuiltinTools     bool // builtin_tools is defined (also set when BuiltinTools is non-nil)
}

// optionsFromValue reads template variables from a JSON object.
func optionsFromValue(v *Value) (ChatOptions, error) {
	var o ChatOptions
	if v.Kind == Null {
		return o, nil
	}
	if v.Kind != Object {
		return o, errors.New("template kwargs must be a JSON object")
	}
	if ct := v.Get("custom_tools"); ct != nil && ct.Kind != Null {
		// The template's custom_tools replaces tools.
		if t := v.Get("tools"); t != nil {
			*t = *ct
		}
	}
	for i, k := range v.Keys {
		f := v.Fields[i]
		switch k {
		case "date_string":
			if f.Kind != String {
				return o, errors.New("date_string must be a string")
			}
			o.DateString = f.Str
		case "tools", "custom_tools":
			switch f.Kind {
			case Null:
			case Array:
				o.Tools = append([]Value{}, f.Elems...)
			default:
				return o, fmt.Errorf("%s must be a list", k)
			}
		case "tools_in_user_message":
			if f.Kind != Bool {
				return o, errors.New("tools_in_user_message must be a boolean")
			}
			o.ToolsInSystem = !f.Bool
		case "builtin_tools":
			if f.Kind == Null {
				continue
			}
			if f.Kind != Array {
				return o, errors.New("builtin_tools must be a list of strings")
			}
			o.HasBuiltinTools = true
			o.BuiltinTools = []string{}
			for _, e := range f.Elems {
				if e.Kind != String {
					return o, errors.New("builtin_tools must be a list of strings")
				}
				o.BuiltinTools = append(o.BuiltinTools, e.Str)
			}
		case "add_generation_prompt":
			if f.Kind != Bool {
				return o, errors.New("add_generation_prompt must be a boolean")
			}
			o.AddGenerationPrompt = f.Bool
		default:
			return o, fmt.Errorf("unknown chat template variable %q (herd's Llama 3.1 renderer knows date_string, tools, custom_tools, tools_in_user_message, builtin_tools)", k)
		}
	}
	return o, nil
}

// Chat is a rendered conversation.
type Chat struct {
	Text string  // the rendered text, as the Jinja template produces it
	IDs  []int32 // its token ids
	// Target marks the assistant's tokens, the SFT loss target: every
	// token of an assistant message's body (content, or a tool call
	// including <|python_tag|>) and the <|eot_id|>/<|eom_id|> that ends it.
	// The generation prompt's header is not a target.
	Target []bool
	// Format marks formatting tokens, masked out of the DPO loss: every
	// special token the template inserts other than <|python_tag|>
	// (<|begin_of_text|>, <|start_header_id|>, <|end_header_id|>,
	// <|eot_id|>, <|eom_id|>), the role name in each header and the "\n\n"
	// after it. The DPO loss covers Target && !Format.
	Format []bool
}

// segment is a piece of rendered output.
type segment struct {
	text    string
	special bool // text is a special token inserted by the template
	target  bool
	format  bool
}

type chatRenderer struct {
	segs []segment
}

func (r *chatRenderer) text(s string, target, format bool) {
	if s != "" {
		r.segs = append(r.segs, segment{text: s, target: target, format: format})
	}
}

func (r *chatRenderer) special(s string, target, format bool) {
	r.segs = append(r.segs, segment{text: s, special: true, target: target, format: format})
}

// header renders <|start_header_id|>role<|end_header_id|>\n\n.
func (r *chatRenderer) header(role string) {
	r.special(StartHeader, false, true)
	r.text(role, false, true)
	r.special(EndHeader, false, true)
	r.text("\n\n", false, true)
}

// pyTrim is Python's str.strip(): it removes Unicode whitespace, which for
// Python also includes the separators U+001C..U+001F.
func pyTrim(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || r >= 0x1C && r <= 0x1F
	})
}

func dumps(v *Value, indent int) string {
	var b strings.Builder
	v.pyDump(&b, indent, 0)
	return b.String()
}

// CheckChatTemplate reports whether the tokenizer's chat template (if any)
// is one herd renders.
func (t *Tokenizer) CheckChatTemplate() error {
	if t.cfg.ChatTemplate == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(t.cfg.ChatTemplate))
	h := hex.EncodeToString(sum[:])
	if slices.Contains(llama31TemplateSHA256, h) {
		return nil
	}
	return fmt.Errorf("unsupported chat template (sha256 %s): herd renders only the official Llama 3.1 Instruct template; remove chat_template from %s or use that template", h, ConfigFile)
}

// RenderChat renders messages in the Llama 3.1 chat format (see the package
// documentation of Chat), returning the text, ids and masks.
func (t *Tokenizer) RenderChat(msgs []Message, o ChatOptions) (*Chat, error) {
	if err := t.CheckChatTemplate(); err != nil {
		return nil, err
	}
	bos := t.cfg.BOS
	if bos == "" {
		bos = BeginOfText
	}
	if len(msgs) == 0 {
		return nil, errors.New("no messages: the template reads the first message")
	}
	var r chatRenderer
	r.special(bos, false, true)
	date := o.DateString
	if date == "" {
		date = defaultDate
	}
	builtin := o.HasBuiltinTools || o.BuiltinTools != nil
	hasTools := o.Tools != nil

	system := ""
	if len(msgs) > 0 && msgs[0].Role == "system" {
		s, err := plainContent(&msgs[0], 0)
		if err != nil {
			return nil, err
		}
		system = pyTrim(s)
		msgs = msgs[1:]
	}
	r.header("system")
	var sys strings.Builder
	if builtin || hasTools {
		sys.WriteString("Environment: ipython\n")
	}
	if builtin {
		var names []string
		for _, n := range o.BuiltinTools {
			if n != "code_interpreter" {
				names = append(names, n)
			}
		}
		sys.WriteString("Tools: " + strings.Join(names, ", ") + "\n\n")
	}
	sys.WriteString("Cutting Knowledge Date: December 2023\n")
	sys.WriteString("Today Date: " + date + "\n\n")
	writeTools := func(b *strings.Builder) {
		b.WriteString(`Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.`)
		b.WriteString("Do not use variables.\n\n")
		for i := range o.Tools {
			b.WriteString(dumps(&o.Tools[i], 4))
			b.WriteString("\n\n")
		}
	}
	if hasTools && o.ToolsInSystem {
		sys.WriteString("You have access to the following functions. To call a function, please respond with JSON for a function call.")
		writeTools(&sys)
	}
	sys.WriteString(system)
	r.text(sys.String(), false, false)
	r.special(EOT, false, true)

	if hasTools && !o.ToolsInSystem {
		if len(msgs) == 0 {
			return nil, errors.New("cannot put tools in the first user message when there's no first user message")
		}
		first, err := plainContent(&msgs[0], 0)
		if err != nil {
			return nil, err
		}
		msgs = msgs[1:]
		r.header("user")
		var u strings.Builder
		u.WriteString("Given the following functions, please respond with a JSON for a function call ")
		u.WriteString("with its proper arguments that best answers the given prompt.\n\n")
		writeTools(&u)
		u.WriteString(pyTrim(first))
		r.text(u.String(), false, false)
		r.special(EOT, false, true)
	}

	for i := range msgs {
		m := &msgs[i]
		switch {
		case m.Role != "ipython" && m.Role != "tool" && m.ToolCalls == nil:
			c, err := plainContent(m, i)
			if err != nil {
				return nil, err
			}
			asst := m.Role == "assistant"
			r.header(m.Role)
			r.text(pyTrim(c), asst, false)
			r.special(EOT, asst, true)
		case m.ToolCalls != nil:
			if len(m.ToolCalls) != 1 {
				return nil, errors.New("this model only supports single tool-calls at once")
			}
			call := &m.ToolCalls[0]
			r.header("assistant")
			if builtin && slices.Contains(o.BuiltinTools, call.Name) {
				r.special(PythonTag, true, false)
				var b strings.Builder
				b.WriteString(call.Name + ".call(")
				if call.Arguments.Kind != Object {
					return nil, fmt.Errorf("message %d: builtin tool call %q needs an object of arguments", i, call.Name)
				}
				for k, key := range call.Arguments.Keys {
					arg := &call.Arguments.Fields[k]
					if arg.Kind != String {
						return nil, fmt.Errorf("message %d: builtin tool call %q argument %q is not a string", i, call.Name, key)
					}
					if k > 0 {
						b.WriteString(", ")
					}
					b.WriteString(key + `="` + arg.Str + `"`)
				}
				b.WriteString(")")
				r.text(b.String(), true, false)
			} else {
				r.text(`{"name": "`+call.Name+`", "parameters": `+dumps(&call.Arguments, -1)+"}", true, false)
			}
			if builtin {
				r.special(EOM, true, true)
			} else {
				r.special(EOT, true, true)
			}
		default: // tool or ipython result
			r.header("ipython")
			switch {
			case m.Data == nil:
				s := stringValue(m.Content)
				r.text(dumps(&s, -1), false, false)
			case m.Data.Kind == Object || m.Data.Kind == Array:
				r.text(dumps(m.Data, -1), false, false)
			default:
				r.text(m.Data.pyStr(), false, false)
			}
			r.special(EOT, false, true)
		}
	}
	if o.AddGenerationPrompt {
		r.header("assistant")
	}
	return t.encodeSegments(r.segs)
}

// ErrUnsupported marks conversations the official template would render
// but herd's renderer does not (see RenderChat).
var ErrUnsupported = errors.New("not supported by herd's Llama 3.1 chat renderer")

// plainContent returns a message's content as the template's
// "content | trim" sees it: the text, or Python's str() of a number,
// boolean or null. An object or array would print as a Python repr, which
// herd does not reproduce.
func plainContent(m *Message, i int) (string, error) {
	switch {
	case m.Data == nil:
		return m.Content, nil
	case m.Data.Kind == Object || m.Data.Kind == Array:
		return "", fmt.Errorf("message %d (%s): object or array content outside a tool/ipython result (the template would print its Python repr): %w", i, m.Role, ErrUnsupported)
	}
	return m.Data.pyStr(), nil
}

// encodeSegments turns rendered segments into text, ids and masks.
// Consecutive text segments are encoded together (as the reference
// tokenizer sees them between special tokens); each id takes the masks of
// the segment where its pre-token starts.
func (t *Tokenizer) encodeSegments(segs []segment) (*Chat, error) {
	c := &Chat{}
	var text strings.Builder
	sc := t.pool.Get().(*scratch)
	defer t.pool.Put(sc)
	for i := 0; i < len(segs); {
		s := segs[i]
		if s.special {
			id, ok := t.SpecialID(s.text)
			if !ok {
				return nil, fmt.Errorf("chat format needs the special token %q, which the vocabulary lacks", s.text)
			}
			text.WriteString(s.text)
			c.IDs = append(c.IDs, id)
			c.Target = append(c.Target, s.target)
			c.Format = append(c.Format, s.format)
			i++
			continue
		}
		// A run of text segments.
		j := i
		var run []byte
		var ends []int
		for ; j < len(segs) && !segs[j].special; j++ {
			run = append(run, segs[j].text...)
			ends = append(ends, len(run))
		}
		text.Write(run)
		seg := i
		for p := 0; p < len(run); {
			q := nextPiece(run, p)
			for ends[seg-i] <= p {
				seg++
			}
			n := len(c.IDs)
			c.IDs = t.encodePiece(c.IDs, run[p:q], sc)
			for range len(c.IDs) - n {
				c.Target = append(c.Target, segs[seg].target)
				c.Format = append(c.Format, segs[seg].format)
			}
			p = q
		}
		i = j
	}
	c.Text = text.String()
	if !utf8.ValidString(c.Text) {
		return nil, errors.New("chat text is not valid UTF-8")
	}
	return c, nil
}

// ChatRequest is one line of a chat JSONL file: {"messages": […],
// "add_generation_prompt": bool, "template_kwargs": {…}}; template
// variables may also appear at the top level.
type ChatRequest struct {
	Messages []Message
	Options  ChatOptions
}

// ParseChatRequest reads one chat request.
func ParseChatRequest(data []byte) (ChatRequest, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return ChatRequest{}, err
	}
	var req ChatRequest
	msgs, ok := raw["messages"]
	if !ok {
		return req, errors.New("no \"messages\" field")
	}
	if err := json.Unmarshal(msgs, &req.Messages); err != nil {
		return req, fmt.Errorf("messages: %w", err)
	}
	kw := Value{Kind: Object}
	if k, ok := raw["template_kwargs"]; ok {
		if err := kw.UnmarshalJSON(k); err != nil {
			return req, fmt.Errorf("template_kwargs: %w", err)
		}
		if kw.Kind == Null {
			kw = Value{Kind: Object}
		}
		if kw.Kind != Object {
			return req, errors.New("template_kwargs must be an object")
		}
	}
	keys := make([]string, 0, len(raw))
	for key := range raw {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		switch key {
		case "messages", "template_kwargs", "text", "ids":
			continue // text and ids: the reference cases carry them
		}
		var x Value
		if err := x.UnmarshalJSON(raw[key]); err != nil {
			return req, fmt.Errorf("%s: %w", key, err)
		}
		kw.Keys = append(kw.Keys, key)
		kw.Fields = append(kw.Fields, x)
	}
	o, err := optionsFromValue(&kw)
	if err != nil {
		return req, err
	}
	req.Options = o
	return req, nil
}
