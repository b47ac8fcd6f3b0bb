package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/cluster/clustertest"
	"github.com/herdml/herd/model"
)

// dpParts is the number of parts (one row each) of the data-parallel toy's
// global batch.
const dpParts = 4

// dpToy is a data-parallel trainer: global batch n has dpParts rows drawn
// from a generator seeded with n; rank r of w computes parts
// [r·dpParts/w, (r+1)·dpParts/w), each normalised by the global batch's
// target count, and sums them with cluster.LeafSum.
type dpToy struct {
	*toy
	rank, world int
	sum         cluster.LeafSum
	part        model.Batch
	vals        checkpoint.Metrics
}

func newDPToy(t *testing.T, rank, world int) *dpToy {
	n := toyT
	return &dpToy{toy: newToy(t), rank: rank, world: world, vals: checkpoint.Metrics{},
		part: model.Batch{B: 1, T: toyT, Tokens: make([]int32, n), Targets: make([]int32, n), Denominator: dpParts * toyT}}
}

func (d *dpToy) Step(step int) (StepResult, error) {
	rng := rand.New(rand.NewPCG(uint64(d.next), 3))
	per := dpParts / d.world
	g := d.m.Grads.Data
	var loss float64
	for p := range dpParts {
		for i := range toyT {
			d.part.Tokens[i] = int32(rng.IntN(16))
			d.part.Targets[i] = (d.part.Tokens[i] + 1) % 16
		}
		if p/per != d.rank {
			continue
		}
		l, err := d.m.ForwardBackward(&d.part)
		if err != nil {
			return StepResult{}, fmt.Errorf("step %d: %w", step+1, err)
		}
		if p%per < per-1 {
			d.sum.Add(g, l)
		} else {
			loss = d.sum.Finish(g, l)
		}
	}
	d.next++
	clear(d.vals)
	d.vals["toy/rows"] = float64(per)
	return StepResult{Loss: loss, Tokens: int64(per * toyT), Metrics: d.vals}, nil
}

// runDP runs the toy over world goroutine ranks in dir and returns rank
// 0's trainer and result.
func runDP(t *testing.T, ctx context.Context, dir string, world int, change func(rank int, o *Options)) (*dpToy, *Result) {
	t.Helper()
	toys := make([]*dpToy, world)
	for r := range world {
		toys[r] = newDPToy(t, r, world)
	}
	res := clustertest.RunRanks(t, cluster.Local(world), func(r int, comm cluster.Comm) (*Result, error) {
		d := toys[r]
		opt := toyOptions(dir, d.toy)
		opt.Comm, opt.BucketValues = comm, 100
		if change != nil {
			change(r, &opt)
		}
		e, err := New(opt, d)
		if err != nil {
			return nil, err
		}
		defer e.Close()
		if err := e.Claim(); err != nil {
			return nil, err
		}
		return e.Run(ctx)
	})
	for r := 1; r < world; r++ {
		sameBits(t, fmt.Sprintf("rank %d vs rank 0", r), toys[r].m.Params.Data, toys[0].m.Params.Data)
	}
	return toys[0], res
}

func sameBits(t *testing.T, what string, a, b []float32) {
	t.Helper()
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("%s: parameter %d is %v, want %v (bit-identical)", what, i, a[i], b[i])
		}
	}
}

// One, two and four ranks train the same bits, write the same losses and
// the same checkpoints (cluster's tests show the parts' sum depends on
// the order, so this needs the fixed tree).
func TestDataParallelBitIdentical(t *testing.T) {
	base := t.TempDir()
	one, r1 := runDP(t, context.Background(), filepath.Join(base, "w1"), 1, nil)
	recs1 := trainRecords(t, filepath.Join(base, "w1"))
	for _, w := range []int{2, 4} {
		dir := filepath.Join(base, fmt.Sprint("w", w))
		d, r := runDP(t, context.Background(), dir, w, nil)
		sameBits(t, fmt.Sprintf("%d ranks vs 1", w), d.m.Params.Data, one.m.Params.Data)
		if r.Loss != r1.Loss || r.Steps != r1.Steps || r.Tokens != r1.Tokens {
			t.Errorf("%d ranks: result %+v, one rank %+v", w, r, r1)
		}
		recs := trainRecords(t, dir)
		if len(recs) != len(recs1) {
			t.Fatalf("%d ranks wrote %d train records, one rank %d", w, len(recs), len(recs1))
		}
		for i := range recs {
			a, b := recs[i].Values, recs1[i].Values
			if a["loss"] != b["loss"] || a["grad_norm"] != b["grad_norm"] || a["toy/rows"] != dpParts || recs[i].Tokens != recs1[i].Tokens {
				t.Errorf("%d ranks, step %d: %v, one rank %v", w, recs[i].Step, a, b)
			}
		}
		_, p, _, err := checkpoint.Load(r.Checkpoint)
		if err != nil {
			t.Fatal(err)
		}
		sameBits(t, fmt.Sprintf("%d ranks' checkpoint", w), p.Data, one.m.Params.Data)
	}
}

// A checkpoint written by one rank resumes with two and the reverse, and
// both end where an uninterrupted run does.
func TestDataParallelResumeAcrossWorldSizes(t *testing.T) {
	base := t.TempDir()
	full, _ := runDP(t, context.Background(), filepath.Join(base, "full"), 1, nil)
	for _, c := range [][2]int{{1, 2}, {2, 1}, {4, 2}} {
		dir := filepath.Join(base, fmt.Sprintf("%d-then-%d", c[0], c[1]))
		_, r := runDP(t, context.Background(), dir, c[0], func(_ int, o *Options) { o.StopAt = 3 })
		if !r.Interrupted || r.Steps != 3 {
			t.Fatalf("%v: first part %+v", c, r)
		}
		d, r := runDP(t, context.Background(), dir, c[1], func(_ int, o *Options) { o.Resume = true })
		if r.Steps != 8 {
			t.Fatalf("%v: resumed run ended at step %d", c, r.Steps)
		}
		sameBits(t, fmt.Sprintf("%d ranks resumed by %d", c[0], c[1]), d.m.Params.Data, full.m.Params.Data)
	}
}

// A stop seen by one rank only (as Ctrl-C reaching one process, here
// StopAt on rank 1) stops every rank after the same step, and rank 0
// saves it.
func TestDataParallelStopAgreed(t *testing.T) {
	dir := t.TempDir()
	_, r := runDP(t, context.Background(), dir, 2, func(rank int, o *Options) {
		if rank == 1 {
			o.StopAt = 5
		}
	})
	if !r.Interrupted || r.Steps != 5 {
		t.Fatalf("result %+v: want interrupted after step 5", r)
	}
	latest, err := checkpoint.Latest(filepath.Join(dir, CheckpointsDir))
	if err != nil || latest.Step != 5 {
		t.Fatalf("newest checkpoint %+v, %v: want step 5", latest, err)
	}
	var st struct{ Next int }
	_, _, ts, err := checkpoint.Load(latest.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ts.DataPosition, &st); err != nil || st.Next != 5 {
		t.Fatalf("data position %s: %v", ts.DataPosition, err)
	}
}
