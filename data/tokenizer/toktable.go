package tokenizer

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// tokTable maps token bytes to ids. It replaces a Go map on the encoder's
// hot path: a lookup touches one 24-byte entry (tokens of up to 16 bytes are
// stored inline, so no second memory access is needed to compare keys),
// where a map[string]int32 dereferences the key's string data as well. It
// is read-only after construction.
type tokTable struct {
	ents  []tokEnt
	arena []byte // bytes of tokens longer than 16 bytes
	shift uint
}

type tokEnt struct {
	w0, w1 uint64 // ≤16 bytes: the token's bytes, zero padded; longer: hash and arena offset
	n      uint32 // token length; 0 marks an empty slot
	id     int32
}

// words loads up to the first 16 bytes of p into two little-endian words,
// zero padded.
func words(p []byte) (w0, w1 uint64) {
	n := len(p)
	switch {
	case n >= 16:
		return binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:])
	case n >= 8:
		return binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[n-8:]) >> (8 * (16 - n))
	case n >= 4:
		lo := uint64(binary.LittleEndian.Uint32(p))
		hi := uint64(binary.LittleEndian.Uint32(p[n-4:])) >> (8 * (8 - n))
		return lo | hi<<32, 0
	}
	for i := n - 1; i >= 0; i-- {
		w0 = w0<<8 | uint64(p[i])
	}
	return w0, 0
}

func mix(h uint64) uint64 {
	h ^= h >> 31
	h *= 0xBF58476D1CE4E5B9
	h ^= h >> 29
	return h
}

// tokHash hashes p; w0, w1 are words(p).
func tokHash(p []byte, w0, w1 uint64) uint64 {
	h := w0*0x9E3779B97F4A7C15 ^ bits.RotateLeft64(w1*0xC2B2AE3D27D4EB4F, 31) ^ uint64(len(p))
	for i := 16; i < len(p); i += 8 {
		var w uint64
		if i+8 <= len(p) {
			w = binary.LittleEndian.Uint64(p[i:])
		} else {
			w, _ = words(p[i:])
		}
		h = bits.RotateLeft64(h, 27)*0x9E3779B97F4A7C15 ^ w
	}
	return mix(h)
}

// emptyTokTable returns a table with room for n tokens.
func emptyTokTable(n int) *tokTable {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	return &tokTable{ents: make([]tokEnt, size), shift: uint(64 - bits.TrailingZeros(uint(size)))}
}

func newTokTable(tokens [][]byte) *tokTable {
	t := emptyTokTable(len(tokens))
	for id, tok := range tokens {
		t.insert(tok, int32(id))
	}
	return t
}

// insert adds tok (not already present).
func (t *tokTable) insert(tok []byte, id int32) {
	w0, w1 := words(tok)
	h := tokHash(tok, w0, w1)
	e := tokEnt{w0: w0, w1: w1, n: uint32(len(tok)), id: id}
	if len(tok) > 16 {
		e.w0, e.w1 = h, uint64(len(t.arena))
		t.arena = append(t.arena, tok...)
	}
	mask := uint64(len(t.ents) - 1)
	for i := h >> t.shift; ; i = (i + 1) & mask {
		if t.ents[i].n == 0 {
			t.ents[i] = e
			return
		}
	}
}

// get returns the id of p.
func (t *tokTable) get(p []byte) (int32, bool) {
	if len(p) == 0 {
		return 0, false
	}
	w0, w1 := words(p)
	return t.getHashed(p, w0, w1, tokHash(p, w0, w1))
}

// getHashed is get with words(p) and tokHash already computed.
func (t *tokTable) getHashed(p []byte, w0, w1, h uint64) (int32, bool) {
	n := uint32(len(p))
	long := n > 16
	if long {
		w0 = h
	}
	mask := uint64(len(t.ents) - 1)
	for i := h >> t.shift; ; i = (i + 1) & mask {
		e := &t.ents[i]
		if e.n == 0 {
			return 0, false
		}
		if e.n == n && e.w0 == w0 {
			if !long {
				if e.w1 == w1 {
					return e.id, true
				}
			} else if bytes.Equal(t.arena[e.w1:e.w1+uint64(n)], p) {
				return e.id, true
			}
		}
	}
}
