package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/checkpoint/gguf"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
)

// textOptions are the settings of text generation (-prompt, -chat).
type textOptions struct {
	prompt, system string
	chat           bool
	maxTokens      int
	sample         model.SampleOptions
	// set are the sampling flags given on the command line; the others
	// come from generation_config.json.
	set map[string]bool
}

// generationDefaults reads the model directory's generation_config.json:
// sampling defaults and EOS ids (none when the file is absent, or for a
// GGUF file).
func generationDefaults(dir string) (*checkpoint.GenerationConfig, error) {
	if gguf.IsGGUF(dir) {
		return nil, nil
	}
	data, err := os.ReadFile(filepath.Join(dir, checkpoint.GenerationConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var g checkpoint.GenerationConfig
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, checkpoint.GenerationConfigFile), err)
	}
	return &g, nil
}

// eosIDs are generation_config's eos_token_id (a number or a list).
func eosIDs(g *checkpoint.GenerationConfig) []int32 {
	if g == nil {
		return nil
	}
	var out []int32
	switch v := g.EOSTokenID.(type) {
	case float64:
		out = append(out, int32(v))
	case []any:
		for _, x := range v {
			if f, ok := x.(float64); ok {
				out = append(out, int32(f))
			}
		}
	}
	return out
}

// withDefaults fills the sampling settings not given on the command line
// from generation_config.json, and the stop ids: the file's EOS ids and
// the tokenizer's end tokens.
func withDefaults(dir string, tok *tokenizer.Tokenizer, o textOptions) (textOptions, error) {
	gen, err := generationDefaults(dir)
	if err != nil {
		return o, err
	}
	if gen != nil {
		if !o.set["temperature"] {
			o.sample.Temperature = 0
			if gen.DoSample {
				o.sample.Temperature = gen.Temperature
			}
		}
		if !o.set["top-p"] && gen.DoSample && gen.TopP > 0 {
			o.sample.TopP = gen.TopP
		}
		if !o.set["top-k"] && gen.DoSample && gen.TopK > 0 {
			o.sample.TopK = gen.TopK
		}
	}
	stop := slices.Clone(o.sample.StopTokens)
	stop = append(stop, eosIDs(gen)...)
	for _, name := range []string{tokenizer.EOT, tokenizer.EOM, tokenizer.EndOfText} {
		if id, ok := tok.SpecialID(name); ok {
			stop = append(stop, id)
		}
	}
	o.sample.StopTokens = stop
	return o, nil
}

// runText generates text from a prompt (or a chat) with the model
// directory's tokenizer, streaming it to stdout as it is produced. With
// -chat and no -prompt it reads one user message per line of stdin and
// keeps the conversation.
func runText(ctx context.Context, dir string, m *model.Model, o textOptions, stdin io.Reader, stdout io.Writer) error {
	tok, err := loadTokenizer(dir)
	if err != nil {
		return fmt.Errorf("text generation needs the model directory's tokenizer: %w", err)
	}
	o, err = withDefaults(dir, tok, o)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	if !o.chat {
		var ids []int32
		if bos, ok := tok.SpecialID(tok.Config().BOS); ok {
			ids = append(ids, bos)
		}
		ids = tok.AppendEncode(ids, []byte(o.prompt), false)
		if _, err := stream(ctx, m, tok, ids, o, w); err != nil {
			return err
		}
		_, err := w.WriteString("\n")
		return err
	}
	var msgs []tokenizer.Message
	if o.system != "" {
		msgs = append(msgs, tokenizer.Message{Role: "system", Content: o.system})
	}
	turn := func(user string) error {
		msgs = append(msgs, tokenizer.Message{Role: "user", Content: user})
		c, err := tok.RenderChat(msgs, tokenizer.ChatOptions{AddGenerationPrompt: true})
		if err != nil {
			return err
		}
		reply, err := stream(ctx, m, tok, c.IDs, o, w)
		if err != nil {
			return err
		}
		msgs = append(msgs, tokenizer.Message{Role: "assistant", Content: reply})
		if _, err := w.WriteString("\n"); err != nil {
			return err
		}
		return w.Flush()
	}
	if o.prompt != "" {
		return turn(o.prompt)
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := turn(line); err != nil {
			return err
		}
	}
	return sc.Err()
}

// stream continues ids, writing the text of each new token as soon as it
// completes a UTF-8 character, and returns the whole text. It refuses to
// run past the model's context.
func stream(ctx context.Context, m *model.Model, tok *tokenizer.Tokenizer, ids []int32, o textOptions, w *bufio.Writer) (string, error) {
	ctxLen := m.Config.MaxPositionEmbeddings
	if len(ids) >= ctxLen {
		return "", fmt.Errorf("the prompt has %d tokens; the model's context (max_position_embeddings) is %d", len(ids), ctxLen)
	}
	maxTokens := o.maxTokens
	if maxTokens > ctxLen-len(ids) {
		return "", fmt.Errorf("-max-tokens %d: the prompt's %d tokens and the new ones must fit in the model's context of %d, so at most %d new tokens fit", maxTokens, len(ids), ctxLen, ctxLen-len(ids))
	}
	dec, err := m.NewDecoder(1, len(ids)+maxTokens)
	if err != nil {
		return "", err
	}
	s := model.NewSampler(o.sample, 0)
	V := m.Config.VocabSize
	logits, err := dec.Step([]int{0}, [][]int32{ids}, false)
	if err != nil {
		return "", err
	}
	var all, pending []byte
	one := make([]int32, 1)
	for range maxTokens {
		if err := ctx.Err(); err != nil {
			return string(all), err
		}
		if model.FirstNonFinite(logits[:V]) >= 0 {
			return string(all), errors.New("the logits are not finite: the model's weights are probably corrupt")
		}
		t := s.Sample(logits[:V])
		if slices.Contains(o.sample.StopTokens, t) {
			break
		}
		if !tok.IsSpecial(t) {
			pending = append(pending, tok.Token(t)...)
			// Write the complete characters; keep a split one for later.
			n := len(pending)
			for n > 0 && !utf8.Valid(pending[:n]) {
				n--
			}
			if n == 0 && len(pending) >= utf8.UTFMax {
				// Not a split character but invalid bytes: show them.
				pending = []byte(strings.ToValidUTF8(string(pending), "\uFFFD"))
				n = len(pending)
			}
			if n > 0 {
				w.Write(pending[:n])
				w.Flush()
				all = append(all, pending[:n]...)
				pending = append(pending[:0], pending[n:]...)
			}
		}
		one[0] = t
		if logits, err = dec.Step([]int{0}, [][]int32{one}, false); err != nil {
			return string(all), err
		}
	}
	if len(pending) > 0 {
		rest := strings.ToValidUTF8(string(pending), "\uFFFD")
		w.WriteString(rest)
		all = append(all, rest...)
	}
	return string(all), w.Flush()
}

// jsonlRow is one -jsonl input: a text prompt, or a conversation.
type jsonlRow struct {
	Prompt   *string             `json:"prompt"`
	Messages []tokenizer.Message `json:"messages"`
}

// runJSONL answers every line of in — {"prompt": "text"} (continued as
// text) or {"messages": [...]} (answered with the chat template) — decoding
// batch lines together, and writes one {"line", "response"} (or "error")
// JSON line per non-blank input line, in order.
func runJSONL(ctx context.Context, dir string, m *model.Model, o textOptions, in io.Reader, name string, batch int, stdout io.Writer) error {
	tok, err := loadTokenizer(dir)
	if err != nil {
		return fmt.Errorf("text generation needs the model directory's tokenizer: %w", err)
	}
	o, err = withDefaults(dir, tok, o)
	if err != nil {
		return err
	}
	type item struct {
		line int
		ids  []int32
		err  string
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	ctxLen := m.Config.MaxPositionEmbeddings
	flush := func(items []item) error {
		var prompts [][]int32
		var at []int
		for i, it := range items {
			if it.err == "" {
				prompts = append(prompts, it.ids)
				at = append(at, i)
			}
		}
		maxNew := o.maxTokens
		for _, p := range prompts {
			maxNew = min(maxNew, ctxLen-len(p))
		}
		gens, err := m.Generate(ctx, prompts, model.SampleOptions{Temperature: o.sample.Temperature, TopK: o.sample.TopK, TopP: o.sample.TopP,
			Seed: o.sample.Seed, MaxTokens: maxNew, StopTokens: o.sample.StopTokens})
		if err != nil {
			return err
		}
		resp := make([]string, len(items))
		for k, g := range gens {
			var b []byte
			for _, t := range g.Tokens {
				if !tok.IsSpecial(t) {
					b = append(b, tok.Token(t)...)
				}
			}
			resp[at[k]] = strings.ToValidUTF8(string(b), "\uFFFD")
		}
		for i, it := range items {
			out := map[string]any{"line": it.line}
			if it.err != "" {
				out["error"] = it.err
			} else {
				out["response"] = resp[i]
			}
			if err := enc.Encode(out); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var items []item
	for n := 1; sc.Scan(); n++ {
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		it := item{line: n}
		var row jsonlRow
		switch err := json.Unmarshal(raw, &row); {
		case err != nil:
			it.err = fmt.Sprintf("%s:%d: not a JSON object with \"prompt\" or \"messages\": %v", name, n, err)
		case row.Prompt != nil && len(row.Messages) == 0:
			if bos, ok := tok.SpecialID(tok.Config().BOS); ok {
				it.ids = append(it.ids, bos)
			}
			it.ids = tok.AppendEncode(it.ids, []byte(*row.Prompt), false)
		case row.Prompt == nil && len(row.Messages) > 0:
			c, err := tok.RenderChat(row.Messages, tokenizer.ChatOptions{AddGenerationPrompt: true})
			if err != nil {
				it.err = fmt.Sprintf("%s:%d: %v", name, n, err)
			} else {
				it.ids = c.IDs
			}
		default:
			it.err = fmt.Sprintf("%s:%d: give either \"prompt\" or \"messages\"", name, n)
		}
		if it.err == "" && len(it.ids) >= ctxLen {
			it.err = fmt.Sprintf("%s:%d: %d tokens; the model's context is %d", name, n, len(it.ids), ctxLen)
		}
		items = append(items, it)
		if len(items) == batch {
			if err := flush(items); err != nil {
				return err
			}
			items = items[:0]
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if len(items) > 0 {
		return flush(items)
	}
	return nil
}
