package curate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// writeTextFiles writes n small text documents, one file (and unit) each.
func writeTextFiles(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		text := fmt.Sprintf("Document %d says something about rivers, mills and the autumn grain.", i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("doc-%03d.txt", i)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runBounded runs Run in a goroutine and fails the test if it does not
// return within limit (the behaviour under test would otherwise hang).
func runBounded(t *testing.T, ctx context.Context, cfg Config, opt Options, limit time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, cfg, opt)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("Run still running after %s", limit)
		return nil
	}
}

// TestRankAloneTimesOut starts rank 0 of a world of 2 without rank 1: it
// says what it waits for, and gives up with a message naming the missing
// rank and units once nothing has progressed for Options.WaitTimeout.
func TestRankAloneTimesOut(t *testing.T) {
	for _, stages := range [][]string{{StageNormalize}, {StageNormalize, StageExactDedup}} {
		t.Run(strings.Join(stages, ","), func(t *testing.T) {
			in := t.TempDir()
			writeTextFiles(t, in, 4)
			cfg := Default()
			cfg.Input.Paths = []string{in}
			cfg.Input.FilesPerUnit = 1
			cfg.Output.Dir = t.TempDir()
			cfg.Stages = stages
			var logs lockedBuffer
			opt := Options{Rank: 0, World: 2, Poll: 5 * time.Millisecond, WaitTimeout: 300 * time.Millisecond,
				WaitLogEvery: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			err := runBounded(t, t.Context(), cfg, opt, 20*time.Second)
			if err == nil {
				t.Fatal("rank 0 finished without rank 1")
			}
			t.Log(err)
			for _, want := range []string{"unit 1, unit 3", "of rank 1 ", "-wait-timeout"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if n := strings.Count(logs.String(), "waiting for other ranks"); n < 2 {
				t.Errorf("logged the wait %d times, want it repeated:\n%s", n, logs.String())
			}
			if !strings.Contains(logs.String(), "ranks=1") {
				t.Errorf("the log does not name the missing rank:\n%s", logs.String())
			}
		})
	}
}

// TestRankWaitCancelled: a rank waiting for others stops when its context
// is cancelled.
func TestRankWaitCancelled(t *testing.T) {
	in := t.TempDir()
	writeTextFiles(t, in, 2)
	cfg := Default()
	cfg.Input.Paths = []string{in}
	cfg.Input.FilesPerUnit = 1
	cfg.Output.Dir = t.TempDir()
	cfg.Stages = []string{StageNormalize}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	err := runBounded(t, ctx, cfg, Options{Rank: 0, World: 2, Poll: 5 * time.Millisecond, Logger: quietLogger()}, 20*time.Second)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
