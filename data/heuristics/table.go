package heuristics

// table is an open-addressing hash table from uint64 keys to int32 counts,
// reused across documents: reset is O(1) (a generation stamp), which keeps
// the per-word cost of the repetition filters far below a Go map's. A slot
// holds key, count and stamp together, so a probe touches one cache line.
type table struct {
	slots []slot
	gen   uint32
	mask  uint64
}

type slot struct {
	key   uint64
	val   int32
	stamp uint32
}

// reset empties the table and makes room for about want keys.
func (t *table) reset(want int) {
	size := 1024
	for size < 2*want {
		size <<= 1
	}
	if len(t.slots) < size {
		t.slots = make([]slot, size)
		t.gen = 0
		t.mask = uint64(size - 1)
	}
	t.gen++
	if t.gen == 0 { // wrapped: clear stamps for real
		clear(t.slots)
		t.gen = 1
	}
}

// inc adds one to key's count and returns the new count.
func (t *table) inc(key uint64) int32 {
	i := (key * 0x9e3779b97f4a7c15) >> 7 & t.mask
	for {
		s := &t.slots[i]
		if s.stamp != t.gen {
			*s = slot{key: key, val: 1, stamp: t.gen}
			return 1
		}
		if s.key == key {
			s.val++
			return s.val
		}
		i = (i + 1) & t.mask
	}
}
