package pretrain

import (
	"io"

	"github.com/herdml/herd/train"
)

// Progress shows a run's steps, loss and speed as a bar on a terminal.
type Progress = train.Progress

// NewProgress returns a Progress drawing on w (a terminal).
func NewProgress(w io.Writer) *Progress { return train.NewProgress(w, "pretrain") }
