package interrupt

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestSignals sends SIGINT and SIGTERM to a child process (this test
// binary) that waits on Context and exits with ExitCode, and checks the
// shell conventions 130 and 143.
func TestSignals(t *testing.T) {
	if os.Getenv("INTERRUPT_CHILD") != "" {
		ctx, stop := Context(context.Background())
		os.Stdout.WriteString("ready\n")
		<-ctx.Done()
		code := ExitCode(ctx)
		stop()
		os.Exit(code)
	}
	for _, c := range []struct {
		sig  syscall.Signal
		want int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSignals$")
		cmd.Env = append(os.Environ(), "INTERRUPT_CHILD=1")
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		if _, err := out.Read(buf); err != nil {
			t.Fatal(err)
		}
		cmd.Process.Signal(c.sig)
		err := cmd.Wait()
		if got := cmd.ProcessState.ExitCode(); got != c.want {
			t.Errorf("%v: exit code %d (%v), want %d", c.sig, got, err, c.want)
		}
	}
}

func TestExitCodeWithoutSignal(t *testing.T) {
	ctx, stop := Context(context.Background())
	if ExitCode(ctx) != 0 {
		t.Fatal("not interrupted, yet a non-zero code")
	}
	stop()
	if ExitCode(ctx) != 0 {
		t.Fatal("stopped, not interrupted, yet a non-zero code")
	}
	ctx2, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx2.Done()
	if ExitCode(ctx2) != 0 {
		t.Fatal("a deadline is not a signal")
	}
}
