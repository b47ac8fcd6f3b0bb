package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/herdml/herd/internal/jsonpos"
)

// File names inside a tokenizer directory.
const (
	TokenizerFile = "tokenizer.json"
	ConfigFile    = "tokenizer_config.json"
)

// Load reads a Hugging Face tokenizer directory: tokenizer.json and, when
// present, tokenizer_config.json (BOS/EOS names, chat template, maximum
// length).
func Load(dir string) (*Tokenizer, error) {
	tj := filepath.Join(dir, TokenizerFile)
	data, err := os.ReadFile(tj)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	var cfgData []byte
	cj := filepath.Join(dir, ConfigFile)
	if c, err := os.ReadFile(cj); err == nil {
		cfgData = c
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := ParseHF(data, cfgData)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", dir, err)
	}
	return t, nil
}

// hfFile is the part of tokenizer.json that herd reads.
type hfFile struct {
	AddedTokens   []hfAddedToken  `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         *hfModel        `json:"model"`
}

type hfAddedToken struct {
	ID         *int64 `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type hfModel struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

// ParseHF builds a Tokenizer from the contents of tokenizer.json and
// tokenizer_config.json (config may be nil). It accepts byte-level BPE
// tokenizers with the Llama 3 pre-tokenizer: no normalizer, a Split
// pre-tokenizer with Pattern (behaviour Isolated) followed by ByteLevel
// without its own regex, a ByteLevel decoder, and optionally a
// TemplateProcessing post-processor that prepends BOS. Anything else is an
// error that names the unsupported part.
func ParseHF(tokenizerJSON, configJSON []byte) (*Tokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(tokenizerJSON, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", TokenizerFile, jsonpos.Wrap(tokenizerJSON, err))
	}
	if f.Model == nil {
		return nil, fmt.Errorf("%s: no \"model\" object", TokenizerFile)
	}
	m := f.Model
	switch {
	case m.Type != "BPE":
		return nil, fmt.Errorf("%s: model type %q is not supported (herd reads byte-level \"BPE\" models)", TokenizerFile, m.Type)
	case m.Dropout != nil && *m.Dropout != 0:
		return nil, fmt.Errorf("%s: BPE dropout %g is not supported; set it to null", TokenizerFile, *m.Dropout)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "",
		m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, fmt.Errorf("%s: continuing_subword_prefix / end_of_word_suffix are not supported by byte-level BPE; set them to null", TokenizerFile)
	case m.ByteFallback:
		return nil, fmt.Errorf("%s: byte_fallback is not supported (byte-level BPE has every byte in its vocabulary); set it to false", TokenizerFile)
	}
	if !isNull(f.Normalizer) {
		return nil, fmt.Errorf("%s: normalizer %s is not supported; herd's byte-level BPE needs \"normalizer\": null", TokenizerFile, clip(f.Normalizer))
	}
	if err := checkPreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("%s: %w", TokenizerFile, err)
	}
	if err := checkDecoder(f.Decoder); err != nil {
		return nil, fmt.Errorf("%s: %w", TokenizerFile, err)
	}
	var s spec
	s.ignoreMerges = m.IgnoreMerges
	bos, err := parsePostProcessor(f.PostProcessor)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", TokenizerFile, err)
	}
	s.cfg.BOS, s.cfg.AddBOS = bos, bos != ""

	vocab, err := parseVocab(m.Vocab)
	if err != nil {
		return nil, fmt.Errorf("%s: model.vocab: %w", TokenizerFile, err)
	}
	s.tokens = vocab
	s.merges, err = parseMerges(m.Merges, newTokTable(vocab))
	if err != nil {
		return nil, fmt.Errorf("%s: model.merges: %w", TokenizerFile, err)
	}
	for i, at := range f.AddedTokens {
		if at.ID == nil {
			return nil, fmt.Errorf("%s: added_tokens[%d] %q has no id", TokenizerFile, i, at.Content)
		}
		if at.SingleWord || at.LStrip || at.RStrip {
			return nil, fmt.Errorf("%s: added token %q sets single_word/lstrip/rstrip, which herd does not support; set them to false", TokenizerFile, at.Content)
		}
		if *at.ID < 0 || *at.ID >= 1<<31-1 {
			return nil, fmt.Errorf("%s: added token %q has id %d out of range", TokenizerFile, at.Content, *at.ID)
		}
		id := int32(*at.ID)
		if int(id) < len(vocab) {
			// An added token over a vocabulary entry keeps the entry's bytes.
			if byteLevelEncode(vocab[id]) != at.Content && string(vocab[id]) != at.Content {
				return nil, fmt.Errorf("%s: added token %q has id %d, which model.vocab gives to %q", TokenizerFile, at.Content, id, byteLevelEncode(vocab[id]))
			}
			s.specials = append(s.specials, specialToken{id: id, content: string(vocab[id])})
			continue
		}
		s.specials = append(s.specials, specialToken{id: id, content: at.Content})
	}
	if configJSON != nil {
		if err := parseConfig(configJSON, &s); err != nil {
			return nil, fmt.Errorf("%s: %w", ConfigFile, err)
		}
	}
	return build(s)
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(r json.RawMessage) bool {
	r = bytes.TrimSpace(r)
	return len(r) == 0 || string(r) == "null"
}

// clip shortens a raw JSON value for an error message.
func clip(r json.RawMessage) string {
	s := string(bytes.TrimSpace(r))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

type hfPart struct {
	Type           string            `json:"type"`
	Pattern        map[string]string `json:"pattern"`
	Behavior       string            `json:"behavior"`
	Invert         bool              `json:"invert"`
	AddPrefixSpace bool              `json:"add_prefix_space"`
	UseRegex       *bool             `json:"use_regex"`
	PreTokenizers  []json.RawMessage `json:"pretokenizers"`
	Processors     []json.RawMessage `json:"processors"`
	Single         []json.RawMessage `json:"single"`
}

const wantPreTok = `a Sequence of Split (Llama 3 pattern, behavior "Isolated") and ByteLevel (add_prefix_space false, use_regex false)`

// checkPreTokenizer accepts the Llama 3 pre-tokenizer only.
func checkPreTokenizer(raw json.RawMessage) error {
	if isNull(raw) {
		return fmt.Errorf("no pre_tokenizer; herd needs %s", wantPreTok)
	}
	var seq hfPart
	if err := json.Unmarshal(raw, &seq); err != nil {
		return fmt.Errorf("pre_tokenizer: %w", err)
	}
	if seq.Type != "Sequence" || len(seq.PreTokenizers) != 2 {
		return fmt.Errorf("pre_tokenizer %s is not supported; herd needs %s", clip(raw), wantPreTok)
	}
	var split, bl hfPart
	if err := json.Unmarshal(seq.PreTokenizers[0], &split); err != nil {
		return fmt.Errorf("pre_tokenizer: %w", err)
	}
	if err := json.Unmarshal(seq.PreTokenizers[1], &bl); err != nil {
		return fmt.Errorf("pre_tokenizer: %w", err)
	}
	if split.Type != "Split" || bl.Type != "ByteLevel" {
		return fmt.Errorf("pre_tokenizer %s is not supported; herd needs %s", clip(raw), wantPreTok)
	}
	re, ok := split.Pattern["Regex"]
	if !ok {
		return fmt.Errorf("pre_tokenizer Split has pattern %v; herd needs {\"Regex\": %q}", split.Pattern, Pattern)
	}
	if re != Pattern {
		return fmt.Errorf("unknown pre-tokenization pattern %q: herd implements only the Llama 3 pattern %q", re, Pattern)
	}
	if split.Behavior != "Isolated" || split.Invert {
		return fmt.Errorf("pre_tokenizer Split has behavior %q, invert %v; herd needs \"Isolated\", false", split.Behavior, split.Invert)
	}
	if bl.AddPrefixSpace || bl.UseRegex == nil || *bl.UseRegex {
		return fmt.Errorf("pre_tokenizer ByteLevel must have add_prefix_space false and use_regex false (got %s)", clip(seq.PreTokenizers[1]))
	}
	return nil
}

func checkDecoder(raw json.RawMessage) error {
	var d hfPart
	if isNull(raw) {
		return fmt.Errorf("no decoder; herd needs {\"type\": \"ByteLevel\"}")
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	if d.Type != "ByteLevel" {
		return fmt.Errorf("decoder %s is not supported; herd needs {\"type\": \"ByteLevel\"}", clip(raw))
	}
	return nil
}

// parsePostProcessor returns the BOS token the post-processor prepends, ""
// for none. It accepts null, ByteLevel, TemplateProcessing whose single
// template is [$A] or [BOS, $A], and a Sequence of those.
func parsePostProcessor(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var p hfPart
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", fmt.Errorf("post_processor: %w", err)
	}
	switch p.Type {
	case "ByteLevel":
		return "", nil
	case "Sequence":
		bos := ""
		for _, sub := range p.Processors {
			b, err := parsePostProcessor(sub)
			if err != nil {
				return "", err
			}
			if b != "" {
				bos = b
			}
		}
		return bos, nil
	case "TemplateProcessing":
		type piece struct {
			SpecialToken *struct{ ID string } `json:"SpecialToken"`
			Sequence     *struct{ ID string } `json:"Sequence"`
		}
		var ps []piece
		for _, r := range p.Single {
			var x piece
			if err := json.Unmarshal(r, &x); err != nil {
				return "", fmt.Errorf("post_processor: %w", err)
			}
			ps = append(ps, x)
		}
		switch {
		case len(ps) == 1 && ps[0].Sequence != nil:
			return "", nil
		case len(ps) == 2 && ps[0].SpecialToken != nil && ps[1].Sequence != nil:
			return ps[0].SpecialToken.ID, nil
		}
		return "", fmt.Errorf("post_processor TemplateProcessing %s is not supported; herd supports [$A] or [BOS, $A]", clip(raw))
	}
	return "", fmt.Errorf("post_processor type %q is not supported; herd supports ByteLevel, TemplateProcessing and Sequence", p.Type)
}

// parseVocab reads the model.vocab object (byte-level token → id) and
// returns the tokens' bytes in id order. Duplicate tokens, duplicate ids and
// holes in the ids are errors.
func parseVocab(raw json.RawMessage) ([][]byte, error) {
	if isNull(raw) {
		return nil, errors.New("missing")
	}
	if tokens, ok := scanVocab(raw); ok {
		return tokens, nil
	}
	return parseVocabSlow(raw)
}

// scanVocab is a fast path for a well-formed vocabulary object of plain
// "token": id entries with dense, unique ids and unique tokens. It reports
// false for anything else, which parseVocabSlow then reads (or explains).
func scanVocab(raw []byte) ([][]byte, bool) {
	i := 0
	ws := func() {
		for i < len(raw) && (raw[i] == ' ' || raw[i] == '\n' || raw[i] == '\t' || raw[i] == '\r') {
			i++
		}
	}
	ws()
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	i++
	var tokens [][]byte
	for {
		ws()
		if i < len(raw) && raw[i] == '}' && len(tokens) == 0 {
			break
		}
		if i >= len(raw) || raw[i] != '"' {
			return nil, false
		}
		start := i
		i++
		escaped := false
		for i < len(raw) && raw[i] != '"' {
			if raw[i] == '\\' {
				escaped = true
				i++
			}
			i++
		}
		if i >= len(raw) {
			return nil, false
		}
		i++
		var key string
		if escaped {
			if err := json.Unmarshal(raw[start:i], &key); err != nil {
				return nil, false
			}
		} else {
			key = string(raw[start+1 : i-1])
		}
		ws()
		if i >= len(raw) || raw[i] != ':' {
			return nil, false
		}
		i++
		ws()
		id := 0
		digits := 0
		for i < len(raw) && raw[i] >= '0' && raw[i] <= '9' && digits < 10 {
			id = id*10 + int(raw[i]-'0')
			i++
			digits++
		}
		if digits == 0 || id >= len(raw) {
			return nil, false
		}
		for len(tokens) <= id {
			tokens = append(tokens, nil)
		}
		if tokens[id] != nil {
			return nil, false
		}
		b, err := byteLevelDecode(key)
		if err != nil || len(b) == 0 {
			return nil, false
		}
		tokens[id] = b
		ws()
		if i < len(raw) && raw[i] == ',' {
			i++
			continue
		}
		if i < len(raw) && raw[i] == '}' {
			break
		}
		return nil, false
	}
	i++
	ws()
	if i != len(raw) {
		return nil, false
	}
	seen := emptyTokTable(len(tokens))
	for id, t := range tokens {
		if t == nil {
			return nil, false
		}
		if _, dup := seen.get(t); dup {
			return nil, false
		}
		seen.insert(t, int32(id))
	}
	return tokens, true
}

func parseVocabSlow(raw json.RawMessage) ([][]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("want an object of token → id, got %v", tok)
	}
	var tokens [][]byte
	seen := map[string]int64{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := kt.(string)
		vt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		num, ok := vt.(json.Number)
		if !ok {
			return nil, fmt.Errorf("token %q: id %v is not a number", key, vt)
		}
		id, err := strconv.ParseInt(string(num), 10, 32)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("token %q: id %s is not a valid id", key, num)
		}
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("duplicate token %q (ids %d and %d)", key, prev, id)
		}
		seen[key] = id
		if id > int64(len(raw)) { // every entry takes at least one byte
			return nil, fmt.Errorf("token %q: id %d leaves holes in a vocabulary of at most %d entries", key, id, len(seen))
		}
		for int64(len(tokens)) <= id {
			tokens = append(tokens, nil)
		}
		if tokens[id] != nil {
			return nil, fmt.Errorf("tokens %q and %q share id %d", byteLevelEncode(tokens[id]), key, id)
		}
		b, err := byteLevelDecode(key)
		if err != nil {
			return nil, err
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("empty token with id %d", id)
		}
		tokens[id] = b
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	for id, t := range tokens {
		if t == nil {
			return nil, fmt.Errorf("no token has id %d: the ids have a hole (%d ids up to %d)", id, len(seen), len(tokens)-1)
		}
	}
	return tokens, nil
}

// parseMerges reads model.merges in either form tokenizers writes: "a b"
// strings or ["a", "b"] pairs.
func parseMerges(raw json.RawMessage, vocab *tokTable) ([]Merge, error) {
	if isNull(raw) {
		return nil, nil
	}
	var pairs [][2]string
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		pairs = make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("merge %d %q is not two tokens separated by one space", i, s)
			}
			pairs[i] = [2]string{a, b}
		}
	} else if err2 := json.Unmarshal(raw, &pairs); err2 != nil {
		return nil, fmt.Errorf("want a list of \"a b\" strings or [a, b] pairs: %w", err)
	}
	merges := make([]Merge, len(pairs))
	lookup := func(s string) (int32, bool) {
		b, err := byteLevelDecode(s)
		if err != nil {
			return 0, false
		}
		return vocab.get(b)
	}
	for i, p := range pairs {
		l, ok1 := lookup(p[0])
		r, ok2 := lookup(p[1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("merge %d (%q, %q) uses a token that is not in the vocabulary", i, p[0], p[1])
		}
		merges[i] = Merge{l, r}
	}
	return merges, nil
}

// hfConfig is the part of tokenizer_config.json herd reads.
type hfConfig struct {
	AddedTokensDecoder map[string]hfAddedToken `json:"added_tokens_decoder"`
	BOSToken           json.RawMessage         `json:"bos_token"`
	EOSToken           json.RawMessage         `json:"eos_token"`
	ChatTemplate       json.RawMessage         `json:"chat_template"`
	ModelMaxLength     *float64                `json:"model_max_length"`
	CleanUpSpaces      bool                    `json:"clean_up_tokenization_spaces"`
}

func parseConfig(data []byte, s *spec) error {
	var c hfConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return jsonpos.Wrap(data, err)
	}
	byID := map[int32]string{}
	for _, sp := range s.specials {
		byID[sp.id] = sp.content
	}
	for k, at := range c.AddedTokensDecoder {
		id, err := strconv.ParseInt(k, 10, 32)
		if err != nil {
			return fmt.Errorf("added_tokens_decoder key %q is not an id", k)
		}
		if name, ok := byID[int32(id)]; ok && name != at.Content {
			return fmt.Errorf("added_tokens_decoder gives id %d the name %q but %s has %q", id, at.Content, TokenizerFile, name)
		} else if !ok {
			return fmt.Errorf("added_tokens_decoder has id %d (%q), which is not an added token of %s", id, at.Content, TokenizerFile)
		}
	}
	s.cfg.CleanUpSpaces = c.CleanUpSpaces
	var err error
	if s.cfg.BOS, err = tokenName(c.BOSToken, s.cfg.BOS); err != nil {
		return fmt.Errorf("bos_token: %w", err)
	}
	if s.cfg.EOS, err = tokenName(c.EOSToken, ""); err != nil {
		return fmt.Errorf("eos_token: %w", err)
	}
	if c.ModelMaxLength != nil && *c.ModelMaxLength > 0 && *c.ModelMaxLength < 1<<53 {
		s.cfg.ModelMaxLength = int(*c.ModelMaxLength)
	}
	if !isNull(c.ChatTemplate) {
		var tmpl string
		if err := json.Unmarshal(c.ChatTemplate, &tmpl); err != nil {
			var named []struct{ Name, Template string }
			if err2 := json.Unmarshal(c.ChatTemplate, &named); err2 != nil {
				return fmt.Errorf("chat_template is neither a string nor a list of {name, template}: %w", err)
			}
			for _, n := range named {
				if n.Name == "default" {
					tmpl = n.Template
				}
			}
			if tmpl == "" {
				return errors.New("chat_template list has no \"default\" template")
			}
		}
		s.cfg.ChatTemplate = tmpl
	}
	return nil
}

// tokenName reads a bos_token/eos_token value: a string, an AddedToken
// object with "content", or null (keeping def).
func tokenName(raw json.RawMessage, def string) (string, error) {
	if isNull(raw) {
		return def, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var at hfAddedToken
	if err := json.Unmarshal(raw, &at); err != nil {
		return "", fmt.Errorf("want a string or {\"content\": …}: %w", err)
	}
	return at.Content, nil
}
