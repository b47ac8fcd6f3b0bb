package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRoundsKillAtRandom runs two post-training rounds uninterrupted, and
// again killed with SIGKILL at random moments (during training, rejection
// sampling, the reference computation, evaluation, writes) and rerun each
// time until it finishes: the final model and the evaluation table must be
// byte-identical.
func TestRoundsKillAtRandom(t *testing.T) {
	if testing.Short() {
		t.Skip("runs post-training rounds many times")
	}
	shared(t)
	dir := t.TempDir()
	recipe := filepath.Join(dir, "rounds.yaml")
	text := fmt.Sprintf(`kind: rounds
model: %s
seed: 5
workers: 1
rounds:
  rounds: 2
  tasks: [max, first]
  eval_n: 4
  sft_data: [%s]
  pref_data: [%s]
  sft: [train.steps=12, train.seq_len=64, train.batch=2, data.heldout_fraction=0, eval.every=0, checkpoint.every=3, optim.lr=3e-3]
  rm: [train.steps=6, train.seq_len=64, train.batch=2, data.heldout_fraction=0, eval.every=0, checkpoint.every=2]
  rs: [rs.prompts=6, rs.k=4, rs.max_new_tokens=4, rs.chunk=2, rs.verifier=command,
       'rs.command=while IFS= read -r l; do if [ $(( ${#l} %% 2 )) = 0 ]; then echo "{\"score\":1}"; else echo "{\"score\":0}"; fi; done']
  dpo: [train.steps=6, train.seq_len=64, train.batch=2, data.heldout_fraction=0, eval.every=0, checkpoint.every=2, optim.lr=1e-3]
`, fix.modelDir, fix.sftData, fix.prefData)
	if err := os.WriteFile(recipe, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	whole := filepath.Join(dir, "whole")
	start := time.Now()
	if code, out := runChild(t, "-recipe", recipe, "-out", whole); code != 0 {
		t.Fatalf("uninterrupted rounds: exit %d\n%s", code, out)
	}
	took := time.Since(start)
	killed := filepath.Join(dir, "killed")
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill moments drawn with seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	kills := 0
	for try := 0; ; try++ {
		if try > 40 {
			t.Fatalf("the rounds did not finish after %d kills", kills)
		}
		c := startChild(t, "-recipe", recipe, "-out", killed)
		wait := time.Duration(rng.Int64N(int64(took) / 3))
		select {
		case <-c.done:
		case <-time.After(wait):
			c.cmd.Process.Signal(syscall.SIGKILL)
			<-c.done
		}
		if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			kills++
			continue
		}
		if code := c.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("rerun after %d kills: exit %d\n%s", kills, code, c.stderr.String())
		}
		break
	}
	t.Logf("finished after %d kills (an uninterrupted run takes %v)", kills, took.Round(time.Millisecond))
	for _, f := range []string{"eval.txt"} { // eval.jsonl names the directories
		a, err1 := os.ReadFile(filepath.Join(whole, f))
		b, err2 := os.ReadFile(filepath.Join(killed, f))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs after kills (%v, %v):\n%s\nvs\n%s", f, err1, err2, a, b)
		}
	}
	finals, _ := filepath.Glob(filepath.Join(whole, "round*", "*", "final", "model.safetensors"))
	if len(finals) < 4 {
		t.Fatalf("only %d final models in the uninterrupted rounds", len(finals))
	}
	for _, f := range finals {
		rel, _ := filepath.Rel(whole, f)
		a, _ := os.ReadFile(f)
		b, err := os.ReadFile(filepath.Join(killed, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs after %d kills (err %v)", rel, kills, err)
		}
	}
}
