package tokenizer

// pieces appends to dst the pre-tokens of s, as subslices of s, and returns
// it. The pieces concatenate to s.
func pieces(dst [][]byte, s []byte) [][]byte {
	for i := 0; i < len(s); {
		j := nextPiece(s, i)
		dst = append(dst, s[i:j:j])
		i = j
	}
	return dst
}

// withConfig returns a copy of t with a modified Config (sharing the
// vocabulary tables).
func (t *Tokenizer) withConfig(f func(*Config)) *Tokenizer {
	c := &Tokenizer{
		tokens: t.tokens, special: t.special, numBPE: t.numBPE, vocab: t.vocab, byteID: t.byteID,
		pairs: t.pairs, merges: t.merges, mergePrio: t.mergePrio, ignoreMerges: t.ignoreMerges,
		specials: t.specials, cfg: t.cfg,
	}
	f(&c.cfg)
	c.pool.New = func() any { return newScratch() }
	return c
}
