package chatdata

import (
	"errors"
	"fmt"
	"slices"

	"github.com/herdml/herd/data/tokenizer"
)

// Truncation is what happens to an example longer than the sequence
// length.
type Truncation string

// Truncation policies.
const (
	// TruncateDrop drops the example, counted under ReasonTooLong (the
	// default).
	TruncateDrop Truncation = "drop"
	// TruncateLeft cuts prompt tokens from the left, right after
	// <|begin_of_text|> (which stays so the sequence still starts like
	// every other), keeping the response whole: for SFT the response is
	// the last assistant turn with its header, for preferences every
	// response. When the response alone does not fit the example is
	// dropped as with TruncateDrop.
	TruncateLeft Truncation = "truncate_left"
)

func (t Truncation) check() error {
	switch t {
	case "", TruncateDrop, TruncateLeft:
		return nil
	}
	return fmt.Errorf("truncation %q: want %q or %q", string(t), TruncateDrop, TruncateLeft)
}

// EncodeOptions configure an Encoder.
type EncodeOptions struct {
	// Chat are the chat template variables (tools, date, …);
	// AddGenerationPrompt is ignored.
	Chat tokenizer.ChatOptions
	// SeqLen is the most tokens of an example (the training sequence
	// length T); required.
	SeqLen int
	// Truncation is the policy for longer examples ("" = TruncateDrop).
	Truncation Truncation
	// AllTokens puts the SFT loss on every token instead of the
	// assistant's tokens only.
	AllTokens bool
}

// Encoder tokenizes rows with the Llama 3.1 chat template and its masks.
type Encoder struct {
	tok         *tokenizer.Tokenizer
	o           EncodeOptions
	startHeader int32
	bos         int32
}

// NewEncoder returns an Encoder; the tokenizer must have the Llama 3
// special tokens (every herd-trained tokenizer has them).
func NewEncoder(tok *tokenizer.Tokenizer, o EncodeOptions) (*Encoder, error) {
	if tok == nil {
		return nil, errors.New("chatdata: no tokenizer")
	}
	if err := tok.CheckChatTemplate(); err != nil {
		return nil, err
	}
	if o.SeqLen < 2 {
		return nil, fmt.Errorf("chatdata: sequence length %d: want at least 2 tokens", o.SeqLen)
	}
	if err := o.Truncation.check(); err != nil {
		return nil, err
	}
	if o.Truncation == "" {
		o.Truncation = TruncateDrop
	}
	o.Chat.AddGenerationPrompt = false
	e := &Encoder{tok: tok, o: o}
	var ok bool
	if e.startHeader, ok = tok.SpecialID(tokenizer.StartHeader); !ok {
		return nil, fmt.Errorf("chatdata: the tokenizer lacks %s: it needs the Llama 3 special tokens", tokenizer.StartHeader)
	}
	bos := tok.Config().BOS
	if bos == "" {
		bos = tokenizer.BeginOfText
	}
	if e.bos, ok = tok.SpecialID(bos); !ok {
		return nil, fmt.Errorf("chatdata: the tokenizer lacks its BOS token %s", bos)
	}
	return e, nil
}

// SFTExample is a tokenized SFT conversation. The loss at position i
// predicts IDs[i+1]: Weights[i] is 1 when token i+1 is a target (an
// assistant token, or any token with AllTokens) and 0 otherwise; the last
// position predicts nothing (weight 0).
type SFTExample struct {
	IDs     []int32
	Weights []float32
	Cut     int // prompt tokens removed by TruncateLeft
}

// Targets returns the next-token targets of the example: IDs[i+1] where
// Weights[i] > 0, -1 elsewhere.
func (x *SFTExample) Targets() []int32 {
	t := make([]int32, len(x.IDs))
	for i := range t {
		t[i] = -1
		if i+1 < len(x.IDs) && x.Weights[i] > 0 {
			t[i] = x.IDs[i+1]
		}
	}
	return t
}

// render renders messages, with a row's own tools when it has them; a
// template error is ReasonUnrenderable.
func (e *Encoder) render(msgs []tokenizer.Message, tools []tokenizer.Value) (*tokenizer.Chat, *rowError) {
	o := e.o.Chat
	if tools != nil {
		o.Tools = tools
	}
	c, err := e.tok.RenderChat(msgs, o)
	if err != nil {
		return nil, rowErr(ReasonUnrenderable, "%v", err)
	}
	return c, nil
}

// SFT tokenizes an SFT row. A bad row is a *rowError.
func (e *Encoder) SFT(r SFTRow) (SFTExample, error) {
	x, err := e.sft(r)
	if err != nil {
		return SFTExample{}, err
	}
	return x, nil
}

func (e *Encoder) sft(r SFTRow) (SFTExample, *rowError) {
	c, rerr := e.render(r.Messages, r.Tools)
	if rerr != nil {
		return SFTExample{}, rerr
	}
	ids, target := c.IDs, c.Target
	last := -1 // start of the last assistant turn's tokens
	for i := range ids {
		if target[i] && !c.Format[i] {
			last = i
		}
	}
	if last < 0 {
		return SFTExample{}, rowErr(ReasonEmptyResponse, "no assistant message with content (%d messages)", len(r.Messages))
	}
	for last > 0 && target[last-1] {
		last--
	}
	cut := 0
	if n, T := len(ids), e.o.SeqLen; n > T {
		if e.o.Truncation != TruncateLeft {
			return SFTExample{}, rowErr(ReasonTooLong, "%d tokens, more than the sequence length %d (truncation %q)", n, T, e.o.Truncation)
		}
		// The last assistant turn starts at its header.
		h := last
		for h > 0 && ids[h] != e.startHeader {
			h--
		}
		cut = n - T
		if ids[0] != e.bos || 1+cut > h {
			return SFTExample{}, rowErr(ReasonTooLong, "%d tokens, and the last assistant turn alone (%d tokens with its header) does not fit the sequence length %d", n, n-h, T)
		}
		ids = slices.Delete(slices.Clone(ids), 1, 1+cut)
		target = slices.Delete(slices.Clone(target), 1, 1+cut)
	}
	w := make([]float32, len(ids))
	for i := 0; i+1 < len(ids); i++ {
		if e.o.AllTokens || target[i+1] {
			w[i] = 1
		}
	}
	return SFTExample{IDs: ids, Weights: w, Cut: cut}, nil
}

// Response is one response of a preference example, rendered after the
// shared prompt.
type Response struct {
	// IDs is the whole sequence: the prompt's ids, then the response's.
	IDs []int32
	// Scored marks the response tokens DPO scores: tokens after the
	// prompt that are assistant targets and not formatting
	// (<|start_header_id|>, <|end_header_id|>, <|eot_id|>, <|eom_id|>,
	// role names; <|python_tag|> is scored), per Chat.Target and
	// Chat.Format.
	Scored []bool
	// Last is the index of the last token (the response's end token), where
	// a reward model reads the reward.
	Last int
}

// PrefExample is a tokenized preference row. Every response starts with
// the same PromptLen prompt ids.
type PrefExample struct {
	PromptLen int
	Chosen    Response
	Rejected  Response
	Edited    *Response // nil when the row has no edited response
	Cut       int       // prompt tokens removed by TruncateLeft
}

// Prompt returns the shared prompt ids.
func (x *PrefExample) Prompt() []int32 { return x.Chosen.IDs[:x.PromptLen] }

// Pref tokenizes a preference row. A bad row is a *rowError.
func (e *Encoder) Pref(r PrefRow) (PrefExample, error) {
	x, err := e.pref(r)
	if err != nil {
		return PrefExample{}, err
	}
	return x, nil
}

func (e *Encoder) pref(r PrefRow) (PrefExample, *rowError) {
	p, rerr := e.render(r.Prompt, r.Tools)
	if rerr != nil {
		return PrefExample{}, rerr
	}
	P := len(p.IDs)
	resp := func(name string, msgs []tokenizer.Message) (Response, *rowError) {
		all := append(slices.Clip(r.Prompt), msgs...)
		c, rerr := e.render(all, r.Tools)
		if rerr != nil {
			rerr.Detail = name + ": " + rerr.Detail
			return Response{}, rerr
		}
		if len(c.IDs) < P || !slices.Equal(c.IDs[:P], p.IDs) {
			return Response{}, rowErr(ReasonUnrenderable, "%s: the prompt's rendering is not a prefix of the prompt + %s rendering", name, name)
		}
		s := Response{IDs: c.IDs, Scored: make([]bool, len(c.IDs)), Last: len(c.IDs) - 1}
		n := 0
		for i := P; i < len(c.IDs); i++ {
			if c.Target[i] && !c.Format[i] {
				s.Scored[i] = true
				n++
			}
		}
		if n == 0 {
			return Response{}, rowErr(ReasonEmptyResponse, "%s has no assistant token to score", name)
		}
		return s, nil
	}
	x := PrefExample{PromptLen: P}
	if x.Chosen, rerr = resp("chosen", r.Chosen); rerr != nil {
		return x, rerr
	}
	if x.Rejected, rerr = resp("rejected", r.Rejected); rerr != nil {
		return x, rerr
	}
	rs := []*Response{&x.Chosen, &x.Rejected}
	if r.Edited != nil {
		ed, rerr := resp("edited", r.Edited)
		if rerr != nil {
			return x, rerr
		}
		x.Edited = &ed
		rs = append(rs, x.Edited)
	}
	n := 0
	for _, s := range rs {
		n = max(n, len(s.IDs))
	}
	if T := e.o.SeqLen; n > T {
		if e.o.Truncation != TruncateLeft {
			return x, rowErr(ReasonTooLong, "%d tokens (the longest response with the prompt), more than the sequence length %d (truncation %q)", n, T, e.o.Truncation)
		}
		cut := n - T
		if p.IDs[0] != e.bos || 1+cut > P {
			return x, rowErr(ReasonTooLong, "%d tokens, and the longest response alone (%d tokens) does not fit the sequence length %d", n, n-P, T)
		}
		for _, s := range rs {
			s.IDs = slices.Delete(s.IDs, 1, 1+cut)
			s.Scored = slices.Delete(s.Scored, 1, 1+cut)
			s.Last -= cut
		}
		x.PromptLen -= cut
		x.Cut = cut
	}
	return x, nil
}
