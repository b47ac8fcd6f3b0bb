package train

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Progress shows a run's steps, loss and speed as a bar on a terminal.
// Lines written to it (e.g. by a slog handler) are printed above the bar.
type Progress struct {
	p    *mpb.Progress
	bar  *mpb.Bar
	name string

	mu       sync.Mutex
	stage    string
	loss     float64
	evalLoss float64
	tps      float64
}

// NewProgress returns a Progress drawing on w (a terminal); name (e.g.
// "pretrain") starts the bar's line.
func NewProgress(w io.Writer, name string) *Progress {
	return &Progress{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(30), mpb.WithAutoRefresh()), name: name}
}

// Write prints p above the bar.
func (pb *Progress) Write(p []byte) (int, error) { return pb.p.Write(p) }

// start adds the bar for total steps, done of them already.
func (pb *Progress) start(total, done int) {
	status := decor.Any(func(decor.Statistics) string {
		pb.mu.Lock()
		defer pb.mu.Unlock()
		s := fmt.Sprintf("%s loss %.3f", pb.stage, pb.loss)
		if pb.evalLoss > 0 {
			s += fmt.Sprintf(" eval %.3f", pb.evalLoss)
		}
		return s + fmt.Sprintf(" %.0f tok/s", pb.tps)
	})
	pb.bar = pb.p.AddBar(int64(total),
		mpb.PrependDecorators(decor.Name(pb.name+" "), decor.CountersNoUnit("%d/%d steps")),
		mpb.AppendDecorators(status, decor.Name(" "), decor.AverageETA(decor.ET_STYLE_GO)))
	pb.bar.SetCurrent(int64(done))
	pb.bar.DecoratorAverageAdjust(time.Now())
}

func (pb *Progress) update(step int, stage string, loss, tps float64) {
	pb.mu.Lock()
	pb.stage, pb.loss, pb.tps = stage, loss, tps
	pb.mu.Unlock()
	pb.bar.SetCurrent(int64(step))
}

func (pb *Progress) eval(loss float64) {
	pb.mu.Lock()
	pb.evalLoss = loss
	pb.mu.Unlock()
}

// Finish completes the bar (also when the run stopped early) and waits
// for the last render.
func (pb *Progress) Finish() {
	if pb.bar != nil {
		pb.bar.Abort(false)
	}
	pb.p.Wait()
}
