package pretrain

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progressBar shows the run's steps, loss and speed on a terminal.
type progressBar struct {
	p   *mpb.Progress
	bar *mpb.Bar

	mu       sync.Mutex
	stage    string
	loss     float64
	evalLoss float64
	tps      float64
}

func newProgressBar(w io.Writer, total, done int) *progressBar {
	pb := &progressBar{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(30), mpb.WithAutoRefresh())}
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
		mpb.PrependDecorators(decor.Name("pretrain "), decor.CountersNoUnit("%d/%d steps")),
		mpb.AppendDecorators(status, decor.Name(" "), decor.AverageETA(decor.ET_STYLE_GO)))
	pb.bar.SetCurrent(int64(done))
	pb.bar.DecoratorAverageAdjust(time.Now())
	return pb
}

func (pb *progressBar) update(r Record) {
	pb.mu.Lock()
	pb.stage, pb.loss, pb.tps = r.Stage, r.Loss, r.TokensPerS
	pb.mu.Unlock()
	pb.bar.SetCurrent(int64(r.Step))
}

func (pb *progressBar) eval(loss float64) {
	pb.mu.Lock()
	pb.evalLoss = loss
	pb.mu.Unlock()
}

// finish completes the bar (also when the run stopped early) and waits
// for the last render.
func (pb *progressBar) finish() {
	pb.bar.Abort(false)
	pb.p.Wait()
}
