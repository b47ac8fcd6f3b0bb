package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The pool's job word packs, from the top: a 32-bit job generation, a
// "closed to new joiners" bit, a "caller is parked" bit and a 30-bit count
// of workers currently inside the job. Workers join a job by a
// compare-and-swap that checks the generation and the closed bit, so a worker
// that wakes late can never read the fields of a job it did not join.
const (
	jobCountMask  = 1<<30 - 1
	jobWaiterBit  = 1 << 30
	jobClosedBit  = 1 << 31
	jobGenShift   = 32
	workerRunning = 0
	workerParked  = 1

	// spinRounds is how many times an idle worker polls for a new job
	// (yielding to the scheduler between polls) before it parks. Parallel is
	// called back to back during a training step, so a short spin saves the
	// cost of a wake-up (a futex round trip) on most calls.
	spinRounds = 2000
	// waitSpinRounds is how often the caller polls for the last joined
	// worker to finish before it parks.
	waitSpinRounds = 2000
)

// workerSlot is one worker's parking place, padded to its own cache lines.
type workerSlot struct {
	state atomic.Int32
	wake  chan struct{}
	_     [56]byte
}

// pool is a fixed set of persistent worker goroutines that run one
// parallel-for at a time, with the calling goroutine taking part.
type pool struct {
	workers int // goroutines taking part in a job, the caller included

	// mu is held by the goroutine whose job is running. Parallel uses
	// TryLock, so a Task that calls Parallel again (or a second goroutine
	// calling at the same moment) runs its work inline instead of
	// deadlocking.
	mu sync.Mutex

	job    atomic.Uint64
	_      [56]byte
	next   atomic.Int64 // next chunk to hand out
	_      [56]byte
	task   Task
	n      int
	chunk  int
	chunks int64
	closed atomic.Bool
	done   chan struct{}
	slots  []workerSlot
	exited sync.WaitGroup
}

func newPool(workers int) *pool {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &pool{
		workers: workers,
		done:    make(chan struct{}, 1),
		slots:   make([]workerSlot, workers-1),
	}
	for i := range p.slots {
		p.slots[i].wake = make(chan struct{}, 1)
	}
	p.exited.Add(len(p.slots))
	for i := range p.slots {
		go p.worker(&p.slots[i])
	}
	return p
}

// close stops the workers and waits for them to exit. Later calls to
// parallel run inline.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Swap(true) {
		return
	}
	// A new generation that is already closed to joiners makes every
	// worker look again, see p.closed and exit.
	gen := p.job.Load()>>jobGenShift + 1
	p.job.Store(gen<<jobGenShift | jobClosedBit)
	p.wakeAll()
	p.exited.Wait()
}

func (p *pool) wakeAll() {
	for i := range p.slots {
		s := &p.slots[i]
		if s.state.CompareAndSwap(workerParked, workerRunning) {
			s.wake <- struct{}{}
		}
	}
}

// chunkSize picks a chunk length of at least grain that gives each worker
// a few chunks, for load balance when chunks take unequal time.
func chunkSize(n, grain, workers int) int {
	if grain < 1 {
		grain = 1
	}
	target := (n + 4*workers - 1) / (4 * workers)
	if target < grain {
		target = grain
	}
	return target
}

// parallel runs t over [0, n) in chunks of chunk indices. It returns true
// if the work was handed to the pool and false if the caller must run it
// itself (the pool is busy or closed).
func (p *pool) parallel(n, chunk int, t Task) {
	chunks := (n + chunk - 1) / chunk
	if chunks <= 1 || p.workers == 1 || p.closed.Load() || !p.mu.TryLock() {
		runInline(n, chunk, t)
		return
	}
	p.runLocked(n, chunk, chunks, t)
	p.mu.Unlock()
}

// runInline runs every chunk on the calling goroutine, in order.
func runInline(n, chunk int, t Task) {
	for lo := 0; lo < n; lo += chunk {
		t.Run(lo, min(lo+chunk, n))
	}
}

// runLocked publishes a job, takes part in it and waits for every worker
// that joined to leave. p.mu must be held.
func (p *pool) runLocked(n, chunk, chunks int, t Task) {
	if p.closed.Load() {
		runInline(n, chunk, t)
		return
	}
	p.task, p.n, p.chunk, p.chunks = t, n, chunk, int64(chunks)
	p.next.Store(0)
	gen := p.job.Load()>>jobGenShift + 1
	p.job.Store(gen << jobGenShift) // open: no joiners yet
	// Wake only as many parked workers as there are chunks beyond the
	// caller's first.
	want := chunks - 1
	for i := range p.slots {
		if want <= 0 {
			break
		}
		s := &p.slots[i]
		if s.state.Load() == workerRunning {
			want--
			continue
		}
		if s.state.CompareAndSwap(workerParked, workerRunning) {
			s.wake <- struct{}{}
			want--
		}
	}
	p.work()
	// Every chunk has been claimed. Close the job to joiners and wait for
	// those inside to finish their chunks.
	v := p.job.Or(jobClosedBit) | jobClosedBit
	for i := 0; v&jobCountMask != 0; i++ {
		if i < waitSpinRounds {
			if i&15 == 15 {
				runtime.Gosched()
			}
			v = p.job.Load()
			continue
		}
		if p.job.CompareAndSwap(v, v|jobWaiterBit) {
			<-p.done
			break
		}
		v = p.job.Load()
	}
	p.task = nil
}

// work claims and runs chunks until none are left.
func (p *pool) work() {
	t, n, chunk, chunks := p.task, p.n, p.chunk, p.chunks
	for {
		c := p.next.Add(1) - 1
		if c >= chunks {
			return
		}
		lo := int(c) * chunk
		t.Run(lo, min(lo+chunk, n))
	}
}

func (p *pool) worker(s *workerSlot) {
	defer p.exited.Done()
	var seen uint64 // last generation this worker looked at
	for {
		v := p.job.Load()
		spins := 0
		for v>>jobGenShift == seen {
			if spins < spinRounds {
				spins++
				if spins&15 == 0 {
					runtime.Gosched()
				}
			} else {
				s.state.Store(workerParked)
				if p.job.Load()>>jobGenShift != seen {
					// A job arrived while parking: take it, unless the
					// caller already claimed our wake-up (then eat the
					// token it sends).
					if !s.state.CompareAndSwap(workerParked, workerRunning) {
						<-s.wake
					}
				} else {
					<-s.wake
				}
				spins = 0
			}
			v = p.job.Load()
		}
		seen = v >> jobGenShift
		if p.closed.Load() {
			return
		}
		// Join unless the job is closed or has moved on.
		joined := false
		for v>>jobGenShift == seen && v&jobClosedBit == 0 {
			if p.job.CompareAndSwap(v, v+1) {
				joined = true
				break
			}
			v = p.job.Load()
		}
		if !joined {
			continue
		}
		p.work()
		left := p.job.Add(^uint64(0)) // leave: count-1
		if left&jobCountMask == 0 && left&jobWaiterBit != 0 {
			p.done <- struct{}{}
		}
	}
}
