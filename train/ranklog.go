package train

import (
	"context"
	"log/slog"

	"github.com/herdml/herd/cluster"
)

// RankLogger is the logger of one rank of a job: rank 0 logs as log does;
// the others add their rank and keep only warnings and errors, so a job's
// output reads as one run's. A nil log discards.
func RankLogger(log *slog.Logger, c cluster.Comm) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	if c == nil || c.Size() == 1 || c.Rank() == 0 {
		return log
	}
	return slog.New(warnOnly{log.Handler()}).With("rank", c.Rank())
}

// warnOnly drops records below slog.LevelWarn.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}
func (h warnOnly) WithAttrs(a []slog.Attr) slog.Handler { return warnOnly{h.Handler.WithAttrs(a)} }
func (h warnOnly) WithGroup(n string) slog.Handler      { return warnOnly{h.Handler.WithGroup(n)} }
