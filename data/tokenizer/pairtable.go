package tokenizer

import "math/bits"

// noMerge is the pair-table value of a pair that has no merge.
const noMerge = ^uint64(0)

// pairTable maps a pair of token ids to its merge: priority in the high 32
// bits (lower merges first) and the merged token's id in the low 32 bits.
// It is an open-addressing hash table with linear probing, faster than a Go
// map on the encoder's hot path. It is read-only after construction.
type pairTable struct {
	keys  []uint64
	vals  []uint64
	shift uint
}

const emptyKey = ^uint64(0)

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func newPairTable(n int) *pairTable {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	t := &pairTable{keys: make([]uint64, size), vals: make([]uint64, size), shift: uint(64 - bits.TrailingZeros(uint(size)))}
	for i := range t.keys {
		t.keys[i] = emptyKey
	}
	return t
}

func (t *pairTable) slot(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> t.shift }

// put stores v for the pair and reports whether the pair was new.
func (t *pairTable) put(a, b int32, v uint64) bool {
	k := pairKey(a, b)
	mask := uint64(len(t.keys) - 1)
	for i := t.slot(k); ; i = (i + 1) & mask {
		switch t.keys[i] {
		case emptyKey:
			t.keys[i], t.vals[i] = k, v
			return true
		case k:
			t.vals[i] = v
			return false
		}
	}
}

// get returns the merge of the pair, or noMerge.
func (t *pairTable) get(a, b int32) uint64 {
	k := pairKey(a, b)
	mask := uint64(len(t.keys) - 1)
	for i := t.slot(k); ; i = (i + 1) & mask {
		switch t.keys[i] {
		case k:
			return t.vals[i]
		case emptyKey:
			return noMerge
		}
	}
}
