// Package tokenizer is herd's byte-level BPE tokenizer: it encodes exactly
// like Llama 3's tokenizer (tiktoken / Hugging Face tokenizers), trains new
// vocabularies with Llama 3's pre-tokenization and special-token layout,
// renders the Llama 3.1 chat format with loss masks, and reads and writes
// Hugging Face tokenizer.json / tokenizer_config.json and tiktoken ranks
// files.
//
// Text is split into pre-tokens by a hand-written scanner equivalent to the
// Llama 3 regular expression (Pattern); each pre-token is looked up whole
// (when the vocabulary ignores merges for in-vocabulary words, as Llama 3's
// does) or merged by BPE: repeatedly the adjacent pair with the lowest merge
// priority, the leftmost on ties. Special tokens are recognised in text only
// when the caller allows them. Any byte string, invalid UTF-8 included,
// round-trips through Encode and Decode.
//
// A Tokenizer is immutable and safe for concurrent use.
//
// Entry points: Load (a Hugging Face tokenizer directory), LoadTiktoken,
// Train; Encode, EncodeSpecial, AppendEncode, EncodeBatch,
// Decode; RenderChat (ids plus SFT/DPO masks); WriteHF. The command
// cmd/tokenizer wraps them.
//
// Known limits: character classes come from Go's unicode tables (Unicode
// 15.0), so letters and digits first assigned in later Unicode versions
// pre-tokenize as punctuation; only the Llama 3 pre-tokenizer and the
// Llama 3.1 chat template are implemented (others are refused with an
// error).
package tokenizer

import (
	"bytes"
	"fmt"
	"sort"
	"sync"
)

// Merge is one BPE merge rule: the tokens Left and Right, adjacent in a
// pre-token, become the token whose bytes are their concatenation.
type Merge struct {
	Left, Right int32
}

// Config holds the tokenizer settings that live outside the vocabulary:
// the Hugging Face tokenizer_config.json fields herd uses.
type Config struct {
	BOS            string // beginning-of-sequence special token, e.g. "<|begin_of_text|>"
	EOS            string // end-of-sequence special token, e.g. "<|eot_id|>" for chat models
	AddBOS         bool   // tokenizer.json's post-processor prepends BOS (HF add_special_tokens=True)
	ModelMaxLength int    // tokenizer_config.json model_max_length; 0 = unset
	ChatTemplate   string // the Jinja chat template carried in tokenizer_config.json; "" = none
	CleanUpSpaces  bool   // tokenizer_config.json clean_up_tokenization_spaces (affects HF decode only)
}

// Tokenizer encodes text to token ids and back.
type Tokenizer struct {
	tokens       [][]byte   // id → bytes (special tokens: their text)
	special      []bool     // id → is a special token
	numBPE       int        // BPE vocabulary size: ids [0, numBPE)
	vocab        *tokTable  // BPE token bytes → id
	byteID       [256]int32 // single byte → id
	pairs        *pairTable // merges by pair
	merges       []Merge    // merges in priority order (as loaded or trained)
	mergePrio    []uint32   // priority of merges[i]; equal priorities allowed (tiktoken ranks)
	ignoreMerges bool       // a pre-token that is a whole BPE token is not merged
	specials     specialMatcher
	cfg          Config
	pool         sync.Pool // *scratch
}

// spec is the raw material a Tokenizer is built from.
type spec struct {
	tokens       [][]byte // BPE tokens, id order, ids 0..len-1
	merges       []Merge
	mergePrio    []uint32 // nil: priority = index in merges
	specials     []specialToken
	ignoreMerges bool
	cfg          Config
}

type specialToken struct {
	id      int32
	content string
}

// build validates s and builds the Tokenizer. Errors name the offending
// token, id or merge.
func build(s spec) (*Tokenizer, error) {
	n := len(s.tokens)
	if n < 256 {
		return nil, fmt.Errorf("vocabulary has %d tokens; a byte-level BPE vocabulary needs at least the 256 single bytes", n)
	}
	if n >= 1<<31-1 {
		return nil, fmt.Errorf("vocabulary of %d tokens is too large", n)
	}
	t := &Tokenizer{numBPE: n, ignoreMerges: s.ignoreMerges, cfg: s.cfg}
	vocab := emptyTokTable(n)
	for i := range t.byteID {
		t.byteID[i] = -1
	}
	for id, tok := range s.tokens {
		if len(tok) == 0 {
			return nil, fmt.Errorf("token %d is empty", id)
		}
		if prev, dup := vocab.get(tok); dup {
			return nil, fmt.Errorf("duplicate token %q: ids %d and %d", tok, prev, id)
		}
		vocab.insert(tok, int32(id))
		if len(tok) == 1 {
			t.byteID[tok[0]] = int32(id)
		}
	}
	for b, id := range t.byteID {
		if id < 0 {
			return nil, fmt.Errorf("vocabulary lacks the single byte 0x%02x; byte-level BPE needs all 256 bytes as tokens", b)
		}
	}
	t.tokens = make([][]byte, n, n+len(s.specials))
	copy(t.tokens, s.tokens)
	t.vocab = vocab
	t.special = make([]bool, n, n+len(s.specials))

	t.pairs = newPairTable(len(s.merges))
	t.merges = s.merges
	t.mergePrio = make([]uint32, len(s.merges))
	var cat []byte
	for i, m := range s.merges {
		if m.Left < 0 || int(m.Left) >= n || m.Right < 0 || int(m.Right) >= n {
			return nil, fmt.Errorf("merge %d (%d, %d) refers to an id outside the vocabulary of %d tokens", i, m.Left, m.Right, n)
		}
		cat = append(append(cat[:0], s.tokens[m.Left]...), s.tokens[m.Right]...)
		res, ok := vocab.get(cat)
		if !ok {
			return nil, fmt.Errorf("merge %d (%q, %q) gives %q, which is not in the vocabulary", i, s.tokens[m.Left], s.tokens[m.Right], cat)
		}
		prio := uint32(i)
		if s.mergePrio != nil {
			prio = s.mergePrio[i]
		}
		t.mergePrio[i] = prio
		if !t.pairs.put(m.Left, m.Right, uint64(prio)<<32|uint64(uint32(res))) {
			return nil, fmt.Errorf("duplicate merge %d (%q, %q)", i, s.tokens[m.Left], s.tokens[m.Right])
		}
	}

	sp := append([]specialToken(nil), s.specials...)
	sort.Slice(sp, func(i, j int) bool { return sp[i].id < sp[j].id })
	names := make(map[string]int32, len(sp))
	for _, st := range sp {
		if st.content == "" {
			return nil, fmt.Errorf("special token %d has empty content", st.id)
		}
		if prev, dup := names[st.content]; dup {
			return nil, fmt.Errorf("duplicate special token %q: ids %d and %d", st.content, prev, st.id)
		}
		names[st.content] = st.id
		switch {
		case st.id >= 0 && int(st.id) < n:
			// A special token that is also a vocabulary entry.
			if string(t.tokens[st.id]) != st.content {
				return nil, fmt.Errorf("special token %q has id %d, which the vocabulary gives to %q", st.content, st.id, t.tokens[st.id])
			}
			t.special[st.id] = true
		case int(st.id) == len(t.tokens):
			if prev, clash := vocab.get([]byte(st.content)); clash {
				return nil, fmt.Errorf("special token %q (id %d) duplicates vocabulary token %d", st.content, st.id, prev)
			}
			t.tokens = append(t.tokens, []byte(st.content))
			t.special = append(t.special, true)
		default:
			return nil, fmt.Errorf("special token %q has id %d; ids must continue the vocabulary without holes (next free id is %d)", st.content, st.id, len(t.tokens))
		}
	}
	t.specials = newSpecialMatcher(names)
	for _, name := range []string{t.cfg.BOS, t.cfg.EOS} {
		if name != "" {
			if _, ok := names[name]; !ok {
				return nil, fmt.Errorf("configured BOS/EOS token %q is not a special token of the vocabulary", name)
			}
		}
	}
	t.pool.New = func() any { return newScratch() }
	return t, nil
}

// VocabSize is the number of ids, BPE tokens and special tokens together
// (128256 for Llama 3).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// NumBPE is the number of BPE tokens (ids 0..NumBPE-1; 128000 for Llama 3).
func (t *Tokenizer) NumBPE() int { return t.numBPE }

// Config returns the tokenizer's settings.
func (t *Tokenizer) Config() Config { return t.cfg }

// Token returns the bytes of id (the text of a special token), or nil when
// id is out of range. The slice must not be modified.
func (t *Tokenizer) Token(id int32) []byte {
	if id < 0 || int(id) >= len(t.tokens) {
		return nil
	}
	return t.tokens[id]
}

// HFToken returns id as tokenizer.json (and GGUF's tokenizer.ggml.tokens)
// write it: a BPE token in the byte-level alphabet (" the" is "Ġthe"), a
// special token as its text; "" when id is out of range.
func (t *Tokenizer) HFToken(id int32) string {
	switch {
	case id < 0 || int(id) >= len(t.tokens):
		return ""
	case t.special[id]:
		return string(t.tokens[id])
	}
	return byteLevelEncode(t.tokens[id])
}

// IsSpecial reports whether id is a special token.
func (t *Tokenizer) IsSpecial(id int32) bool {
	return id >= 0 && int(id) < len(t.special) && t.special[id]
}

// SpecialID returns the id of the special token with the given text.
func (t *Tokenizer) SpecialID(name string) (int32, bool) {
	id, ok := t.specials.ids[name]
	return id, ok
}

// Specials returns the special tokens' texts in id order.
func (t *Tokenizer) Specials() []string {
	var out []string
	for id, sp := range t.special {
		if sp {
			out = append(out, string(t.tokens[id]))
		}
	}
	return out
}

// Merges returns the merge rules in priority order. The slice must not be
// modified.
func (t *Tokenizer) Merges() []Merge { return t.merges }

// Encode returns the ids of text. Special-token texts in it are encoded as
// ordinary text, never as special tokens.
func (t *Tokenizer) Encode(text []byte) []int32 {
	return t.AppendEncode(nil, text, false)
}

// EncodeSpecial returns the ids of text, with every special token's text
// encoded as that special token.
func (t *Tokenizer) EncodeSpecial(text []byte) []int32 {
	return t.AppendEncode(nil, text, true)
}

// PrefixBOS returns the BOS id tokenizer.json's post-processor prepends
// to every encoded text (Config.AddBOS with a special BOS token), as
// Hugging Face's encode(text) does with its default
// add_special_tokens=True; ok is false when the tokenizer adds none.
func (t *Tokenizer) PrefixBOS() (id int32, ok bool) {
	if !t.cfg.AddBOS || t.cfg.BOS == "" {
		return 0, false
	}
	return t.SpecialID(t.cfg.BOS)
}

// AppendEncode appends the ids of text to dst and returns it. With
// allowSpecial, special-token texts become their ids (leftmost, longest
// first); otherwise they are encoded as ordinary text.
func (t *Tokenizer) AppendEncode(dst []int32, text []byte, allowSpecial bool) []int32 {
	sc := t.pool.Get().(*scratch)
	defer t.pool.Put(sc)
	if allowSpecial {
		for {
			pos, end, id := t.specials.find(text)
			if pos < 0 {
				break
			}
			dst = t.encodeOrdinary(dst, text[:pos], sc)
			dst = append(dst, id)
			text = text[end:]
		}
	}
	return t.encodeOrdinary(dst, text, sc)
}

// encodeOrdinary encodes text without special tokens.
func (t *Tokenizer) encodeOrdinary(dst []int32, text []byte, sc *scratch) []int32 {
	for i := 0; i < len(text); {
		j := nextPiece(text, i)
		dst = t.encodePiece(dst, text[i:j], sc)
		i = j
	}
	return dst
}

// Decode returns the bytes of ids: the concatenation of their tokens.
func (t *Tokenizer) Decode(ids []int32) ([]byte, error) {
	return t.AppendDecode(nil, ids)
}

// AppendDecode appends the bytes of ids to dst.
func (t *Tokenizer) AppendDecode(dst []byte, ids []int32) ([]byte, error) {
	for i, id := range ids {
		if id < 0 || int(id) >= len(t.tokens) {
			return dst, fmt.Errorf("decode: id %d at position %d is outside the vocabulary (0..%d)", id, i, len(t.tokens)-1)
		}
		dst = append(dst, t.tokens[id]...)
	}
	return dst, nil
}

// specialMatcher finds special-token texts in a byte string.
type specialMatcher struct {
	ids   map[string]int32
	first [256]bool
	lens  []int // distinct lengths, longest first
	only  int   // the single first byte of all specials, or -1
}

func newSpecialMatcher(ids map[string]int32) specialMatcher {
	m := specialMatcher{ids: ids, only: -1}
	seen := map[int]bool{}
	firsts := 0
	for s := range ids {
		if !m.first[s[0]] {
			firsts++
			m.first[s[0]] = true
			m.only = int(s[0])
		}
		if !seen[len(s)] {
			seen[len(s)] = true
			m.lens = append(m.lens, len(s))
		}
	}
	if firsts != 1 {
		m.only = -1
	}
	sort.Sort(sort.Reverse(sort.IntSlice(m.lens)))
	return m
}

// find returns the first special token in s: its start, end and id, or
// pos = -1.
func (m *specialMatcher) find(s []byte) (pos, end int, id int32) {
	if len(m.ids) == 0 {
		return -1, 0, 0
	}
	for i := 0; i < len(s); i++ {
		if m.only >= 0 {
			k := bytes.IndexByte(s[i:], byte(m.only))
			if k < 0 {
				return -1, 0, 0
			}
			i += k
		} else if !m.first[s[i]] {
			continue
		}
		for _, l := range m.lens {
			if i+l <= len(s) {
				if id, ok := m.ids[string(s[i:i+l])]; ok {
					return i, i + l, id
				}
			}
		}
	}
	return -1, 0, 0
}
