package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair and sets the terminal's size; it
// returns the terminal side (what a program's stderr would be).
func openPTY(t *testing.T, cols, rows uint16) *os.File {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
		t.Fatal(err)
	}
	return tty
}

// TestSizedTerminal: a progress bar only where the terminal has a width;
// a terminal of 0 columns (script(1), some CI runners), a file or a
// buffer get periodic log lines instead.
func TestSizedTerminal(t *testing.T) {
	if !SizedTerminal(openPTY(t, 80, 24)) {
		t.Error("an 80-column terminal gets no progress bar")
	}
	zero := openPTY(t, 0, 0)
	if SizedTerminal(zero) {
		t.Error("a terminal of 0 columns gets a progress bar (it would print nothing)")
	}
	if _, bar := Output(zero, false, "x"); bar != nil {
		t.Error("Output gives a bar on a terminal of 0 columns")
	}
	f, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if SizedTerminal(f) || SizedTerminal(&bytes.Buffer{}) {
		t.Error("a file or a buffer counts as a terminal")
	}
}

// TestExitCode: 0, 1 for a failed run, 2 for a bad command line, also
// wrapped.
func TestExitCode(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("boom"), 1},
		{usagef("bad flag"), 2},
		{fmt.Errorf("validate: %w", usagef("x")), 2},
	} {
		if got := ExitCode(ctx, c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
