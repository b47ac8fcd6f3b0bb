package main

import (
	"bufio"
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
// sampling defaults and EOS ids (none when the file is absent).
func generationDefaults(dir string) (*checkpoint.GenerationConfig, error) {
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

// runText generates text from a prompt (or a chat) with the model
// directory's tokenizer, streaming it to stdout as it is produced. With
// -chat and no -prompt it reads one user message per line of stdin and
// keeps the conversation.
func runText(ctx context.Context, dir string, m *model.Model, o textOptions, stdin io.Reader, stdout io.Writer) error {
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return fmt.Errorf("text generation needs the model directory's tokenizer: %w", err)
	}
	gen, err := generationDefaults(dir)
	if err != nil {
		return err
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
