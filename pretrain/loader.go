package pretrain

import (
	"errors"
	"fmt"
	"sync"

	"github.com/herdml/herd/model"
)

// stepBatch is one worker's data for one optimizer step.
type stepBatch struct {
	// Step is the global step the batch belongs to.
	Step int
	// Micro are the worker's micro-batches (micro_batch rows each), with
	// DocIDs and Denominator = Targets set.
	Micro []model.Batch
	// Targets is the number of positions with a target in the whole global
	// batch (all workers): the loss normaliser.
	Targets int
	// State is the stream position after this step.
	State packedStreamState
}

// Tokens returns the number of tokens of the worker's micro-batches.
func (b *stepBatch) Tokens() int {
	n := 0
	for i := range b.Micro {
		n += len(b.Micro[i].Tokens)
	}
	return n
}

// batchLoader cuts a Stream into global batches and hands one worker its rows.
type batchLoader struct {
	stream        *packedStream
	seqs, micro   int
	rank, world   int
	perRank       int
	tok, tgt, doc []int32 // scratch row for other workers' sequences
}

// newBatchLoader serves worker rank of world from stream, seqs sequences per
// global batch and micro sequences per micro-batch.
func newBatchLoader(stream *packedStream, seqs, micro, rank, world int) (*batchLoader, error) {
	if world < 1 || rank < 0 || rank >= world {
		return nil, fmt.Errorf("loader: rank %d is not in [0, world %d)", rank, world)
	}
	if seqs <= 0 || seqs%world != 0 {
		return nil, fmt.Errorf("loader: the %d sequences of a global batch must split evenly over %d workers", seqs, world)
	}
	per := seqs / world
	if micro <= 0 || per%micro != 0 {
		return nil, fmt.Errorf("loader: micro_batch %d must divide the %d sequences per worker", micro, per)
	}
	T := stream.SeqLen()
	return &batchLoader{stream: stream, seqs: seqs, micro: micro, rank: rank, world: world, perRank: per,
		tok: make([]int32, T), tgt: make([]int32, T), doc: make([]int32, T)}, nil
}

// NewStepBatch allocates a batch of the loader's shape.
func (l *batchLoader) NewStepBatch() *stepBatch {
	T := l.stream.SeqLen()
	sb := &stepBatch{}
	for range l.perRank / l.micro {
		n := l.micro * T
		sb.Micro = append(sb.Micro, model.Batch{B: l.micro, T: T, Tokens: make([]int32, n),
			Targets: make([]int32, n), DocIDs: make([]int32, n)})
	}
	return sb
}

// Next fills sb with the next global batch's rows of this worker.
func (l *batchLoader) Next(sb *stepBatch) error {
	T := l.stream.SeqLen()
	sb.Targets = 0
	lo := l.rank * l.perRank
	for i := range l.seqs {
		tok, tgt, doc := l.tok, l.tgt, l.doc
		if mine := i - lo; mine >= 0 && mine < l.perRank {
			b := &sb.Micro[mine/l.micro]
			off := (mine % l.micro) * T
			tok, tgt, doc = b.Tokens[off:off+T], b.Targets[off:off+T], b.DocIDs[off:off+T]
		}
		n, err := l.stream.Next(tok, tgt, doc)
		if err != nil {
			return err
		}
		sb.Targets += n
	}
	for i := range sb.Micro {
		sb.Micro[i].Denominator = float64(sb.Targets)
	}
	sb.State = l.stream.State()
	return nil
}

// batchPrefetcher runs a Loader on its own goroutine, depth batches ahead.
type batchPrefetcher struct {
	out  chan prefetched
	free chan *stepBatch
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type prefetched struct {
	sb  *stepBatch
	err error
}

// errPrefetchClosed is returned by Next after Close.
var errPrefetchClosed = errors.New("prefetcher closed")

// prefetch produces the batches of steps [first, end) from l.
func prefetch(l *batchLoader, first, end, depth int) *batchPrefetcher {
	depth = max(depth, 1)
	p := &batchPrefetcher{out: make(chan prefetched, depth), free: make(chan *stepBatch, depth+2), stop: make(chan struct{})}
	for range depth + 2 {
		p.free <- l.NewStepBatch()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(p.out)
		for step := first; step < end; step++ {
			var sb *stepBatch
			select {
			case sb = <-p.free:
			case <-p.stop:
				return
			}
			sb.Step = step
			err := l.Next(sb)
			select {
			case p.out <- prefetched{sb, err}:
			case <-p.stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return p
}

// Next returns the next step's batch; give it back with Release.
func (p *batchPrefetcher) Next() (*stepBatch, error) {
	r, ok := <-p.out
	if !ok {
		return nil, errPrefetchClosed
	}
	return r.sb, r.err
}

// Release returns a batch for reuse.
func (p *batchPrefetcher) Release(sb *stepBatch) {
	select {
	case p.free <- sb:
	default:
	}
}

// Close stops the goroutine and waits for it.
func (p *batchPrefetcher) Close() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}
