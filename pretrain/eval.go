package pretrain

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/zeebo/xxh3"

	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
)

// EvalSet is a fixed set of held-out sequences.
type EvalSet struct {
	Batches []model.Batch
	// Targets is the number of scored positions.
	Targets int
	// Unigram is the entropy (nats) of the scored targets' token
	// distribution: the loss of the best model that ignores context, fitted
	// on these very tokens.
	Unigram float64
}

// BuildEvalSet packs up to tokens held-out tokens into sequences of seqLen,
// batch sequences per model.Batch, taking at most seqLen consecutive tokens
// of each document. With eval sources it reads them whole
// (in file order); otherwise it reads the heldOut fraction of the training
// sources, each source contributing in proportion to its weight.
func BuildEvalSet(ctx context.Context, train, eval []Source, heldOut float64, vocab, seqLen, batch, tokens int) (*EvalSet, error) {
	srcs := eval
	if len(srcs) == 0 {
		if heldOut <= 0 {
			return nil, errors.New("no held-out data: set data.heldout_fraction > 0 or eval.sources")
		}
		srcs = train
	} else {
		heldOut = 0
	}
	opened, err := openSources(srcs, heldOut, 1, 0)
	if err != nil {
		return nil, fmt.Errorf("eval data: %w", err)
	}
	var stream []int32
	var docs []int32
	doc := int32(0)
	for _, s := range opened {
		s.keepHeld = heldOut > 0
		quota := int(math.Ceil(float64(tokens) * s.weight))
		var c cursor
		taken := 0
		for taken < quota {
			if err := ctx.Err(); err != nil {
				s.close()
				return nil, err
			}
			toks, err := s.doc(&c, 0, vocab, false, false)
			if errors.Is(err, errSourceDone) {
				break
			}
			if err != nil {
				s.close()
				return nil, fmt.Errorf("eval data: %w", err)
			}
			// A document gives at most one sequence, from an offset set
			// by a hash of its position, so the set spans many documents
			// and not only their beginnings (licence headers, titles).
			n := min(len(toks), quota-taken, seqLen)
			off := 0
			if extra := len(toks) - n; extra > 0 {
				off = int(xxh3.HashString(fmt.Sprintf("%s/%d/%d", s.Name, c.Group, c.Doc)) % uint64(extra+1))
			}
			stream = append(stream, toks[off:off+n]...)
			for range n {
				docs = append(docs, doc)
			}
			doc++
			taken += n
			c.Doc++
		}
		s.close()
	}
	rows := len(stream) / seqLen
	if rows == 0 {
		return nil, fmt.Errorf("eval data: fewer held-out tokens (%d) than one sequence of %d", len(stream), seqLen)
	}
	set := &EvalSet{}
	counts := make([]float64, vocab)
	for start := 0; start < rows; start += batch {
		b := min(batch, rows-start)
		n := b * seqLen
		mb := model.Batch{B: b, T: seqLen, Tokens: make([]int32, n), Targets: make([]int32, n), DocIDs: make([]int32, n)}
		for r := range b {
			lo := (start + r) * seqLen
			tok, tgt, ids := mb.Tokens[r*seqLen:(r+1)*seqLen], mb.Targets[r*seqLen:(r+1)*seqLen], mb.DocIDs[r*seqLen:(r+1)*seqLen]
			copy(tok, stream[lo:lo+seqLen])
			first := docs[lo]
			for i := range ids {
				ids[i] = docs[lo+i] - first
			}
			next := int32(-1)
			if end := lo + seqLen; end < len(stream) && docs[end] == docs[end-1] {
				next = stream[end]
			}
			set.Targets += fillTargets(tok, tgt, ids, next)
			for _, t := range tgt {
				if t >= 0 {
					counts[t]++
				}
			}
		}
		set.Batches = append(set.Batches, mb)
	}
	for _, c := range counts {
		if c > 0 {
			p := c / float64(set.Targets)
			set.Unigram -= p * math.Log(p)
		}
	}
	return set, nil
}

// Loss is the mean next-token loss (nats) of m over the set.
func (e *EvalSet) Loss(ctx context.Context, m *model.Model) (float64, error) {
	return e.LossOver(ctx, m, cluster.NewReducer(cluster.Single{}, 0))
}

// LossOver is Loss with the batches split over the ranks of red's
// communicator (batch i on rank i mod size); every rank gets the same
// value, the one a single process computes. With several ranks the
// context is not checked: a rank leaving early would strand the others in
// the reduction.
func (e *EvalSet) LossOver(ctx context.Context, m *model.Model, red *cluster.Reducer) (float64, error) {
	c := red.Comm()
	sums := make([]float64, len(e.Batches))
	for i := range e.Batches {
		if i%c.Size() != c.Rank() {
			continue
		}
		if err := ctx.Err(); err != nil && c.Size() == 1 {
			return 0, err
		}
		b := &e.Batches[i]
		nll, err := m.Forward(b)
		if err != nil {
			return 0, err
		}
		for j, v := range nll {
			if b.Targets[j] >= 0 {
				sums[i] += float64(v)
			}
		}
	}
	if err := red.Sum64(sums); err != nil {
		return 0, fmt.Errorf("held-out loss: %w", err)
	}
	var sum float64
	for _, s := range sums {
		sum += s
	}
	return sum / float64(e.Targets), nil
}

// Sample is one generated continuation.
type Sample struct {
	Step int `json:"step"`
	// Model is "final" for the samples of final/ at the end of the run,
	// empty for those of the weights being trained.
	Model  string `json:"model,omitempty"`
	Prompt string `json:"prompt"`
	Text   string `json:"text"`
}

// generate continues each prompt with m, decoding with tok.
func generate(ctx context.Context, m *model.Model, tok *tokenizer.Tokenizer, prompts []string, ev Eval, seed uint64, step int) ([]Sample, error) {
	if tok == nil || len(prompts) == 0 || ev.SampleTokens == 0 {
		return nil, nil
	}
	var stop []int32
	if id, ok := tok.SpecialID(tok.Config().EOS); ok {
		stop = append(stop, id)
	}
	bos, hasBOS := tok.SpecialID(tok.Config().BOS)
	ids := make([][]int32, len(prompts))
	for i, p := range prompts {
		if hasBOS {
			ids[i] = append(ids[i], bos)
		}
		ids[i] = tok.AppendEncode(ids[i], []byte(p), false)
		if len(ids[i]) == 0 {
			return nil, fmt.Errorf("eval.prompts[%d] is empty and the tokenizer has no BOS token", i)
		}
		if len(ids[i])+ev.SampleTokens > m.Config.MaxPositionEmbeddings {
			return nil, fmt.Errorf("eval.prompts[%d] (%d tokens) plus sample_tokens %d exceed max_position_embeddings %d", i, len(ids[i]), ev.SampleTokens, m.Config.MaxPositionEmbeddings)
		}
	}
	gens, err := m.Generate(ctx, ids, model.SampleOptions{Temperature: ev.Temperature, TopK: ev.TopK, MaxTokens: ev.SampleTokens, Seed: seed, StopTokens: stop})
	if err != nil {
		return nil, err
	}
	out := make([]Sample, len(prompts))
	for i, g := range gens {
		var text []byte
		for _, t := range g.Tokens {
			if !tok.IsSpecial(t) {
				text = append(text, tok.Token(t)...)
			}
		}
		out[i] = Sample{Step: step, Prompt: prompts[i], Text: string(text)}
	}
	return out, nil
}
