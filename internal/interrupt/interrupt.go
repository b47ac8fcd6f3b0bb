// Package interrupt turns Ctrl-C (SIGINT) and SIGTERM into the cancellation
// of a context, so that a long run can save its work and stop, and gives the
// exit status a shell expects of a process stopped by a signal (128 + the
// signal's number: 130 for SIGINT, 143 for SIGTERM). A second signal while
// the first is being handled exits at once.
package interrupt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// signalError is the cancellation cause of a context cancelled by a signal.
type signalError struct{ Sig os.Signal }

func (s signalError) Error() string { return fmt.Sprintf("interrupted by %v", s.Sig) }

// ExitCode is 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
func (s signalError) ExitCode() int {
	if n, ok := s.Sig.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 130
}

// Context returns a context cancelled, with a Signal cause, at the first
// SIGINT or SIGTERM. A second signal exits the process at once with the
// signal's exit code. Call stop to release the signal handler.
func Context(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			cancel(signalError{Sig: sig})
		case <-done:
			return
		}
		select {
		case sig := <-ch:
			fmt.Fprintf(os.Stderr, "\n%v again: exiting now\n", sig)
			os.Exit(signalError{Sig: sig}.ExitCode())
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(context.Canceled)
	}
}

// ExitCode returns the exit status for a run whose context is ctx: the
// signal's code when a signal cancelled it, else 0.
func ExitCode(ctx context.Context) int {
	var s signalError
	if errors.As(context.Cause(ctx), &s) {
		return s.ExitCode()
	}
	return 0
}
