package dedup

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// SpillConfig bounds the memory of the external sorts behind key files and
// band bucket files. The zero value means: spill to os.TempDir() once
// 256 MiB of records are buffered.
type SpillConfig struct {
	// TempDir holds the sorted runs while a file is built; default os.TempDir().
	TempDir string
	// MemoryBytes is the record buffer size before a sorted run is spilled
	// to TempDir; default 256 MiB, minimum 4 KiB.
	MemoryBytes int64
}

func (c SpillConfig) withDefaults() SpillConfig {
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = 256 << 20
	}
	if c.MemoryBytes < 4<<10 {
		c.MemoryBytes = 4 << 10
	}
	return c
}

// codec describes one fixed-size record type.
type codec[T any] struct {
	kind uint16
	size int
	put  func(b []byte, v T)
	get  func(b []byte) T
	cmp  func(a, b T) int
}

// sorter is an external merge sort: records are buffered, sorted and
// spilled as runs (record files in TempDir), then merged in order.
type sorter[T any] struct {
	c      codec[T]
	params []byte
	cfg    SpillConfig
	buf    []T
	max    int
	runs   []string
	enc    []byte
}

func newSorter[T any](c codec[T], params []byte, cfg SpillConfig) *sorter[T] {
	cfg = cfg.withDefaults()
	max := int(cfg.MemoryBytes / int64(c.size+8))
	return &sorter[T]{c: c, params: params, cfg: cfg, max: max, enc: make([]byte, c.size)}
}

func (s *sorter[T]) add(v T) error {
	s.buf = append(s.buf, v)
	if len(s.buf) >= s.max {
		return s.spill()
	}
	return nil
}

func (s *sorter[T]) spill() error {
	slices.SortFunc(s.buf, s.c.cmp)
	f, err := os.CreateTemp(s.cfg.TempDir, "herd-dedup-run-*")
	if err != nil {
		return fmt.Errorf("dedup: spill run: %w", err)
	}
	path := f.Name()
	f.Close()
	w, err := createRec(path, s.c.kind, s.c.size, s.params)
	if err != nil {
		os.Remove(path)
		return err
	}
	for _, v := range s.buf {
		s.c.put(s.enc, v)
		if err := w.write(s.enc); err != nil {
			w.abort()
			os.Remove(path)
			return err
		}
	}
	if err := w.commit(); err != nil {
		os.Remove(path)
		return err
	}
	s.runs = append(s.runs, path)
	s.buf = s.buf[:0]
	return nil
}

// cleanup removes the spilled runs.
func (s *sorter[T]) cleanup() {
	for _, r := range s.runs {
		os.Remove(r)
	}
	s.runs = nil
}

// finish calls emit for every record in sorted order and removes the runs.
func (s *sorter[T]) finish(ctx context.Context, emit func(T) error) error {
	defer s.cleanup()
	slices.SortFunc(s.buf, s.c.cmp)
	if len(s.runs) == 0 {
		for i, v := range s.buf {
			if i&4095 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			if err := emit(v); err != nil {
				return err
			}
		}
		return nil
	}
	srcs := make([]source[T], 0, len(s.runs)+1)
	for _, p := range s.runs {
		r, err := openRec(p, s.c.kind, s.c.size)
		if err != nil {
			return err
		}
		defer r.close()
		srcs = append(srcs, fileSource(r, s.c))
	}
	mem := s.buf
	srcs = append(srcs, func() (T, bool, error) {
		var zero T
		if len(mem) == 0 {
			return zero, false, nil
		}
		v := mem[0]
		mem = mem[1:]
		return v, true, nil
	})
	return mergeSources(ctx, srcs, s.c.cmp, emit)
}

// source yields records in sorted order; ok=false at the end.
type source[T any] func() (v T, ok bool, err error)

// fileSource reads records of a sorted file, checking the order.
func fileSource[T any](r *recReader, c codec[T]) source[T] {
	var prev T
	first := true
	return func() (T, bool, error) {
		var zero T
		rec, err := r.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return zero, false, nil
			}
			return zero, false, err
		}
		v := c.get(rec)
		if !first && c.cmp(prev, v) > 0 {
			return zero, false, r.errOrder("not sorted")
		}
		first = false
		prev = v
		return v, true, nil
	}
}

type mergeItem[T any] struct {
	v   T
	src int
}

type mergeHeap[T any] struct {
	items []mergeItem[T]
	cmp   func(a, b T) int
}

func (h *mergeHeap[T]) Len() int { return len(h.items) }
func (h *mergeHeap[T]) Less(i, j int) bool {
	if c := h.cmp(h.items[i].v, h.items[j].v); c != 0 {
		return c < 0
	}
	return h.items[i].src < h.items[j].src
}
func (h *mergeHeap[T]) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *mergeHeap[T]) Push(x any)    { h.items = append(h.items, x.(mergeItem[T])) }
func (h *mergeHeap[T]) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

// mergeSources k-way merges sorted sources; ties go to the lower source index.
func mergeSources[T any](ctx context.Context, srcs []source[T], cmp func(a, b T) int, emit func(T) error) error {
	h := &mergeHeap[T]{cmp: cmp}
	for i, s := range srcs {
		v, ok, err := s()
		if err != nil {
			return err
		}
		if ok {
			h.items = append(h.items, mergeItem[T]{v, i})
		}
	}
	heap.Init(h)
	for n := 0; h.Len() > 0; n++ {
		if n&4095 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		top := h.items[0]
		if err := emit(top.v); err != nil {
			return err
		}
		v, ok, err := srcs[top.src]()
		if err != nil {
			return err
		}
		if ok {
			h.items[0].v = v
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return nil
}

// mergeFiles merges sorted record files of one codec.
func mergeFiles[T any](ctx context.Context, paths []string, c codec[T], emit func(T) error) error {
	srcs := make([]source[T], 0, len(paths))
	for _, p := range paths {
		r, err := openRec(filepath.Clean(p), c.kind, c.size)
		if err != nil {
			return err
		}
		defer r.close()
		srcs = append(srcs, fileSource(r, c))
	}
	return mergeSources(ctx, srcs, c.cmp, emit)
}

// sortedWriter buffers records of any order and writes them sorted to one
// record file at commit; same, if set, drops a record equal in the
// file's sense to the previous one.
type sortedWriter[T any] struct {
	what string
	path string
	s    *sorter[T]
	same func(prev, cur T) bool
	done bool
}

func newSortedWriter[T any](what, path string, c codec[T], cfg SpillConfig, same func(prev, cur T) bool) *sortedWriter[T] {
	return &sortedWriter[T]{what: what, path: path, s: newSorter(c, nil, cfg), same: same}
}

func (w *sortedWriter[T]) add(v T) error {
	if w.done {
		return fmt.Errorf("dedup: %s file %s: Add after Commit or Abort", w.what, w.path)
	}
	return w.s.add(v)
}

func (w *sortedWriter[T]) commit(ctx context.Context) error {
	if w.done {
		return fmt.Errorf("dedup: %s file %s: already finished", w.what, w.path)
	}
	w.done = true
	c := w.s.c
	out, err := createRec(w.path, c.kind, c.size, nil)
	if err != nil {
		w.s.cleanup()
		return err
	}
	enc := make([]byte, c.size)
	var prev T
	have := false
	err = w.s.finish(ctx, func(v T) error {
		if have && w.same != nil && w.same(prev, v) {
			return nil
		}
		prev, have = v, true
		c.put(enc, v)
		return out.write(enc)
	})
	if err != nil {
		out.abort()
		return fmt.Errorf("dedup: %s file %s: %w", w.what, w.path, err)
	}
	return out.commit()
}

func (w *sortedWriter[T]) abort() {
	if !w.done {
		w.done = true
		w.s.cleanup()
	}
}
