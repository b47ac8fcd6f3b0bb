package tokenizer

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Limits of TrainOptions.VocabSize. The smallest vocabulary holds the 256
// bytes, the NumSpecial special tokens and one merged token; the largest is
// 1<<20 (Llama 3 has 128256 ids), which bounds training's memory before any
// input is read.
const (
	MinVocabSize = 256 + NumSpecial + 1
	MaxVocabSize = 1 << 20
)

// TrainOptions configure Train.
type TrainOptions struct {
	// VocabSize is the total number of ids, special tokens included
	// (Llama 3: 128256), in [MinVocabSize, MaxVocabSize]. The BPE
	// vocabulary gets VocabSize - 256 tokens: the 256 bytes and
	// VocabSize - 512 merged tokens.
	VocabSize int
	// MinFrequency stops training when the most frequent pair occurs fewer
	// times (0: the default 2; negative values are errors). The vocabulary
	// is then smaller than VocabSize.
	MinFrequency int64
	// Workers pre-tokenize and count in parallel, at most MaxWorkers
	// (0: GOMAXPROCS).
	Workers int
	// ChatTemplate is stored in the written tokenizer_config.json (optional).
	ChatTemplate string
	// Logger receives progress (default: discard).
	Logger *slog.Logger
}

// check validates the options; errors name the option and its range.
func (o TrainOptions) check() error {
	if o.VocabSize < MinVocabSize || o.VocabSize > MaxVocabSize {
		return fmt.Errorf("TrainOptions.VocabSize %d is out of range: want %d to %d (the 256 bytes and %d special tokens take %d ids, so %d leaves room for no merge; Llama 3 has 128256)",
			o.VocabSize, MinVocabSize, MaxVocabSize, NumSpecial, 256+NumSpecial, 256+NumSpecial)
	}
	if o.MinFrequency < 0 {
		return fmt.Errorf("TrainOptions.MinFrequency %d is negative: want at least 1 (0: the default 2)", o.MinFrequency)
	}
	if o.Workers < 0 || o.Workers > MaxWorkers {
		return fmt.Errorf("TrainOptions.Workers %d is out of range: want 0 (all cores) to %d", o.Workers, MaxWorkers)
	}
	return nil
}

// wordCounts is the number of occurrences of each distinct pre-token of a
// corpus. Its memory is proportional to the number of distinct pre-tokens,
// not to the corpus size.
type wordCounts struct {
	index  map[string]int32
	pieces []string
	counts []int64
}

// newWordCounts returns an empty Counts.
func newWordCounts() *wordCounts { return &wordCounts{index: map[string]int32{}} }

// Add counts the pre-tokens of text.
func (c *wordCounts) Add(text []byte) {
	for i := 0; i < len(text); {
		j := nextPiece(text, i)
		c.addN(text[i:j], 1)
		i = j
	}
}

func (c *wordCounts) addN(p []byte, n int64) {
	if k, ok := c.index[string(p)]; ok {
		c.counts[k] += n
		return
	}
	s := string(p)
	c.index[s] = int32(len(c.pieces))
	c.pieces = append(c.pieces, s)
	c.counts = append(c.counts, n)
}

// Merge adds the counts of o to c.
func (c *wordCounts) Merge(o *wordCounts) {
	for k, p := range o.pieces {
		if i, ok := c.index[p]; ok {
			c.counts[i] += o.counts[k]
			continue
		}
		c.index[p] = int32(len(c.pieces))
		c.pieces = append(c.pieces, p)
		c.counts = append(c.counts, o.counts[k])
	}
}

// Len is the number of distinct pre-tokens.
func (c *wordCounts) Len() int { return len(c.pieces) }

// Count returns the number of occurrences of a pre-token.
func (c *wordCounts) Count(piece string) int64 {
	if k, ok := c.index[piece]; ok {
		return c.counts[k]
	}
	return 0
}

// countCorpus pre-tokenizes the corpora with workers goroutines and counts
// the distinct pre-tokens, streaming.
func countCorpus(ctx context.Context, corpora []Corpus, workers int) (*wordCounts, int64, error) {
	workers, err := workerCount(workers)
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []byte, 2*workers)
	parts := make([]*wordCounts, workers)
	var wg sync.WaitGroup
	for w := range workers {
		parts[w] = newWordCounts()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ch := range chunks {
				parts[w].Add(ch)
			}
		}()
	}
	var total int64
	for _, c := range corpora {
		err = c.Each(ctx, func(b []byte) error {
			total += int64(len(b))
			select {
			case chunks <- bytes.Clone(b):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil {
			break
		}
	}
	close(chunks)
	wg.Wait()
	if err != nil {
		return nil, 0, err
	}
	all := parts[0]
	for _, p := range parts[1:] {
		all.Merge(p)
	}
	return all, total, nil
}

// Train learns a byte-level BPE vocabulary from the corpora with Llama 3's
// pre-tokenization and special-token layout (see trainCounts).
func Train(ctx context.Context, corpora []Corpus, o TrainOptions) (*Tokenizer, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("train tokenizer: %w", err)
	}
	start := time.Now()
	counts, n, err := countCorpus(ctx, corpora, o.Workers)
	if err != nil {
		return nil, fmt.Errorf("train tokenizer: %w", err)
	}
	log.Info("counted pre-tokens", "bytes", n, "distinct", counts.Len(), "seconds", time.Since(start).Seconds())
	return trainCounts(ctx, counts, o)
}

// trainCounts learns BPE merges from pre-token counts.
//
// It starts from the 256 single bytes (ids 0..255 = byte values) and
// repeatedly merges the most frequent adjacent pair of tokens, counted over
// all pre-tokens weighted by their counts. Ties go to the pair with the
// smallest (left id, right id). Pair counts are kept incrementally: a merge
// touches only the pre-tokens that contain the pair (found through a
// pair → pre-tokens index) and updates the counts of the neighbouring
// pairs; a max-heap with lazy deletion picks the next pair. A merge whose
// result already exists as a token (reached by another split) is recorded
// as a merge but adds no token. Training stops at VocabSize - 256 BPE
// tokens or when the best pair occurs fewer than MinFrequency times. The
// 256 special tokens of Llama 3.1 (LlamaSpecials) follow the BPE tokens.
// The result is deterministic: it depends only on the counts.
func trainCounts(ctx context.Context, counts *wordCounts, o TrainOptions) (*Tokenizer, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("train tokenizer: %w", err)
	}
	minFreq := o.MinFrequency
	if minFreq <= 0 {
		minFreq = 2
	}
	target := o.VocabSize - NumSpecial
	start := time.Now()

	// Words: the distinct pre-tokens in byte order, as symbol sequences.
	order := make([]int32, counts.Len())
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		pa, pb := counts.pieces[a], counts.pieces[b]
		switch {
		case pa < pb:
			return -1
		case pa > pb:
			return 1
		}
		return 0
	})
	tr := &trainer{
		pairCount: map[uint64]int64{},
		where:     map[uint64][]int32{},
	}
	for _, k := range order {
		p := counts.pieces[k]
		if len(p) < 2 {
			continue // no pairs
		}
		syms := make([]int32, len(p))
		for i := range len(p) {
			syms[i] = int32(p[i])
		}
		tr.words = append(tr.words, syms)
		tr.wcount = append(tr.wcount, counts.counts[k])
	}
	for w, syms := range tr.words {
		for i := 0; i+1 < len(syms); i++ {
			tr.add(syms[i], syms[i+1], tr.wcount[w], int32(w))
		}
	}
	for k, c := range tr.pairCount {
		tr.h = append(tr.h, pairEntry{count: c, key: k})
	}
	heap.Init(&tr.h)

	tokens := make([][]byte, 256, target)
	for b := range 256 {
		tokens[b] = []byte{byte(b)}
	}
	byBytes := map[string]int32{}
	for id, t := range tokens {
		byBytes[string(t)] = int32(id)
	}
	var merges []Merge
	for len(tokens) < target && tr.h.Len() > 0 {
		if len(merges)%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		top := heap.Pop(&tr.h).(pairEntry)
		cur := tr.pairCount[top.key]
		if cur != top.count {
			if cur >= minFreq {
				heap.Push(&tr.h, pairEntry{count: cur, key: top.key})
			}
			continue
		}
		if cur < minFreq {
			break
		}
		a, b := int32(top.key>>32), int32(uint32(top.key))
		cat := string(tokens[a]) + string(tokens[b])
		id, ok := byBytes[cat]
		if !ok {
			id = int32(len(tokens))
			tokens = append(tokens, []byte(cat))
			byBytes[cat] = id
		}
		merges = append(merges, Merge{a, b})
		tr.merge(a, b, id)
	}
	switch {
	case len(merges) == 0:
		log.Warn("training learned no merge: no pair of bytes occurs min_frequency times, so the tokenizer encodes every byte separately; train on more text or lower -min-frequency",
			"target", target, "min_frequency", minFreq)
	case len(tokens) < target:
		log.Warn("training stopped before the target vocabulary size: no pair occurs often enough",
			"bpe_tokens", len(tokens), "target", target, "min_frequency", minFreq)
	}
	log.Info("learned merges", "merges", len(merges), "bpe_tokens", len(tokens), "seconds", time.Since(start).Seconds())

	s := spec{tokens: tokens, merges: merges, ignoreMerges: true,
		cfg: Config{BOS: BeginOfText, EOS: EndOfText, AddBOS: true, ChatTemplate: o.ChatTemplate}}
	for i, name := range LlamaSpecials() {
		s.specials = append(s.specials, specialToken{id: int32(len(tokens) + i), content: name})
	}
	t, err := build(s)
	if err != nil {
		return nil, fmt.Errorf("train tokenizer: %w", err)
	}
	if err := t.CheckChatTemplate(); err != nil {
		return nil, fmt.Errorf("train tokenizer: %w", err)
	}
	return t, nil
}

// trainer holds the incremental pair statistics of BPE training.
type trainer struct {
	words     [][]int32          // symbol sequences of the distinct pre-tokens
	wcount    []int64            // their counts
	pairCount map[uint64]int64   // pair → weighted occurrences
	where     map[uint64][]int32 // pair → words that may contain it (superset)
	h         pairHeap
	fresh     []uint64 // pairs created by the current merge
}

// add adds n occurrences of pair (a, b) in word w.
func (tr *trainer) add(a, b int32, n int64, w int32) {
	k := pairKey(a, b)
	tr.pairCount[k] += n
	ws := tr.where[k]
	if len(ws) == 0 || ws[len(ws)-1] != w {
		tr.where[k] = append(ws, w)
	}
	tr.fresh = append(tr.fresh, k)
}

// sub removes n occurrences of pair (a, b).
func (tr *trainer) sub(a, b int32, n int64) {
	k := pairKey(a, b)
	if c := tr.pairCount[k] - n; c > 0 {
		tr.pairCount[k] = c
	} else {
		delete(tr.pairCount, k)
	}
}

// merge replaces every (a, b) by id in the words that contain it and
// updates the neighbouring pairs' counts.
func (tr *trainer) merge(a, b, id int32) {
	k := pairKey(a, b)
	ws := tr.where[k]
	delete(tr.where, k)
	tr.fresh = tr.fresh[:0]
	for _, w := range ws {
		syms := tr.words[w]
		n := tr.wcount[w]
		out := syms[:0]
		for i := 0; i < len(syms); i++ {
			if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
				if len(out) > 0 {
					l := out[len(out)-1]
					tr.sub(l, a, n)
					tr.add(l, id, n, w)
				}
				if i+2 < len(syms) {
					r := syms[i+2]
					tr.sub(b, r, n)
					tr.add(id, r, n, w)
				}
				tr.sub(a, b, n)
				out = append(out, id)
				i++
				continue
			}
			out = append(out, syms[i])
		}
		tr.words[w] = out
	}
	// Every pair whose count grew gets a heap entry with its new count;
	// entries with outdated counts are fixed when popped.
	slices.Sort(tr.fresh)
	for _, p := range slices.Compact(tr.fresh) {
		if c, ok := tr.pairCount[p]; ok {
			heap.Push(&tr.h, pairEntry{count: c, key: p})
		}
	}
}

type pairEntry struct {
	count int64
	key   uint64
}

// pairHeap is a max-heap on count, ties to the smaller key (left id,
// then right id).
type pairHeap []pairEntry

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	if h[i].count != h[j].count {
		return h[i].count > h[j].count
	}
	return h[i].key < h[j].key
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pairEntry)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
