package model

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/herdml/herd/model/kernels"
)

// SampleOptions control token selection during generation.
type SampleOptions struct {
	// Temperature divides the logits; 0 selects greedy (argmax) decoding.
	Temperature float64
	// TopK keeps only the K most likely tokens (0 = no limit).
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability
	// reaches P (nucleus sampling; 0 or 1 = no limit).
	TopP float64
	// Seed makes sampling reproducible. Sequence i draws from its own
	// generator seeded with (Seed, i), so a sequence's output does not
	// depend on which other sequences share the batch.
	Seed uint64
	// MaxTokens is the number of new tokens to generate per sequence.
	MaxTokens int
	// StopTokens end a sequence when sampled; the stop token is not
	// included in the output.
	StopTokens []int32
}

// Generation is the result for one prompt.
type Generation struct {
	Tokens []int32 // the generated tokens, prompt excluded
	// Stopped is true when a stop token ended the sequence, false when
	// MaxTokens did.
	Stopped bool
}

// Generate continues each prompt with the KV-cache decoder, all prompts
// decoded together as one batch. Every prompt plus MaxTokens must fit in
// max_position_embeddings. Logits that are not finite (NaN or ±Inf, from
// corrupt weights) end generation with an error naming the prompt and
// position. Prompt i samples from stream i of opt.Seed.
func (m *Model) Generate(ctx context.Context, prompts [][]int32, opt SampleOptions) ([]Generation, error) {
	out, _, err := m.generate(ctx, prompts, 1, opt, nil)
	if err != nil {
		return nil, err
	}
	gens := make([]Generation, len(prompts))
	for i := range out {
		gens[i] = out[i][0]
	}
	return gens, nil
}

// SharedResult is what GenerateShared did.
type SharedResult struct {
	// Samples[i][j] is sample j of prompt i.
	Samples [][]Generation
	// Processed is the number of tokens the model ran forward: each
	// prompt once, then every sampled token but the last of each sample.
	Processed int64
}

// GenerateShared draws k samples from every prompt, all decoded together
// as one batch. Each prompt is run forward once (its prefill) and its KV
// cache copied to its k samples, as rejection sampling does. Sample j of
// prompt i draws from stream(i, j) of opt.Seed (nil: i·k + j), so a
// sample does not depend on which others share its batch.
func (m *Model) GenerateShared(ctx context.Context, prompts [][]int32, k int, opt SampleOptions, stream func(i, j int) uint64) (*SharedResult, error) {
	if k < 1 {
		return nil, fmt.Errorf("generate: %d samples per prompt; want at least 1", k)
	}
	out, n, err := m.generate(ctx, prompts, k, opt, stream)
	if err != nil {
		return nil, err
	}
	return &SharedResult{Samples: out, Processed: n}, nil
}

// generate is Generate and GenerateShared: k samples per prompt, in slots
// i·k … i·k+k−1, the prompt prefilled in the first and copied to the
// others.
func (m *Model) generate(ctx context.Context, prompts [][]int32, k int, opt SampleOptions, stream func(i, j int) uint64) ([][]Generation, int64, error) {
	if len(prompts) == 0 {
		return nil, 0, nil
	}
	if err := opt.validate(); err != nil {
		return nil, 0, err
	}
	ctxLen := m.Config.MaxPositionEmbeddings
	maxLen := 0
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, 0, fmt.Errorf("generate: prompt %d is empty (start it with a BOS token)", i)
		}
		if len(p) > ctxLen {
			return nil, 0, fmt.Errorf("generate: prompt %d has %d tokens, more than max_position_embeddings %d", i, len(p), ctxLen)
		}
		if opt.MaxTokens > ctxLen-len(p) {
			return nil, 0, fmt.Errorf("generate: max_tokens %d does not fit: prompt %d has %d tokens and max_position_embeddings is %d, so at most %d new tokens fit",
				opt.MaxTokens, i, len(p), ctxLen, ctxLen-len(p))
		}
		maxLen = max(maxLen, len(p)+opt.MaxTokens)
	}
	out := make([][]Generation, len(prompts))
	for i := range out {
		out[i] = make([]Generation, k)
	}
	if opt.MaxTokens == 0 {
		return out, 0, nil
	}
	n := len(prompts) * k
	dec, err := m.reusedDecoder(n, maxLen)
	if err != nil {
		return nil, 0, err
	}
	defer m.putDecoder(dec)
	samplers := make([]*Sampler, n)
	for i := range prompts {
		for j := range k {
			st := uint64(i*k + j)
			if stream != nil {
				st = stream(i, j)
			}
			samplers[i*k+j] = NewSampler(opt, st)
		}
	}
	V := m.Config.VocabSize
	slots := make([]int, 0, n)
	feed := make([][]int32, 0, n)
	one := make([]int32, n)
	// sample takes slot s's next token from row; it reports whether the
	// slot goes on.
	sample := func(s int, row []float32) (bool, error) {
		g := &out[s/k][s%k]
		if FirstNonFinite(row) >= 0 {
			return false, fmt.Errorf("generate: the logits at position %d of prompt %d (after %d generated tokens) are not finite (NaN or ±Inf); the model's weights are probably corrupt, check the checkpoint",
				dec.Len(s)-1, s/k, len(g.Tokens))
		}
		tok := samplers[s].Sample(row)
		if slices.Contains(opt.StopTokens, tok) {
			g.Stopped = true
			return false, nil
		}
		g.Tokens = append(g.Tokens, tok)
		if len(g.Tokens) >= opt.MaxTokens || dec.Len(s) >= maxLen {
			return false, nil
		}
		one[s] = tok
		return true, nil
	}
	// Prefill every prompt once, then share its cache with its samples.
	for i, p := range prompts {
		slots = append(slots, i*k)
		feed = append(feed, p)
	}
	logits, err := dec.Step(slots, feed, false)
	if err != nil {
		return out, dec.Processed(), err
	}
	last := slices.Clone(logits)
	slots, feed = slots[:0], feed[:0]
	for i := range prompts {
		for j := range k {
			s := i*k + j
			if j > 0 {
				if err := dec.Copy(s, i*k); err != nil {
					return out, dec.Processed(), err
				}
			}
			more, err := sample(s, last[i*V:(i+1)*V])
			if err != nil {
				return out, dec.Processed(), err
			}
			if more {
				slots = append(slots, s)
				feed = append(feed, one[s:s+1])
			}
		}
	}
	for len(slots) > 0 {
		if err := ctx.Err(); err != nil {
			return out, dec.Processed(), err
		}
		logits, err := dec.Step(slots, feed, false)
		if err != nil {
			return out, dec.Processed(), err
		}
		nextSlots, nextFeed := slots[:0], feed[:0]
		for r, s := range slots {
			more, err := sample(s, logits[r*V:(r+1)*V])
			if err != nil {
				return out, dec.Processed(), err
			}
			if more {
				nextSlots = append(nextSlots, s)
				nextFeed = append(nextFeed, one[s:s+1])
			}
		}
		slots, feed = nextSlots, nextFeed
	}
	return out, dec.Processed(), nil
}

// validate reports the first option outside its range.
func (opt *SampleOptions) validate() error {
	if !(opt.Temperature >= 0) || math.IsInf(opt.Temperature, 0) {
		return fmt.Errorf("generate: temperature must be a finite number >= 0 (0 = greedy), got %v", opt.Temperature)
	}
	if !(opt.TopP >= 0 && opt.TopP <= 1) {
		return fmt.Errorf("generate: top_p must be in [0, 1] (0 or 1 = no limit), got %v", opt.TopP)
	}
	if opt.TopK < 0 {
		return fmt.Errorf("generate: top_k must be >= 0 (0 = no limit), got %d", opt.TopK)
	}
	if opt.MaxTokens < 0 {
		return fmt.Errorf("generate: max_tokens must be >= 0, got %d", opt.MaxTokens)
	}
	return nil
}

// FirstNonFinite returns the index of the first NaN or infinity in x, or
// -1. It sums v-v (0 for finite v, NaN otherwise) over blocks and looks
// inside a block only when its sum is not 0; four sums keep the adds
// independent, so a check per logits row costs little next to the head.
func FirstNonFinite(x []float32) int {
	const block = 4096
	for lo := 0; lo < len(x); lo += block {
		b := x[lo:min(lo+block, len(x))]
		var s0, s1, s2, s3 float32
		i := 0
		for ; i+4 <= len(b); i += 4 {
			s0 += b[i] - b[i]
			s1 += b[i+1] - b[i+1]
			s2 += b[i+2] - b[i+2]
			s3 += b[i+3] - b[i+3]
		}
		for ; i < len(b); i++ {
			s0 += b[i] - b[i]
		}
		if s0+s1+s2+s3 == 0 {
			continue
		}
		for j, v := range b {
			if v-v != 0 {
				return lo + j
			}
		}
	}
	return -1
}

// Sampler picks tokens from logits according to SampleOptions. It keeps
// its scratch buffers, so sampling allocates nothing in steady state.
type Sampler struct {
	opt   SampleOptions
	rng   *rand.Rand
	idx   []int32
	probs []float32
}

// NewSampler returns a sampler for stream number stream of a seed.
func NewSampler(opt SampleOptions, stream uint64) *Sampler {
	return &Sampler{opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, stream))}
}

// Sample returns the chosen token for one row of logits. Neither top-k nor
// top-p sorts the vocabulary: top-k selects its k tokens in linear time,
// and top-p sorts only the few probability classes that hold its nucleus
// (see nucleus).
func (s *Sampler) Sample(logits []float32) int32 {
	if s.opt.Temperature == 0 {
		return int32(argmax(logits))
	}
	V := len(logits)
	if cap(s.idx) < V {
		s.idx = make([]int32, V)
		s.probs = make([]float32, V)
	}
	idx := s.idx[:V]
	for i := range idx {
		idx[i] = int32(i)
	}
	if s.opt.TopK > 0 && s.opt.TopK < V {
		selectTopK(idx, logits, s.opt.TopK)
		idx = idx[:s.opt.TopK]
	}
	mx := float32(math.Inf(-1))
	for _, i := range idx {
		mx = max(mx, logits[i])
	}
	// probs holds the unnormalised probability of each candidate, by
	// token id; z is their sum.
	invT := float32(1 / s.opt.Temperature)
	probs := s.probs[:V]
	var z float64
	for _, i := range idx {
		e := kernels.Exp((logits[i] - mx) * invT)
		probs[i] = e
		z += float64(e)
	}
	if s.opt.TopP > 0 && s.opt.TopP < 1 {
		idx = nucleus(idx, logits, probs, z, s.opt.TopP, mx, invT)
		z = 0
		for _, i := range idx {
			z += float64(probs[i])
		}
	}
	u := s.rng.Float64() * z
	var cum float64
	for _, i := range idx {
		cum += float64(probs[i])
		if u < cum {
			return i
		}
	}
	return idx[len(idx)-1]
}

// nucleusBuckets is how many classes of probability nucleus sorts the
// candidates into: nucleusBucketsPerNat per nat below the most likely
// token's log-probability (32 nats in all), the last taking the rest.
const (
	nucleusBuckets       = 256
	nucleusBucketsPerNat = 8
)

// nucleus returns the smallest prefix of the candidates idx, in order of
// decreasing logit (ties by lower id), whose probability (probs by token
// id, summing to z over idx) reaches topP, reordering idx; mx is the
// largest candidate logit and invT the inverse temperature. Rather than
// sort every candidate, it adds up the mass of each probability class (a
// histogram by log-probability), finds the class where the mass reaches
// topP, and sorts only the candidates down to that class — a few linear
// passes over a large vocabulary and a sort of little more than the
// nucleus. When rounding keeps the sorted prefix short of topP, it takes
// one more class; when even the whole sorted set falls short, all of it
// is the nucleus.
func nucleus(idx []int32, logits, probs []float32, z, topP float64, mx, invT float32) []int32 {
	bucket := func(i int32) int {
		d := (mx - logits[i]) * invT * nucleusBucketsPerNat
		if !(d < nucleusBuckets-1) { // also -Inf logits (NaN d)
			return nucleusBuckets - 1
		}
		return int(d)
	}
	var mass [nucleusBuckets]float64
	for _, i := range idx {
		mass[bucket(i)] += float64(probs[i])
	}
	k := 0
	for cum := mass[0]; k < nucleusBuckets-1 && cum < topP*z; cum += mass[k] {
		k++
	}
	for ; ; k++ {
		n := 0 // bring the candidates of classes 0..k to the front
		for j, i := range idx {
			if bucket(i) <= k {
				idx[n], idx[j] = i, idx[n]
				n++
			}
		}
		slices.SortFunc(idx[:n], func(a, b int32) int {
			if logits[a] != logits[b] {
				if logits[a] > logits[b] {
					return -1
				}
				return 1
			}
			return int(a - b)
		})
		var cum float64
		for j, i := range idx[:n] {
			cum += float64(probs[i]) / z
			if cum >= topP {
				return idx[:j+1]
			}
		}
		if n == len(idx) {
			return idx
		}
	}
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// selectTopK partially orders idx so that its first k entries are the
// indices of the k largest logits (ties broken by lower index).
func selectTopK(idx []int32, logits []float32, k int) {
	less := func(a, b int32) bool { // a ranks before b
		if logits[a] != logits[b] {
			return logits[a] > logits[b]
		}
		return a < b
	}
	lo, hi := 0, len(idx)-1
	for lo < hi {
		// Median-of-three pivot, then Hoare partition.
		mid := lo + (hi-lo)/2
		if less(idx[mid], idx[lo]) {
			idx[mid], idx[lo] = idx[lo], idx[mid]
		}
		if less(idx[hi], idx[lo]) {
			idx[hi], idx[lo] = idx[lo], idx[hi]
		}
		if less(idx[hi], idx[mid]) {
			idx[hi], idx[mid] = idx[mid], idx[hi]
		}
		pivot := idx[mid]
		i, j := lo, hi
		for i <= j {
			for less(idx[i], pivot) {
				i++
			}
			for less(pivot, idx[j]) {
				j--
			}
			if i <= j {
				idx[i], idx[j] = idx[j], idx[i]
				i++
				j--
			}
		}
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}
