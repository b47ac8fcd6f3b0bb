package pretrain

import "github.com/herdml/herd/train"

// Progress shows a run's steps, loss and speed as a bar on a terminal.
type Progress = train.Progress
