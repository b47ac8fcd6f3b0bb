package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strconv"
)

// LoadTiktoken reads a tiktoken ranks file (Meta's tokenizer.model for
// Llama 3): one "<base64 token> <rank>" line per token, ranks 0..N-1 without
// holes. The special tokens follow at ids N, N+1, …; pass LlamaSpecials()
// for Llama 3.1's. cfg supplies BOS/EOS and the rest.
//
// tiktoken merges any adjacent pair whose concatenation is a token, lowest
// rank of the result first, and keeps a pre-token that is a whole token; the
// Tokenizer gets one merge per split of each token into two tokens, with
// the token's rank as its priority, which encodes identically.
func LoadTiktoken(path string, specials []string, cfg Config) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load tiktoken ranks: %w", err)
	}
	defer f.Close()
	t, err := parseTiktoken(f, specials, cfg)
	if err != nil {
		return nil, fmt.Errorf("load tiktoken ranks %s: %w", path, err)
	}
	return t, nil
}

// parseTiktoken is LoadTiktoken on a reader.
func parseTiktoken(r io.Reader, specials []string, cfg Config) (*Tokenizer, error) {
	var tokens [][]byte
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := bytes.TrimSpace(sc.Bytes())
		if len(l) == 0 {
			continue
		}
		tok64, rankText, ok := bytes.Cut(l, []byte(" "))
		if !ok {
			return nil, fmt.Errorf("line %d: want \"<base64 token> <rank>\", got %q", line, clipBytes(l))
		}
		tok, err := base64.StdEncoding.DecodeString(string(tok64))
		if err != nil {
			return nil, fmt.Errorf("line %d: token %q is not base64: %w", line, clipBytes(tok64), err)
		}
		if len(tok) == 0 {
			return nil, fmt.Errorf("line %d: empty token", line)
		}
		rank, err := strconv.ParseInt(string(rankText), 10, 32)
		if err != nil || rank < 0 {
			return nil, fmt.Errorf("line %d: rank %q is not a non-negative integer", line, clipBytes(rankText))
		}
		if rank > int64(line) {
			// Ranks are dense, so rank r needs at least r+1 lines.
			return nil, fmt.Errorf("line %d: rank %d leaves holes (ranks must be 0..N-1, one per line)", line, rank)
		}
		for int64(len(tokens)) <= rank {
			tokens = append(tokens, nil)
		}
		if tokens[rank] != nil {
			return nil, fmt.Errorf("line %d: rank %d is given twice", line, rank)
		}
		tokens[rank] = tok
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	for rank, tok := range tokens {
		if tok == nil {
			return nil, fmt.Errorf("no token has rank %d: the ranks have a hole", rank)
		}
	}
	s := spec{tokens: tokens, ignoreMerges: true, cfg: cfg}
	byBytes := make(map[string]int32, len(tokens))
	for id, tok := range tokens {
		if prev, dup := byBytes[string(tok)]; dup {
			return nil, fmt.Errorf("token %q has ranks %d and %d", tok, prev, id)
		}
		byBytes[string(tok)] = int32(id)
	}
	for id, tok := range tokens {
		for k := 1; k < len(tok); k++ {
			l, ok1 := byBytes[string(tok[:k])]
			r, ok2 := byBytes[string(tok[k:])]
			if ok1 && ok2 {
				s.merges = append(s.merges, Merge{l, r})
				s.mergePrio = append(s.mergePrio, uint32(id))
			}
		}
	}
	for i, name := range specials {
		s.specials = append(s.specials, specialToken{id: int32(len(tokens) + i), content: name})
	}
	return build(s)
}

func clipBytes(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}
