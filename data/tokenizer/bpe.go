package tokenizer

import "slices"

// Pieces longer than linearMax bytes are merged with a heap (O(n log n));
// shorter ones with tiktoken's linear scan, which is faster for them.
const linearMax = 128

// Pieces up to cacheMaxLen bytes that need BPE are cached per scratch, up to
// cacheMaxEntries entries (then the cache starts over).
const (
	cacheMaxLen     = 64
	cacheMaxEntries = 1 << 16
)

// Pieces of up to 16 bytes are remembered in a direct-mapped cache of
// hotSize entries per scratch, which answers frequent words from the
// processor's own cache instead of the vocabulary's multi-megabyte table.
const (
	hotBits = 14
	hotSize = 1 << hotBits
)

type hotEnt struct {
	w0, w1 uint64
	n      uint16 // piece length; 0 = empty
	cnt    uint16 // number of ids; 1: id holds the id, else arena offset
	id     int32
}

// scratch is per-goroutine encoder state, pooled by the Tokenizer.
type scratch struct {
	hot    []hotEnt
	hotIDs []int32 // ids of cached multi-token pieces
	syms   []int32
	pairs  []uint64
	cache  map[string][]int32
	arena  []int32
	heap   mergeHeap
	prev   []int32
	next   []int32
}

func newScratch() any {
	return &scratch{cache: make(map[string][]int32), hot: make([]hotEnt, hotSize)}
}

// encodePiece appends the ids of one pre-token.
func (t *Tokenizer) encodePiece(dst []int32, piece []byte, sc *scratch) []int32 {
	if len(piece) == 1 {
		return append(dst, t.byteID[piece[0]])
	}
	if len(piece) <= 16 {
		return t.encodeShort(dst, piece, sc)
	}
	if t.ignoreMerges {
		if id, ok := t.vocab.get(piece); ok {
			return append(dst, id)
		}
	}
	if len(piece) <= cacheMaxLen {
		if ids, ok := sc.cache[string(piece)]; ok {
			return append(dst, ids...)
		}
	}
	start := len(dst)
	if len(piece) <= linearMax {
		dst = t.mergeLinear(dst, piece, sc)
	} else {
		dst = t.mergeHeap(dst, piece, sc)
	}
	if len(piece) <= cacheMaxLen {
		sc.remember(piece, dst[start:])
	}
	return dst
}

// remember caches the ids of a piece that needed BPE.
func (sc *scratch) remember(piece []byte, ids []int32) {
	if len(sc.cache) >= cacheMaxEntries {
		clear(sc.cache)
		sc.arena = nil
	}
	if cap(sc.arena)-len(sc.arena) < len(ids) {
		sc.arena = make([]int32, 0, 4096)
	}
	n := len(sc.arena)
	sc.arena = append(sc.arena, ids...)
	sc.cache[string(piece)] = sc.arena[n:len(sc.arena):len(sc.arena)]
}

// encodeShort encodes a piece of 2..16 bytes through the hot cache.
func (t *Tokenizer) encodeShort(dst []int32, piece []byte, sc *scratch) []int32 {
	w0, w1 := words(piece)
	h := tokHash(piece, w0, w1)
	e := &sc.hot[h>>(64-hotBits)]
	n := uint16(len(piece))
	if e.n == n && e.w0 == w0 && e.w1 == w1 {
		if e.cnt == 1 {
			return append(dst, e.id)
		}
		return append(dst, sc.hotIDs[e.id:e.id+int32(e.cnt)]...)
	}
	start := len(dst)
	id, ok := int32(0), false
	if t.ignoreMerges {
		id, ok = t.vocab.getHashed(piece, w0, w1, h)
	}
	switch ids, cached := sc.cache[string(piece)]; {
	case ok:
		dst = append(dst, id)
	case cached:
		dst = append(dst, ids...)
	default:
		dst = t.mergeLinear(dst, piece, sc)
		sc.remember(piece, dst[start:])
	}
	ids := dst[start:]
	*e = hotEnt{w0: w0, w1: w1, n: n, cnt: uint16(len(ids))}
	if len(ids) == 1 {
		e.id = ids[0]
	} else {
		if len(sc.hotIDs)+len(ids) > 8*hotSize {
			// Start the id arena over; entries pointing into it are dropped.
			sc.hotIDs = sc.hotIDs[:0]
			for i := range sc.hot {
				if sc.hot[i].cnt > 1 {
					sc.hot[i] = hotEnt{}
				}
			}
			*e = hotEnt{w0: w0, w1: w1, n: n, cnt: uint16(len(ids))}
		}
		e.id = int32(len(sc.hotIDs))
		sc.hotIDs = append(sc.hotIDs, ids...)
	}
	return dst
}

// mergeLinear runs BPE on a short piece: each step scans the pair list for
// the lowest priority and merges it, updating only the two neighbouring
// pairs.
func (t *Tokenizer) mergeLinear(dst []int32, piece []byte, sc *scratch) []int32 {
	syms := sc.syms[:0]
	for _, c := range piece {
		syms = append(syms, t.byteID[c])
	}
	pairs := sc.pairs[:0]
	for i := 0; i+1 < len(syms); i++ {
		pairs = append(pairs, t.pairs.get(syms[i], syms[i+1]))
	}
	for len(pairs) > 0 {
		best, bi := noMerge, -1
		for i, p := range pairs {
			if p < best {
				best, bi = p, i
			}
		}
		if bi < 0 {
			break
		}
		syms[bi] = int32(uint32(best))
		syms = append(syms[:bi+1], syms[bi+2:]...)
		pairs = append(pairs[:bi], pairs[bi+1:]...)
		if bi > 0 {
			pairs[bi-1] = t.pairs.get(syms[bi-1], syms[bi])
		}
		if bi < len(pairs) {
			pairs[bi] = t.pairs.get(syms[bi], syms[bi+1])
		}
	}
	sc.syms, sc.pairs = syms, pairs
	return append(dst, syms...)
}

// mergeHeap runs BPE on a long piece with a doubly linked list of symbols
// and a min-heap of candidate merges ordered by (priority, position), which
// is the same order as the linear scan's "lowest priority, leftmost first".
// Memory is about 28 bytes per byte of the piece, allocated once; buffers
// of pieces over keepMax bytes are not kept in the scratch.
func (t *Tokenizer) mergeHeap(dst []int32, piece []byte, sc *scratch) []int32 {
	n := len(piece)
	syms, prev, next := sized(sc.syms, n), sized(sc.prev, n), sized(sc.next, n)
	for i, c := range piece {
		syms[i] = t.byteID[c]
		prev[i] = int32(i - 1)
		next[i] = int32(i + 1)
	}
	next[n-1] = -1
	h := sc.heap[:0]
	if cap(h) < n {
		h = make(mergeHeap, 0, n)
	}
	for i := 0; i < n-1; i++ {
		if m := t.pairs.get(syms[i], syms[i+1]); m != noMerge {
			h = append(h, mergeCand{prio: uint32(m >> 32), pos: int32(i), res: int32(uint32(m))})
		}
	}
	h.init()
	push := func(pos int32) {
		nx := next[pos]
		if nx < 0 {
			return
		}
		if m := t.pairs.get(syms[pos], syms[nx]); m != noMerge {
			h.push(mergeCand{prio: uint32(m >> 32), pos: pos, res: int32(uint32(m))})
		}
	}
	for len(h) > 0 {
		c := h.pop()
		if syms[c.pos] < 0 {
			continue // merged into its left neighbour
		}
		nx := next[c.pos]
		if nx < 0 {
			continue
		}
		if m := t.pairs.get(syms[c.pos], syms[nx]); m == noMerge || uint32(m>>32) != c.prio || int32(uint32(m)) != c.res {
			continue // stale: the pair at pos changed
		}
		syms[c.pos] = c.res
		syms[nx] = -1
		next[c.pos] = next[nx]
		if nn := next[nx]; nn >= 0 {
			prev[nn] = c.pos
		}
		if p := prev[c.pos]; p >= 0 {
			push(p)
		}
		push(c.pos)
	}
	dst = slices.Grow(dst, n/4)
	for i := int32(0); i >= 0; i = next[i] {
		dst = append(dst, syms[i])
	}
	if n > keepMax {
		syms, prev, next, h = nil, nil, nil, nil
	}
	sc.syms, sc.prev, sc.next, sc.heap = syms, prev, next, h[:0]
	return dst
}

// keepMax is the longest piece whose merge buffers stay in the scratch.
const keepMax = 1 << 16

// sized returns a slice of length n, reusing b's array when large enough.
func sized(b []int32, n int) []int32 {
	if cap(b) < n {
		return make([]int32, n)
	}
	return b[:n]
}

type mergeCand struct {
	prio uint32
	pos  int32
	res  int32
}

// mergeHeap is a binary min-heap of merge candidates on (prio, pos).
type mergeHeap []mergeCand

func (a mergeCand) less(b mergeCand) bool {
	if a.prio != b.prio {
		return a.prio < b.prio
	}
	return a.pos < b.pos
}

// init orders an arbitrary slice into a heap.
func (h mergeHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *mergeHeap) push(c mergeCand) {
	*h = append(*h, c)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if !s[i].less(s[parent]) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

func (h *mergeHeap) pop() mergeCand {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	*h = s[:last]
	h.down(0)
	return top
}

// down moves element i down to its place.
func (h mergeHeap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
