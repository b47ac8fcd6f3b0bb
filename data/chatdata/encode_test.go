package chatdata

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/traintest"
)

func TestParseSFT(t *testing.T) {
	cases := []struct {
		name, line string
		roles      []string // of the parsed messages
		reason     string   // of a bad row
	}{
		{"messages", sftLines[1], []string{"system", "user", "assistant", "user", "assistant"}, ""},
		{"prompt completion", sftLines[2], []string{"user", "assistant"}, ""},
		{"conversational prompt completion", sftLines[3], []string{"user", "assistant"}, ""},
		{"tool call", sftLines[4], []string{"user", "assistant", "ipython", "assistant"}, ""},
		{"tools", toolsLine, []string{"user", "assistant"}, ""},
		{"bad tools", `{"messages": [{"role": "user", "content": "x"}], "tools": {}}`, nil, ReasonInvalidField},
		{"tool role", `{"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]}`, []string{"tool", "assistant"}, ""},
		{"not json", `{"messages": [`, nil, ReasonMalformedJSON},
		{"null", `null`, nil, ReasonMalformedJSON},
		{"array", `[1]`, nil, ReasonMalformedJSON},
		{"no fields", `{"text": "x"}`, nil, ReasonMissingField},
		{"prompt only", `{"prompt": "x"}`, nil, ReasonMissingField},
		{"null completion", `{"prompt": "x", "completion": null}`, nil, ReasonMissingField},
		{"empty messages", `{"messages": []}`, nil, ReasonMissingField},
		{"messages string", `{"messages": "hi"}`, nil, ReasonInvalidField},
		{"numeric prompt", `{"prompt": 3, "completion": "x"}`, nil, ReasonInvalidField},
		{"message without role", `{"messages": [{"content": "x"}]}`, nil, ReasonInvalidField},
		{"unknown role", `{"messages": [{"role": "narrator", "content": "x"}]}`, nil, ReasonUnknownRole},
	}
	for _, c := range cases {
		r, err := ParseSFT([]byte(c.line))
		if c.reason != "" {
			var re *rowError
			if !errors.As(err, &re) || re.Reason != c.reason {
				t.Errorf("%s: error %v, want reason %s", c.name, err, c.reason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var roles []string
		for _, m := range r.Messages {
			roles = append(roles, m.Role)
		}
		if !slices.Equal(roles, c.roles) {
			t.Errorf("%s: roles %v, want %v", c.name, roles, c.roles)
		}
	}
	r, _ := ParseSFT([]byte(sftLines[2]))
	if r.Messages[0].Content != "The quick brown fox" || r.Messages[1].Content != "jumps over the lazy dog." {
		t.Errorf("prompt/completion contents %+v", r.Messages)
	}
}

func TestParsePref(t *testing.T) {
	cases := []struct {
		name, line               string
		prompt, chosen, rejected int // message counts
		edited                   bool
		reason                   string
	}{
		{"standard", prefLines[0], 1, 1, 1, false, ""},
		{"conversational", prefLines[1], 2, 1, 1, false, ""},
		{"edited", prefLines[2], 1, 1, 1, true, ""},
		{"multi-turn prompt", prefLines[3], 3, 1, 1, false, ""},
		{"no rejected", `{"prompt": "a", "chosen": "b"}`, 0, 0, 0, false, ReasonMissingField},
		{"no prompt", `{"chosen": "b", "rejected": "c"}`, 0, 0, 0, false, ReasonMissingField},
		{"empty prompt list", `{"prompt": [], "chosen": "b", "rejected": "c"}`, 0, 0, 0, false, ReasonMissingField},
		{"empty chosen list", `{"prompt": "a", "chosen": [], "rejected": "c"}`, 0, 0, 0, false, ReasonEmptyResponse},
		{"object chosen", `{"prompt": "a", "chosen": {}, "rejected": "c"}`, 0, 0, 0, false, ReasonInvalidField},
		{"bad role", `{"prompt": "a", "chosen": [{"role": "bot", "content": "x"}], "rejected": "c"}`, 0, 0, 0, false, ReasonUnknownRole},
		{"bad edited", `{"prompt": "a", "chosen": "b", "rejected": "c", "edited": 5}`, 0, 0, 0, false, ReasonInvalidField},
	}
	for _, c := range cases {
		r, err := ParsePref([]byte(c.line))
		if c.reason != "" {
			var re *rowError
			if !errors.As(err, &re) || re.Reason != c.reason {
				t.Errorf("%s: error %v, want reason %s", c.name, err, c.reason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(r.Prompt) != c.prompt || len(r.Chosen) != c.chosen || len(r.Rejected) != c.rejected || (r.Edited != nil) != c.edited {
			t.Errorf("%s: parsed %+v", c.name, r)
		}
		if r.Chosen[len(r.Chosen)-1].Role != "assistant" {
			t.Errorf("%s: chosen role %s", c.name, r.Chosen[0].Role)
		}
	}
}

// TestSFTMasksMatchRenderChat checks every example against RenderChat:
// the same ids, and weight i set exactly when Target[i+1] (or for every
// position but the last with AllTokens).
func TestSFTMasksMatchRenderChat(t *testing.T) {
	tok := testTokenizer(t)
	for _, all := range []bool{false, true} {
		enc, err := NewEncoder(tok, EncodeOptions{SeqLen: 4096, AllTokens: all})
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range append(slices.Clone(sftLines), toolsLine) {
			row, err := ParseSFT([]byte(line))
			if err != nil {
				t.Fatal(err)
			}
			x, err := enc.SFT(row)
			if err != nil {
				t.Fatalf("row %d: %v", i, err)
			}
			c, err := tok.RenderChat(row.Messages, tokenizer.ChatOptions{Tools: row.Tools})
			if err != nil {
				t.Fatal(err)
			}
			if row.Tools != nil && !strings.Contains(c.Text, "get_weather") {
				t.Fatalf("row %d: tools not rendered: %q", i, c.Text)
			}
			if !slices.Equal(x.IDs, c.IDs) {
				t.Fatalf("row %d: ids differ from RenderChat", i)
			}
			n := len(c.IDs)
			if x.Weights[n-1] != 0 {
				t.Errorf("row %d: the last position has weight %v", i, x.Weights[n-1])
			}
			for j := 0; j+1 < n; j++ {
				want := c.Target[j+1] || all
				if (x.Weights[j] == 1) != want || (x.Weights[j] != 0 && x.Weights[j] != 1) {
					t.Fatalf("row %d (all=%v) position %d: weight %v, Target[%d]=%v", i, all, j, x.Weights[j], j+1, c.Target[j+1])
				}
			}
			tg := x.Targets()
			for j := range tg {
				if (tg[j] >= 0) != (x.Weights[j] > 0) || tg[j] >= 0 && tg[j] != x.IDs[j+1] {
					t.Fatalf("row %d: target %d at %d", i, tg[j], j)
				}
			}
		}
	}
}

// TestSFTShift spells out one example: "Hi" → "Hello there". The weights
// are 1 from the "\n\n" after the assistant header (which predicts the
// first reply token) to the last reply token (which predicts <|eot_id|>).
func TestSFTShift(t *testing.T) {
	tok := testTokenizer(t)
	enc, err := NewEncoder(tok, EncodeOptions{SeqLen: 512})
	if err != nil {
		t.Fatal(err)
	}
	x, err := enc.SFT(SFTRow{Messages: []tokenizer.Message{{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello there"}}})
	if err != nil {
		t.Fatal(err)
	}
	reply := tok.Encode([]byte("Hello there"))
	n := len(x.IDs)
	// … <sh> assistant <eh> \n\n Hello there <eot>
	eot := traintest.SpecialID(t, tok, tokenizer.EOT)
	if x.IDs[n-1] != eot || x.IDs[n-2-len(reply)] != tok.Encode([]byte("\n\n"))[0] || x.IDs[n-3-len(reply)] != traintest.SpecialID(t, tok, tokenizer.EndHeader) {
		t.Fatalf("unexpected layout %v", x.IDs[n-6-len(reply):])
	}
	want := make([]float32, n)
	first := n - 2 - len(reply) // position of "\n\n": predicts the first reply token
	for i := first; i <= n-2; i++ {
		want[i] = 1
	}
	if !slices.Equal(x.Weights, want) {
		t.Fatalf("weights\n got %v\nwant %v", x.Weights, want)
	}
	tg := x.Targets()
	wantT := slices.Repeat([]int32{-1}, n)
	copy(wantT[first:], append(slices.Clone(reply), eot))
	if !slices.Equal(tg, wantT) {
		t.Fatalf("targets\n got %v\nwant %v", tg, wantT)
	}
}

// TestPrefMasks checks every preference example against RenderChat: the
// prompt is a shared prefix, Scored is Target && !Format after it, and Last
// is the final token.
func TestPrefMasks(t *testing.T) {
	tok := testTokenizer(t)
	enc, err := NewEncoder(tok, EncodeOptions{SeqLen: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range prefLines {
		row, err := ParsePref([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		x, err := enc.Pref(row)
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		p, _ := tok.RenderChat(row.Prompt, tokenizer.ChatOptions{})
		if x.PromptLen != len(p.IDs) || !slices.Equal(x.Prompt(), p.IDs) {
			t.Fatalf("row %d: prompt %v, want %v", i, x.Prompt(), p.IDs)
		}
		check := func(name string, msgs []tokenizer.Message, r *Response) {
			c, _ := tok.RenderChat(append(slices.Clone(row.Prompt), msgs...), tokenizer.ChatOptions{})
			if !slices.Equal(r.IDs, c.IDs) || r.Last != len(c.IDs)-1 {
				t.Fatalf("row %d %s: ids or last differ", i, name)
			}
			for j := range c.IDs {
				want := j >= x.PromptLen && c.Target[j] && !c.Format[j]
				if r.Scored[j] != want {
					t.Fatalf("row %d %s: scored[%d]=%v", i, name, j, r.Scored[j])
				}
			}
			dec, _ := tok.Decode(r.IDs[x.PromptLen:])
			if !strings.Contains(string(dec), msgs[len(msgs)-1].Content) {
				t.Fatalf("row %d %s: response decodes to %q", i, name, dec)
			}
		}
		check("chosen", row.Chosen, &x.Chosen)
		check("rejected", row.Rejected, &x.Rejected)
		if (x.Edited != nil) != (row.Edited != nil) {
			t.Fatalf("row %d: edited %v", i, x.Edited)
		}
		if x.Edited != nil {
			check("edited", row.Edited, x.Edited)
		}
	}
}

// TestPythonTagScored: a builtin tool call's <|python_tag|> is scored, its
// <|eom_id|> is not, and a multi-turn prompt's assistant turn is not.
func TestPythonTagScored(t *testing.T) {
	tok := testTokenizer(t)
	enc, err := NewEncoder(tok, EncodeOptions{SeqLen: 4096, Chat: tokenizer.ChatOptions{BuiltinTools: []string{"brave_search"}}})
	if err != nil {
		t.Fatal(err)
	}
	row, err := ParsePref([]byte(`{"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "search"}], "chosen": [{"role": "assistant", "tool_calls": [{"function": {"name": "brave_search", "arguments": {"query": "x"}}}]}], "rejected": "No."}`))
	if err != nil {
		t.Fatal(err)
	}
	x, err := enc.Pref(row)
	if err != nil {
		t.Fatal(err)
	}
	py, eom := traintest.SpecialID(t, tok, tokenizer.PythonTag), traintest.SpecialID(t, tok, tokenizer.EOM)
	sawPy := false
	for i, id := range x.Chosen.IDs {
		switch {
		case id == py:
			sawPy = true
			if !x.Chosen.Scored[i] {
				t.Error("<|python_tag|> is not scored")
			}
		case id == eom && x.Chosen.Scored[i]:
			t.Error("<|eom_id|> is scored")
		case tok.IsSpecial(id) && x.Chosen.Scored[i]:
			t.Errorf("special %q scored", tok.Token(id))
		}
		if i < x.PromptLen && x.Chosen.Scored[i] {
			t.Fatalf("prompt token %d scored", i)
		}
	}
	if !sawPy || x.Chosen.IDs[x.Chosen.Last] != eom {
		t.Fatalf("python tag %v, last token %d", sawPy, x.Chosen.IDs[x.Chosen.Last])
	}
}

func TestTruncateLeft(t *testing.T) {
	tok := testTokenizer(t)
	row := SFTRow{Messages: []tokenizer.Message{
		{Role: "user", Content: strings.Repeat("The quick brown fox jumps. ", 20)},
		{Role: "assistant", Content: "Earlier answer."},
		{Role: "user", Content: "Hi"},
		{Role: "assistant", Content: "Hello there"},
	}}
	full, err := tok.RenderChat(row.Messages, tokenizer.ChatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := len(full.IDs)
	reply := len(tok.Encode([]byte("Hello there")))
	sh := traintest.SpecialID(t, tok, tokenizer.StartHeader)
	tail := 0 // from the last header to the end
	for i := n - 1; i >= 0; i-- {
		if full.IDs[i] == sh {
			tail = n - i
			break
		}
	}
	for _, c := range []struct {
		name   string
		trunc  Truncation
		T      int
		reason string
	}{
		{"fits", TruncateDrop, n, ""},
		{"drop", TruncateDrop, n - 1, ReasonTooLong},
		{"cut", TruncateLeft, n - 10, ""},
		{"cut to the header", TruncateLeft, tail + 1, ""},
		{"response alone too long", TruncateLeft, tail, ReasonTooLong},
	} {
		enc, err := NewEncoder(tok, EncodeOptions{SeqLen: c.T, Truncation: c.trunc})
		if err != nil {
			t.Fatal(err)
		}
		x, err := enc.SFT(row)
		if c.reason != "" {
			var re *rowError
			if !errors.As(err, &re) || re.Reason != c.reason {
				t.Errorf("%s: %v, want %s", c.name, err, c.reason)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(x.IDs) != min(n, c.T) || x.Cut != n-len(x.IDs) || x.IDs[0] != full.IDs[0] || !slices.Equal(x.IDs[1:], full.IDs[1+x.Cut:]) {
			t.Fatalf("%s: %d ids, cut %d", c.name, len(x.IDs), x.Cut)
		}
		kept := append([]bool{full.Target[0]}, full.Target[1+x.Cut:]...)
		for j := 0; j+1 < len(x.IDs); j++ {
			if (x.Weights[j] == 1) != kept[j+1] {
				t.Fatalf("%s: weight %v at %d", c.name, x.Weights[j], j)
			}
		}
		if x.Weights[len(x.IDs)-2] != 1 || x.Weights[len(x.IDs)-2-reply] != 1 {
			t.Fatalf("%s: the reply is not a target", c.name)
		}
	}

	// Preferences: the longest response decides; the prompt is cut for all.
	prow, _ := ParsePref([]byte(`{"prompt": "` + strings.Repeat("The lazy dog. ", 20) + `", "chosen": "Hello there, how are you today?", "rejected": "No."}`))
	enc, _ := NewEncoder(tok, EncodeOptions{SeqLen: 4096})
	whole, err := enc.Pref(prow)
	if err != nil {
		t.Fatal(err)
	}
	L := len(whole.Chosen.IDs)
	enc, _ = NewEncoder(tok, EncodeOptions{SeqLen: L - 7, Truncation: TruncateLeft})
	x, err := enc.Pref(prow)
	if err != nil {
		t.Fatal(err)
	}
	if x.Cut != 7 || x.PromptLen != whole.PromptLen-7 || len(x.Chosen.IDs) != L-7 || len(x.Rejected.IDs) != len(whole.Rejected.IDs)-7 ||
		x.Chosen.Last != L-8 || !slices.Equal(x.Chosen.IDs[x.PromptLen:], whole.Chosen.IDs[whole.PromptLen:]) ||
		!slices.Equal(x.Rejected.Scored[x.PromptLen:], whole.Rejected.Scored[whole.PromptLen:]) {
		t.Fatalf("cut preference example %+v", x)
	}
	enc, _ = NewEncoder(tok, EncodeOptions{SeqLen: L - whole.PromptLen, Truncation: TruncateLeft})
	if _, err := enc.Pref(prow); err == nil || !strings.Contains(err.Error(), ReasonTooLong) {
		t.Fatalf("response alone too long: %v", err)
	}
}

func TestEncoderOptions(t *testing.T) {
	tok := testTokenizer(t)
	if _, err := NewEncoder(tok, EncodeOptions{SeqLen: 1}); err == nil {
		t.Error("SeqLen 1 accepted")
	}
	if _, err := NewEncoder(tok, EncodeOptions{SeqLen: 8, Truncation: "middle"}); err == nil || !strings.Contains(err.Error(), "truncate_left") {
		t.Errorf("bad truncation: %v", err)
	}
	if _, err := NewEncoder(nil, EncodeOptions{SeqLen: 8}); err == nil {
		t.Error("nil tokenizer accepted")
	}
}
