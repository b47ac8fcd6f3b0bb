package chatdata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/herdml/herd/data/tokenizer"
)

// Reasons a row is bad, the keys of Stats.Bad.
const (
	ReasonLineTooLong   = "line_too_long"  // a JSONL line or Parquet value longer than MaxLineBytes
	ReasonMalformedJSON = "malformed_json" // the line is not a JSON object
	ReasonMissingField  = "missing_field"  // a required field is absent or null
	ReasonInvalidField  = "invalid_field"  // a field has the wrong type, or a message is malformed
	ReasonUnknownRole   = "unknown_role"   // a message role outside system/user/assistant/ipython/tool
	ReasonEmptyResponse = "empty_response" // no assistant token to learn from or score
	ReasonTooLong       = "too_long"       // more tokens than the sequence length (after truncation, if any)
	ReasonUnrenderable  = "unrenderable"   // the Llama 3.1 template refuses the conversation
)

// reasons lists every bad-row reason, in the order Stats.String uses.
var reasons = []string{ReasonLineTooLong, ReasonMalformedJSON, ReasonMissingField, ReasonInvalidField,
	ReasonUnknownRole, ReasonEmptyResponse, ReasonTooLong, ReasonUnrenderable}

// rowError is a bad row: where it is, why, and what is wrong.
type rowError struct {
	Loc    string // file:line (JSONL) or file:rowN (Parquet, 1-based)
	Reason string // one of the Reason* constants
	Detail string
}

// Error formats the bad row as "file:line: reason: detail".
func (e *rowError) Error() string {
	if e.Loc == "" {
		return e.Reason + ": " + e.Detail
	}
	return e.Loc + ": " + e.Reason + ": " + e.Detail
}

func rowErr(reason, format string, args ...any) *rowError {
	return &rowError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// SFTRow is one supervised fine-tuning conversation. Rows read as
// {"messages": […]} keep their messages; {"prompt", "completion"} rows
// become a user message and an assistant message (or, in TRL's
// conversational form, the prompt's messages followed by the
// completion's).
type SFTRow struct {
	Messages []tokenizer.Message
	// Tools are the row's custom tools (its "tools" field, a list of JSON
	// schemas as in TRL datasets); nil: the Encoder's ChatOptions.Tools.
	Tools []tokenizer.Value
}

// PrefRow is one preference row: a prompt and its ranked responses,
// Edited (optional) > Chosen > Rejected as in Llama 3. Each response is the
// list of messages that follows the prompt (usually one assistant message).
type PrefRow struct {
	Prompt   []tokenizer.Message
	Chosen   []tokenizer.Message
	Rejected []tokenizer.Message
	Edited   []tokenizer.Message // nil when the row has no edited response
	Tools    []tokenizer.Value   // see SFTRow.Tools
}

// tools reads the optional "tools" field: a list of JSON schemas.
func (f fields) tools() ([]tokenizer.Value, *rowError) {
	if !f.has("tools") {
		return nil, nil
	}
	var v tokenizer.Value
	if err := v.UnmarshalJSON(f["tools"]); err != nil || v.Kind != tokenizer.Array {
		return nil, rowErr(ReasonInvalidField, "field \"tools\" must be a list of JSON schemas")
	}
	if v.Elems == nil {
		v.Elems = []tokenizer.Value{}
	}
	return v.Elems, nil
}

// knownRoles are the roles the Llama 3.1 template is used with; "tool"
// renders as "ipython".
var knownRoles = map[string]bool{"system": true, "user": true, "assistant": true, "ipython": true, "tool": true}

// fields is a parsed row: its top-level fields as raw JSON.
type fields map[string]json.RawMessage

// parseObject reads a JSONL line as a JSON object.
func parseObject(line []byte) (fields, *rowError) {
	var f fields
	if err := json.Unmarshal(line, &f); err != nil {
		return nil, rowErr(ReasonMalformedJSON, "%v (each line must be one JSON object)", err)
	}
	if f == nil {
		return nil, rowErr(ReasonMalformedJSON, "the line is null, not a JSON object")
	}
	return f, nil
}

// has reports whether a field is present and not null.
func (f fields) has(name string) bool {
	v, ok := f[name]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// turn reads a field that is a string (wrapped as one message of role) or
// a list of messages.
func (f fields) turn(name, role string) ([]tokenizer.Message, *rowError) {
	if !f.has(name) {
		return nil, rowErr(ReasonMissingField, "no %q field", name)
	}
	raw := bytes.TrimSpace(f[name])
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, rowErr(ReasonInvalidField, "field %q: %v", name, err)
		}
		return []tokenizer.Message{{Role: role, Content: s}}, nil
	case '[':
		return messages(name, raw)
	}
	return nil, rowErr(ReasonInvalidField, "field %q must be a string or a list of messages, got %s", name, abbrev(raw))
}

// messages reads a list of messages and checks their roles.
func messages(name string, raw []byte) ([]tokenizer.Message, *rowError) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, rowErr(ReasonInvalidField, "field %q must be a list of messages: %v", name, err)
	}
	msgs := make([]tokenizer.Message, len(elems))
	for i, e := range elems {
		if err := msgs[i].UnmarshalJSON(e); err != nil {
			return nil, rowErr(ReasonInvalidField, "field %q message %d: %v", name, i, err)
		}
		if !knownRoles[msgs[i].Role] {
			return nil, rowErr(ReasonUnknownRole, "field %q message %d has role %q: want system, user, assistant, ipython or tool", name, i, abbrev([]byte(msgs[i].Role)))
		}
	}
	return msgs, nil
}

// abbrev shortens a value for an error message.
func abbrev(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// ParseSFT reads one SFT row from a JSON object: {"messages": […]} or
// {"prompt": …, "completion": …} (strings, or lists of messages). A bad row
// is a *rowError without Loc.
func ParseSFT(line []byte) (SFTRow, error) {
	f, rerr := parseObject(line)
	if rerr != nil {
		return SFTRow{}, rerr
	}
	r, rerr := f.sft()
	if rerr != nil {
		return SFTRow{}, rerr
	}
	return r, nil
}

func (f fields) sft() (SFTRow, *rowError) {
	if f.has("messages") {
		raw := bytes.TrimSpace(f["messages"])
		if raw[0] != '[' {
			return SFTRow{}, rowErr(ReasonInvalidField, "field \"messages\" must be a list of messages, got %s", abbrev(raw))
		}
		m, err := messages("messages", raw)
		if err != nil {
			return SFTRow{}, err
		}
		if len(m) == 0 {
			return SFTRow{}, rowErr(ReasonMissingField, "field \"messages\" is an empty list")
		}
		tools, err := f.tools()
		if err != nil {
			return SFTRow{}, err
		}
		return SFTRow{Messages: m, Tools: tools}, nil
	}
	if !f.has("prompt") && !f.has("completion") {
		return SFTRow{}, rowErr(ReasonMissingField, "no \"messages\" field and no \"prompt\"/\"completion\" fields (SFT rows are {\"messages\": [...]} or {\"prompt\": ..., \"completion\": ...})")
	}
	p, err := f.turn("prompt", "user")
	if err != nil {
		return SFTRow{}, err
	}
	c, err := f.turn("completion", "assistant")
	if err != nil {
		return SFTRow{}, err
	}
	tools, err := f.tools()
	if err != nil {
		return SFTRow{}, err
	}
	return SFTRow{Messages: append(p, c...), Tools: tools}, nil
}

// ParsePref reads one preference row from a JSON object: "prompt",
// "chosen", "rejected" and optionally "edited", each a string (TRL's
// standard format: the prompt is a user message, a response an assistant
// message) or a list of messages (TRL's conversational format). A bad row
// is a *rowError without Loc.
func ParsePref(line []byte) (PrefRow, error) {
	f, rerr := parseObject(line)
	if rerr != nil {
		return PrefRow{}, rerr
	}
	r, rerr := f.pref()
	if rerr != nil {
		return PrefRow{}, rerr
	}
	return r, nil
}

func (f fields) pref() (PrefRow, *rowError) {
	var r PrefRow
	var err *rowError
	if r.Prompt, err = f.turn("prompt", "user"); err != nil {
		return r, err
	}
	if len(r.Prompt) == 0 {
		return r, rowErr(ReasonMissingField, "field \"prompt\" is an empty list")
	}
	if r.Chosen, err = f.turn("chosen", "assistant"); err != nil {
		return r, err
	}
	if r.Rejected, err = f.turn("rejected", "assistant"); err != nil {
		return r, err
	}
	if f.has("edited") {
		if r.Edited, err = f.turn("edited", "assistant"); err != nil {
			return r, err
		}
	}
	if r.Tools, err = f.tools(); err != nil {
		return r, err
	}
	for _, x := range []struct {
		name string
		m    []tokenizer.Message
	}{{"chosen", r.Chosen}, {"rejected", r.Rejected}, {"edited", r.Edited}} {
		if x.m != nil && len(x.m) == 0 {
			return r, rowErr(ReasonEmptyResponse, "field %q is an empty list", x.name)
		}
	}
	return r, nil
}
