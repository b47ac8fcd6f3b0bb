package heuristics

// table is an open-addressing hash table from uint64 keys to int32 counts,
// reused across documents: reset is O(1) (a generation stamp), which keeps
// the per-word cost of the repetition filters far below a Go map's.
type table struct {
	keys  []uint64
	vals  []int32
	stamp []uint32
	gen   uint32
	n     int
	mask  uint64
}

// reset empties the table and makes room for about want keys.
func (t *table) reset(want int) {
	size := 1024
	for size < 2*want {
		size <<= 1
	}
	if len(t.keys) < size {
		t.keys = make([]uint64, size)
		t.vals = make([]int32, size)
		t.stamp = make([]uint32, size)
		t.gen = 0
		t.mask = uint64(size - 1)
	}
	t.gen++
	if t.gen == 0 { // wrapped: clear stamps for real
		clear(t.stamp)
		t.gen = 1
	}
	t.n = 0
}

// inc adds one to key's count and returns the new count.
func (t *table) inc(key uint64) int32 {
	i := (key * 0x9e3779b97f4a7c15) >> 7 & t.mask
	for {
		if t.stamp[i] != t.gen {
			t.stamp[i], t.keys[i], t.vals[i] = t.gen, key, 1
			t.n++
			return 1
		}
		if t.keys[i] == key {
			t.vals[i]++
			return t.vals[i]
		}
		i = (i + 1) & t.mask
	}
}

// has reports whether key is present.
func (t *table) has(key uint64) bool {
	i := (key * 0x9e3779b97f4a7c15) >> 7 & t.mask
	for {
		if t.stamp[i] != t.gen {
			return false
		}
		if t.keys[i] == key {
			return true
		}
		i = (i + 1) & t.mask
	}
}
