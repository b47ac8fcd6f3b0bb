package main

import (
	"os"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// bars shows one progress bar per pass on a terminal.
type bars struct {
	p   *mpb.Progress
	bar *mpb.Bar
}

func newBars() *bars { return &bars{p: mpb.New(mpb.WithOutput(os.Stderr), mpb.WithWidth(40))} }

func (b *bars) StartPass(name string, units int) {
	b.bar = b.p.AddBar(int64(units),
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR), decor.CountersNoUnit("%d/%d units")),
		mpb.AppendDecorators(decor.Percentage(), decor.Name(" "), decor.Elapsed(decor.ET_STYLE_GO)))
}

func (b *bars) UnitDone(int64) {
	if b.bar != nil {
		b.bar.Increment()
	}
}

func (b *bars) EndPass() {
	if b.bar != nil {
		b.bar.SetTotal(-1, true)
		b.bar = nil
	}
}

func (b *bars) wait() { b.p.Wait() }
