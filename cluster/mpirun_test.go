package cluster_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/cluster/clustertest"
	"github.com/herdml/herd/data/tokens"
	"github.com/herdml/herd/data/tokens/tokenstest"
)

var mpirunArgs = clustertest.MPIRunArgs

// tinyPretrain is pretrain_tiny shrunk to seconds over synthetic shards:
// 8 sequences per step in 2 micro-batches (one per rank of 2), and the
// long-context stage's in 2 as well.
func tinyPretrain(t *testing.T, steps int) []string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "web")
	tokenstest.WriteShard(t, filepath.Join(data, "tokens-00000.parquet"), tokenstest.SynthRows("web", 300, 64, 1, 10, 150), 16)
	return []string{"-recipe", "pretrain_tiny", "-workers", "1", "data.sources.0.paths.0=" + data,
		"model.vocab_size=64", "model.hidden_size=32", "model.intermediate_size=64", "model.num_hidden_layers=2",
		"model.num_attention_heads=4", "model.num_key_value_heads=2", fmt.Sprint("train.steps=", steps), "train.seq_len=32",
		"train.batch_tokens=256", "train.micro_batch=4", "optim.warmup_steps=2", "eval.every=5", "eval.tokens=512",
		"checkpoint.every=5", "checkpoint.keep=100", "stages.0.steps=2", "stages.0.seq_len=64", "stages.1.steps=2"}
}

// run runs a command and fails the test on an error, showing its output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sameCheckpoints checks that two run directories hold the same
// checkpoints (weights and optimizer state, byte for byte), final model
// and training losses.
func sameCheckpoints(t *testing.T, what, a, b string) {
	t.Helper()
	clustertest.SameCheckpoints(t, what, a, b)
	if !bytes.Equal(readFile(t, filepath.Join(a, "final", "model.safetensors")), readFile(t, filepath.Join(b, "final", "model.safetensors"))) {
		t.Fatalf("%s: final models differ", what)
	}
	la, lb := losses(t, a), losses(t, b)
	if la != lb {
		t.Fatalf("%s: loss curves differ:\n%s\nvs\n%s", what, la, lb)
	}
}

var lossRe = regexp.MustCompile(`"step":\d+|"loss":[^,}]+|"eval_loss":[^,}]+`)

// losses is every step's training and held-out loss from metrics.jsonl.
func losses(t *testing.T, dir string) string {
	t.Helper()
	return strings.Join(lossRe.FindAllString(string(readFile(t, filepath.Join(dir, "metrics.jsonl"))), -1), " ")
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Must-show 1: `mpirun -np 2 pretrain -recipe pretrain_tiny …` and the
// same run in one process write the same checkpoints, bit for bit, and the
// same loss curve.
func TestMPIRunPretrainMatchesOneProcess(t *testing.T) {
	bin := clustertest.Build(t, "pretrain")
	args := tinyPretrain(t, 10)
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one"), filepath.Join(dir, "two")
	run(t, bin, append([]string{"-out", one}, args...)...)
	out := run(t, "mpirun", append(append(mpirunArgs(2), bin, "-out", two), args...)...)
	sameCheckpoints(t, "mpirun -np 2 vs one process", one, two)
	// The summary is printed once, by rank 0.
	if n := strings.Count(out, "final model:"); n != 1 {
		t.Errorf("the job printed its summary %d times:\n%s", n, out)
	}
}

// rankPID finds the process of rank of a job started from bin.
func rankPID(t *testing.T, bin string, rank int) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	want := []byte("OMPI_COMM_WORLD_RANK=" + strconv.Itoa(rank) + "\x00")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != bin {
			continue
		}
		if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil && bytes.Contains(env, want) {
			return pid
		}
	}
	return 0
}

// Must-show 2: kill one rank mid-run — the job stops within seconds,
// saying which rank died; -resume with one process or with two ranks then
// ends exactly as the uninterrupted run.
func TestMPIRunKilledRankResumes(t *testing.T) {
	bin := clustertest.Build(t, "pretrain")
	args := tinyPretrain(t, 200)
	dir := t.TempDir()
	straight := filepath.Join(dir, "straight")
	run(t, bin, append([]string{"-out", straight}, args...)...)
	for _, resumeRanks := range []int{1, 2} {
		out := filepath.Join(dir, fmt.Sprint("killed-then-", resumeRanks))
		cmd := exec.Command("mpirun", append(append(mpirunArgs(2), bin, "-out", out), args...)...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait for a checkpoint, then kill rank 1.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if _, err := os.Stat(filepath.Join(out, "checkpoints", checkpoint.StepDirName(20))); err == nil {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("no checkpoint at step 20 after 2 minutes:\n%s", stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		pid := rankPID(t, bin, 1)
		if pid == 0 {
			cmd.Process.Kill()
			t.Fatalf("rank 1 not found (did the run end already?):\n%s", stderr.String())
		}
		killed := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			took := time.Since(killed)
			if err == nil {
				t.Fatalf("the job exited 0 after rank 1 was killed:\n%s", stderr.String())
			}
			if took > 10*time.Second {
				t.Errorf("the job took %v to stop after rank 1 died", took)
			}
			if !strings.Contains(stderr.String(), "rank 1") || !strings.Contains(stderr.String(), "signal 9") {
				t.Errorf("the job's message does not name the dead rank and its signal:\n%s", stderr.String())
			}
			t.Logf("rank 1 killed: the job stopped after %v", took.Round(time.Millisecond))
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("the job still runs 30 s after rank 1 died (hang):\n%s", stderr.String())
		}
		latest, err := checkpoint.Latest(filepath.Join(out, "checkpoints"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("resuming from step %d with %d rank(s)", latest.Step, resumeRanks)
		resume := append([]string{"-out", out, "-resume"}, args...)
		if resumeRanks == 1 {
			run(t, bin, resume...)
		} else {
			run(t, "mpirun", append(append(mpirunArgs(resumeRanks), bin), resume...)...)
		}
		sameCheckpoints(t, fmt.Sprintf("killed, resumed with %d rank(s), vs straight", resumeRanks), straight, out)
	}
}

// A rank that fails with an error (rather than dying) stops the whole job
// within seconds, with a message naming it: here rank 1 reads its own copy
// of the token shards (as on a node-local disk) in which one document, met
// mid-run, holds a token outside the vocabulary, while rank 0 waits for it
// in the gradient all-reduce.
func TestMPIRunFailedRankStopsJob(t *testing.T) {
	bin := clustertest.Build(t, "pretrain")
	args := tinyPretrain(t, 200)
	rows := tokenstest.SynthRows("web", 300, 64, 1, 10, 150)
	rows[250].Tokens[3] = 100
	bad := filepath.Join(t.TempDir(), "web")
	tokenstest.WriteShard(t, filepath.Join(bad, "tokens-00000.parquet"), rows, 16)
	// The manifest describes the good shard (same documents, vocabulary
	// 64), so rank 1 starts and only meets the bad token when it reads it.
	m, err := tokens.ReadManifest(bad)
	if err != nil {
		t.Fatal(err)
	}
	m.Tokenizer.VocabSize = 64
	if err := tokens.WriteManifest(bad, m); err != nil {
		t.Fatal(err)
	}
	// Both ranks score the good data as held-out (the held-out fraction
	// of the training data would read every document at the start) and
	// read the training data a row group at a time, so rank 1 meets the
	// bad document mid-run.
	args = append(args, "data.shuffle_window=4", "data.shuffle_chunks=1")
	badArgs := slices.Clone(args)
	for i, a := range badArgs {
		if good, ok := strings.CutPrefix(a, "data.sources.0.paths.0="); ok {
			badArgs[i] = "data.sources.0.paths.0=" + bad
			heldOut := "eval.sources=[{name: web, paths: [" + good + "]}]"
			args, badArgs = append(args, heldOut), append(badArgs, heldOut)
			break
		}
	}
	out := filepath.Join(t.TempDir(), "run")
	// An MPMD launch: rank 0 with the good data, rank 1 with the bad.
	line := append(append(append(mpirunArgs(1), bin, "-out", out), args...), ":")
	line = append(append(line, "-np", "1", bin, "-out", out), badArgs...)
	cmd := exec.Command("mpirun", line...)
	stderr := &failWatch{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("the job exited 0 although rank 1 failed:\n%s", stderr.String())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("the job still runs 2 minutes after it started (hang?):\n%s", stderr.String())
	}
	msg, failed := stderr.result()
	took := time.Since(failed)
	want := regexp.MustCompile(`rank 1 of 2 failed, stopping every rank of the job: .*id 100 is outside the model's vocabulary`)
	if !want.MatchString(msg) {
		t.Fatalf("the job's output does not name the failed rank and its error:\n%s", msg)
	}
	// The failure came mid-run: rank 0 had trained steps and was waiting
	// for rank 1 in a collective, and the whole job still ended quickly.
	recs := losses(t, out)
	if !strings.Contains(recs, `"step":2 `) {
		t.Fatalf("rank 1 failed before step 2 (the test wants it mid-run); metrics: %s\n%s", recs, msg)
	}
	t.Logf("rank 1 failed after step %s; the job ended %v after its message", regexp.MustCompile(`\d+`).FindString(recs[strings.LastIndex(recs, `"step":`):]), took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("the job took %v to stop after rank 1 failed", took)
	}
}

// failWatch collects a job's output and notes when the failure message
// of a rank first shows.
type failWatch struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	failed time.Time
}

func (w *failWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.failed.IsZero() && bytes.Contains(w.buf.Bytes(), []byte("failed, stopping every rank")) {
		w.failed = time.Now()
	}
	return len(p), nil
}

func (w *failWatch) String() string { s, _ := w.result(); return s }

// result is the output and when the failure showed (now if it did not).
func (w *failWatch) result() (string, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed.IsZero() {
		return w.buf.String(), time.Now()
	}
	return w.buf.String(), w.failed
}
