package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/posttrain"
	"github.com/herdml/herd/tasks"
	"github.com/herdml/herd/train"
)

// childEnv, when set to a JSON list of arguments, makes the test binary
// run the posttrain command itself: the tests start it as a separate
// process to SIGKILL it and to see its exit codes.
const childEnv = "HERD_POSTTRAIN_MAIN"

func TestMain(m *testing.M) {
	if env := os.Getenv(childEnv); env != "" {
		var args []string
		if err := json.Unmarshal([]byte(env), &args); err != nil {
			panic(err)
		}
		os.Args = append([]string{"posttrain"}, args...)
		main()
		return
	}
	code := m.Run()
	if fix.dir != "" {
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}

// fixture is what every test shares, made once: a tiny Llama with a
// tokenizer that has the Llama 3 chat tokens, SFT and preference rows of
// the built-in tasks, a recipe file per kind, and the finished
// (uninterrupted) run of each kind.
var fix struct {
	once     sync.Once
	err      error
	dir      string
	modelDir string
	sftData  string
	prefData string
	recipe   map[string]string // kind → recipe file

	mu   sync.Mutex
	runs map[string]string // kind → finished run directory
}

// fixtureSteps is the length of every fixture run; checkpoints are
// written every fixtureEvery steps.
const (
	fixtureSteps = 40
	fixtureEvery = 5
)

func shared(t *testing.T) {
	t.Helper()
	fix.once.Do(func() { fix.err = makeFixture() })
	if fix.err != nil {
		t.Fatal(fix.err)
	}
}

func makeFixture() error {
	dir, err := os.MkdirTemp("", "posttrain-cli-test-")
	if err != nil {
		return err
	}
	fix.dir = dir
	fix.sftData, fix.prefData = filepath.Join(dir, "sft.jsonl"), filepath.Join(dir, "pref.jsonl")
	var sft, pref bytes.Buffer
	if err := tasks.WriteSFT(&sft, nil, 400, 7); err != nil {
		return err
	}
	if err := tasks.WritePref(&pref, nil, 400, 7); err != nil {
		return err
	}
	if err := os.WriteFile(fix.sftData, sft.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(fix.prefData, pref.Bytes(), 0o644); err != nil {
		return err
	}
	// A byte-level BPE trained on the task rows; every trained tokenizer
	// carries the Llama 3 special tokens after its BPE ids.
	corpus := strings.Repeat("system user assistant Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n", 50) +
		sft.String() + pref.String()
	tok, err := tokenizer.Train(context.Background(), []tokenizer.Corpus{tokenizer.ReaderCorpus("tasks", strings.NewReader(corpus))},
		tokenizer.TrainOptions{VocabSize: 1000})
	if err != nil {
		return err
	}
	tj, cj, err := tok.MarshalHF()
	if err != nil {
		return err
	}
	cfg := model.Config{VocabSize: tok.VocabSize(), HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 64,
		TieWordEmbeddings: true, InitializerRange: 0.02}
	cfg.Normalize()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 1)
	fix.modelDir = filepath.Join(dir, "base")
	if err := checkpoint.SaveModel(fix.modelDir, cfg, p, checkpoint.SaveOptions{
		Extra: map[string][]byte{tokenizer.TokenizerFile: tj, tokenizer.ConfigFile: cj}}); err != nil {
		return err
	}
	fix.recipe = map[string]string{}
	for _, kind := range []string{posttrain.KindSFT, posttrain.KindRM, posttrain.KindDPO} {
		data := fix.prefData
		if kind == posttrain.KindSFT {
			data = fix.sftData
		}
		text := fmt.Sprintf(`kind: %s
model: %s
seed: 3
workers: 1
data:
  paths: [%s]
  heldout_fraction: 0.1
  shuffle: 64
train:
  steps: %d
  seq_len: 64
  batch: 2
  log_every: 0
optim:
  lr: 3.0e-3
  warmup_steps: 4
  weight_decay: 0.1
eval:
  every: 10
  batches: 2
checkpoint:
  every: %d
  keep: 2
average:
  last: 2
`, kind, fix.modelDir, data, fixtureSteps, fixtureEvery)
		path := filepath.Join(dir, kind+".yaml")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
		fix.recipe[kind] = path
	}
	fix.runs = map[string]string{}
	return nil
}

// finished returns the directory of the uninterrupted fixture run of kind,
// training it on first use.
func finished(t *testing.T, kind string) string {
	t.Helper()
	shared(t)
	fix.mu.Lock()
	defer fix.mu.Unlock()
	if d, ok := fix.runs[kind]; ok {
		return d
	}
	d := filepath.Join(fix.dir, "run-"+kind)
	if out, err := runCLI("-recipe", fix.recipe[kind], "-out", d); err != nil {
		t.Fatalf("%s run: %v\n%s", kind, err, out)
	} else if !strings.Contains(out, fmt.Sprintf("%s: trained %d steps", kind, fixtureSteps)) {
		t.Fatalf("%s run output:\n%s", kind, out)
	}
	fix.runs[kind] = d
	return d
}

// runCLI runs the command in this process.
func runCLI(args ...string) (string, error) {
	var out, errs bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errs)
	return out.String() + errs.String(), err
}

// child is the command started as its own process.
type child struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^$"), done: make(chan struct{})}
	argsJSON, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Env = append(os.Environ(), childEnv+"="+string(argsJSON))
	c.cmd.Stdout, c.cmd.Stderr = &c.stderr, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
	})
	return c
}

// runChild runs the command as its own process and returns its exit code
// and output.
func runChild(t *testing.T, args ...string) (int, string) {
	t.Helper()
	c := startChild(t, args...)
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("posttrain %q did not exit", args)
	}
	return c.cmd.ProcessState.ExitCode(), c.stderr.String()
}

// killWhen polls cond and SIGKILLs the child as soon as it holds; the
// child must not have exited by then.
func (c *child) killWhen(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		select {
		case <-c.done:
			t.Fatalf("the run exited (%v) before %s:\n%s", c.err, what, c.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s:\n%s", what, c.stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the run was not killed by SIGKILL (it ended: %v):\n%s", c.cmd.ProcessState, c.stderr.String())
	}
}

func latestStep(runDir string) int {
	e, err := checkpoint.Latest(filepath.Join(runDir, train.CheckpointsDir))
	if err != nil {
		return -1
	}
	return e.Step
}

// sameWeights fails unless the two model directories hold the same
// tensors with bit-identical float32 values.
func sameWeights(t *testing.T, want, got string) {
	t.Helper()
	wc, wp, err := checkpoint.LoadModel(want)
	if err != nil {
		t.Fatal(err)
	}
	gc, gp, err := checkpoint.LoadModel(got)
	if err != nil {
		t.Fatal(err)
	}
	if wc.HasScoreHead() != gc.HasScoreHead() || len(wp.Layout.Tensors) != len(gp.Layout.Tensors) {
		t.Fatalf("%s and %s hold different models", want, got)
	}
	for i, ti := range wp.Layout.Tensors {
		g := gp.Get(ti.Name)
		if g == nil {
			t.Fatalf("%s lacks %s", got, ti.Name)
		}
		for j, w := range wp.View(i) {
			if math.Float32bits(w) != math.Float32bits(g[j]) {
				t.Fatalf("%s[%d] = %v, want %v (bit-exact): the resumed run diverged", ti.Name, j, g[j], w)
			}
		}
	}
}

// timing are the metrics.jsonl values that measure time, not the run.
var timing = map[string]bool{"elapsed_s": true, "tokens_per_s": true, "gflop_per_s": true, "mfu": true}

// sameMetrics fails unless the two runs' metrics.jsonl hold the same
// records (each train step once, in order) with bit-identical values,
// timings aside: those of the killed run's first process up to its
// checkpoint, and those of the resumed one after it.
func sameMetrics(t *testing.T, wantDir, gotDir string) {
	t.Helper()
	read := func(dir string) ([]train.Record, int) {
		recs, err := train.ReadMetrics(filepath.Join(dir, posttrain.MetricsFile))
		if err != nil {
			t.Fatal(err)
		}
		steps := 0
		for _, r := range recs {
			if r.Kind == "train" {
				if steps++; r.Step != steps {
					t.Fatalf("%s: train record of step %d where step %d was due", dir, r.Step, steps)
				}
			}
		}
		return recs, steps
	}
	want, wantSteps := read(wantDir)
	got, gotSteps := read(gotDir)
	if gotSteps != wantSteps || wantSteps == 0 {
		t.Fatalf("%d train records, want %d", gotSteps, wantSteps)
	}
	if len(want) != len(got) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Kind != w.Kind || g.Step != w.Step || g.Tokens != w.Tokens || g.Skipped != w.Skipped || len(g.Values) != len(w.Values) {
			t.Fatalf("record %d: %s step %d tokens %d %v, want %s step %d tokens %d %v", i, g.Kind, g.Step, g.Tokens, g.Values, w.Kind, w.Step, w.Tokens, w.Values)
		}
		n := 0
		for k, x := range w.Values {
			if timing[k] {
				continue
			}
			n++
			if y, ok := g.Values[k]; !ok || math.Float64bits(x) != math.Float64bits(y) {
				t.Fatalf("%s step %d: %s = %v, want %v (bit-exact)", w.Kind, w.Step, k, y, x)
			}
		}
		if w.Kind == "train" && w.Values["loss"] == 0 || n == 0 {
			t.Fatalf("%s step %d has no values to compare: %v", w.Kind, w.Step, w.Values)
		}
	}
}

// TestKillResume: a run killed with SIGKILL after a checkpoint and resumed
// with -resume ends with bit-identical weights and metrics to the run that
// was never interrupted, for each kind. The run is killed as soon as the
// checkpoint of step killAt (or a later one) is on disk: mid-step, in a
// held-out evaluation or while checkpointing, wherever it then is.
func TestKillResume(t *testing.T) {
	for _, c := range []struct {
		kind   string
		killAt int
	}{{posttrain.KindSFT, 5}, {posttrain.KindRM, 10}, {posttrain.KindDPO, 15}} {
		t.Run(c.kind, func(t *testing.T) {
			want := finished(t, c.kind)
			dir := filepath.Join(t.TempDir(), "run")
			args := []string{"-recipe", fix.recipe[c.kind], "-out", dir}
			ch := startChild(t, args...)
			ch.killWhen(t, fmt.Sprintf("the checkpoint of step %d", c.killAt), func() bool { return latestStep(dir) >= c.killAt })
			from := latestStep(dir)
			if _, err := os.Stat(filepath.Join(dir, posttrain.FinalDir)); from >= fixtureSteps || err == nil {
				t.Fatalf("the run got to step %d (final/: %v) before the kill; the test needs a longer run", from, err)
			}
			t.Logf("killed after the checkpoint of step %d", from)
			out, err := runCLI(append([]string{"-resume"}, args...)...)
			if err != nil || !strings.Contains(out, fmt.Sprintf("trained %d steps", fixtureSteps)) {
				t.Fatalf("resume: %v\n%s", err, out)
			}
			sameWeights(t, filepath.Join(want, posttrain.FinalDir), filepath.Join(dir, posttrain.FinalDir))
			sameMetrics(t, want, dir)
		})
	}
}

// TestKillDuringReference: DPO killed with SIGKILL while it computes the
// reference log-probabilities (after their first sync, before training)
// resumes the computation where it stopped and trains exactly as the
// uninterrupted run did. The killed run is asked for far more steps, so
// that the computation is still going when the first sync lands; resumed
// with the fixture's length, it reuses the stored prefix (the store does
// not depend on the run's length) and computes the rest.
func TestKillDuringReference(t *testing.T) {
	want := finished(t, posttrain.KindDPO)
	dir := filepath.Join(t.TempDir(), "run")
	args := []string{"-recipe", fix.recipe[posttrain.KindDPO], "-out", dir}
	ch := startChild(t, append(args, "train.steps=400")...)
	meta := filepath.Join(dir, posttrain.RefMetaFile)
	ch.killWhen(t, posttrain.RefMetaFile, func() bool { _, err := os.Stat(meta); return err == nil })
	var m struct {
		StepsDone int `json:"steps_done"`
	}
	data, err := os.ReadFile(meta)
	if err != nil || json.Unmarshal(data, &m) != nil {
		t.Fatalf("%s: %v\n%s", meta, err, data)
	}
	if m.StepsDone < 1 || m.StepsDone >= 400 || latestStep(dir) >= 0 {
		t.Fatalf("killed with %d of 400 reference steps stored and checkpoint %d; want a kill mid-computation", m.StepsDone, latestStep(dir))
	}
	t.Logf("killed with %d reference steps stored", m.StepsDone)
	if m.StepsDone >= fixtureSteps {
		t.Logf("the store already covers the %d steps; the resumed computation is not exercised", fixtureSteps)
	}
	out, err := runCLI(append([]string{"-resume"}, args...)...)
	if err != nil || !strings.Contains(out, fmt.Sprintf("trained %d steps", fixtureSteps)) {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	wantRef, err := os.ReadFile(filepath.Join(want, posttrain.RefLogpsFile))
	if err != nil {
		t.Fatal(err)
	}
	gotRef, err := os.ReadFile(filepath.Join(dir, posttrain.RefLogpsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(gotRef) < len(wantRef) || !bytes.Equal(gotRef[:len(wantRef)], wantRef) {
		t.Fatalf("%s (%d bytes) does not begin with the uninterrupted run's (%d bytes)", posttrain.RefLogpsFile, len(gotRef), len(wantRef))
	}
	sameWeights(t, filepath.Join(want, posttrain.FinalDir), filepath.Join(dir, posttrain.FinalDir))
	sameMetrics(t, want, dir)
}

// TestKillTornMetricsLine: metrics.jsonl is written through a buffer
// that is flushed whenever it fills, so between checkpoints the file
// usually ends in the middle of a line; a SIGKILL then leaves that torn
// line behind, and -resume must still continue the run bit-exactly (the
// line belongs to a step after the checkpoint, which resuming drops).
func TestKillTornMetricsLine(t *testing.T) {
	shared(t)
	dir := t.TempDir()
	// About 230 bytes a step: 30 steps between checkpoints overflow the
	// 4 KiB buffer, so the file is torn for the last dozen steps before
	// each of the checkpoints of steps 60 and 90.
	args := []string{"-recipe", fix.recipe[posttrain.KindSFT], "train.steps=90", "checkpoint.every=30", "eval.every=0", "data.heldout_fraction=0"}
	killed := filepath.Join(dir, "killed")
	ch := startChild(t, append([]string{"-out", killed}, args...)...)
	metrics := filepath.Join(killed, posttrain.MetricsFile)
	ch.killWhen(t, "a torn line in metrics.jsonl after the first checkpoint", func() bool {
		if latestStep(killed) < 30 {
			return false
		}
		data, err := os.ReadFile(metrics)
		return err == nil && len(data) > 0 && data[len(data)-1] != '\n'
	})
	from := latestStep(killed)
	if _, err := os.Stat(filepath.Join(killed, posttrain.FinalDir)); from >= 90 || err == nil {
		t.Fatalf("killed after the checkpoint of step %d (final/: %v); want a kill mid-run", from, err)
	}
	t.Logf("killed after the checkpoint of step %d with a torn line", from)
	out, err := runCLI(append([]string{"-resume", "-out", killed}, args...)...)
	if err != nil || !strings.Contains(out, "trained 90 steps") {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	want := filepath.Join(dir, "whole")
	if out, err := runCLI(append([]string{"-out", want}, args...)...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	sameWeights(t, filepath.Join(want, posttrain.FinalDir), filepath.Join(killed, posttrain.FinalDir))
	sameMetrics(t, want, killed)
}

// TestUsageErrors: a command line that is wrong exits 2 with a message
// that says what to fix; a recipe value that is wrong exits 1 naming it.
func TestUsageErrors(t *testing.T) {
	shared(t)
	dir := t.TempDir()
	recipe := fix.recipe[posttrain.KindSFT]
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "-recipe is required"},
		{[]string{"train.steps=3"}, 2, "-recipe is required"},
		{[]string{"-recipe", recipe, "-no-such-flag"}, 2, "flag provided but not defined: -no-such-flag"},
		{[]string{"-recipe", recipe, "-out", dir + "/r", "train.stepz=3"}, 1, `"train.stepz"`},
		{[]string{"-recipe", recipe, "-out", dir + "/r", "optim.lr=fast"}, 1, `"optim.lr" wants a number`},
		{[]string{"-recipe", recipe, "-out", dir + "/r", "train.steps"}, 1, "want key=value"},
		{[]string{"-recipe", filepath.Join(dir, "missing.yaml")}, 1, "missing.yaml"},
		{[]string{"average", "-out", dir + "/avg", "-weights", "1,heavy", a, b}, 2, `-weights: "heavy" is not a number`},
		{[]string{"average", "-out", dir + "/avg", "-weights", "1", a, b}, 2, "-weights has 1 values for 2 inputs"},
		{[]string{"average", "-out", dir + "/avg"}, 2, "usage: posttrain average"},
		{[]string{"data", "-kind", "dpo", "-n", "3", "-out", dir + "/d.jsonl"}, 2, `-kind "dpo": use sft or pref`},
		{[]string{"data", "-n", "0", "-out", dir + "/d.jsonl"}, 2, "usage: posttrain data"},
		{[]string{"data", "-n", "3"}, 2, "usage: posttrain data"},
		{[]string{"score", "-jsonl", fix.prefData}, 2, "usage: posttrain score"},
		{[]string{"score", "-model", fix.modelDir, "-jsonl", fix.prefData, "-seq-len", "-1"}, 2, "-seq-len and -workers must be >= 0"},
	}
	for _, c := range cases {
		code, out := runChild(t, c.args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("posttrain %q: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "r")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused command line created the run directory: %v", err)
	}
}

// TestPrintRecipe: -print-recipe prints the resolved recipe with the
// overrides applied, and refuses an invalid one naming the field.
func TestPrintRecipe(t *testing.T) {
	shared(t)
	recipe := fix.recipe[posttrain.KindDPO]
	out, err := runCLI("-recipe", recipe, "-print-recipe", "-out", "elsewhere", "train.steps=7", "dpo.beta=0.25")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"kind: dpo", "out: elsewhere", "steps: 7", "beta: 0.25", "seq_len: 64", "nll_coef: 0.2"} {
		if !strings.Contains(out, want) {
			t.Errorf("the printed recipe lacks %q:\n%s", want, out)
		}
	}
	// The printed recipe is itself a recipe that resolves to the same.
	printed := filepath.Join(t.TempDir(), "printed.yaml")
	if err := os.WriteFile(printed, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if again, err := runCLI("-recipe", printed, "-print-recipe"); err != nil || again != out {
		t.Errorf("the printed recipe does not reproduce itself (%v):\n%s\nvs\n%s", err, again, out)
	}
	for _, c := range []struct{ override, want string }{
		{"train.steps=-5", "train.steps must be >= 1, got -5"},
		{"dpo.loss=kto", `dpo.loss "kto" is not one of sigmoid, ipo, hinge`},
		{"average.last=3", "average.last must be in [0, checkpoint.keep = 2], got 3"},
		{"kind=ppo", `kind "ppo" is not one of sft, rm, dpo`},
	} {
		out, err := runCLI("-recipe", recipe, "-print-recipe", c.override)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("-print-recipe %s: %v, want %q\n%s", c.override, err, c.want, out)
		}
	}
	if code, out := runChild(t, "-recipe", recipe, "-print-recipe", "train.steps=-5"); code != 1 || !strings.Contains(out, "train.steps must be >= 1, got -5") {
		t.Errorf("-print-recipe of an invalid recipe: exit %d:\n%s", code, out)
	}
}

// TestData: `posttrain data` writes the built-in tasks' rows, exactly the
// tasks package's.
func TestData(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		kind  string
		write func(w *bytes.Buffer) error
		keys  []string
	}{
		{"sft", func(w *bytes.Buffer) error { return tasks.WriteSFT(w, []string{"add", "sort"}, 25, 9) }, []string{"prompt", "completion"}},
		{"pref", func(w *bytes.Buffer) error { return tasks.WritePref(w, []string{"add", "sort"}, 25, 9) }, []string{"prompt", "chosen", "rejected"}},
	} {
		path := filepath.Join(dir, c.kind+".jsonl")
		out, err := runCLI("data", "-kind", c.kind, "-tasks", "add,sort", "-n", "25", "-seed", "9", "-out", path)
		if err != nil || !strings.Contains(out, "wrote 25 "+c.kind+" rows") {
			t.Fatalf("data -kind %s: %v\n%s", c.kind, err, out)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := c.write(&want); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("data -kind %s wrote other rows than tasks:\n%s", c.kind, got)
		}
		lines := 0
		sc := bufio.NewScanner(bytes.NewReader(got))
		for sc.Scan() {
			lines++
			var row map[string]string
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil || len(row) != len(c.keys) {
				t.Fatalf("row %d: %v: %s", lines, err, sc.Bytes())
			}
			for _, k := range c.keys {
				if row[k] == "" {
					t.Fatalf("row %d lacks %s: %s", lines, k, sc.Bytes())
				}
			}
		}
		if lines != 25 {
			t.Errorf("data -kind %s: %d rows, want 25", c.kind, lines)
		}
	}
	if _, err := runCLI("data", "-kind", "sft", "-tasks", "add,calculus", "-n", "3", "-out", filepath.Join(dir, "x.jsonl")); err == nil || !strings.Contains(err.Error(), "calculus") {
		t.Errorf("an unknown task: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed data command left its output: %v", err)
	}
}

// TestAverage: `posttrain average -weights` of two run directories is
// their weighted mean (the final/ models), with the tokenizer.
func TestAverage(t *testing.T) {
	sft, dpo := finished(t, posttrain.KindSFT), finished(t, posttrain.KindDPO)
	out := filepath.Join(t.TempDir(), "avg")
	if msg, err := runCLI("average", "-out", out, "-weights", "1,3", sft, dpo); err != nil || !strings.Contains(msg, "averaged 2 models") {
		t.Fatalf("%v\n%s", err, msg)
	}
	_, a, err := checkpoint.LoadModel(filepath.Join(sft, posttrain.FinalDir))
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := checkpoint.LoadModel(filepath.Join(dpo, posttrain.FinalDir))
	if err != nil {
		t.Fatal(err)
	}
	_, avg, err := checkpoint.LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	differ := 0
	for i, x := range avg.Data {
		want := (float64(a.Data[i]) + 3*float64(b.Data[i])) / 4
		if math.Abs(float64(x)-want) > 1e-6*(1+math.Abs(want)) {
			t.Fatalf("weight %d: %v, want (%v + 3·%v)/4 = %v", i, x, a.Data[i], b.Data[i], want)
		}
		if a.Data[i] != b.Data[i] {
			differ++
		}
	}
	if differ == 0 {
		t.Fatal("the two runs ended with the same weights; the average proves nothing")
	}
	if _, err := tokenizer.Load(out); err != nil {
		t.Errorf("the average has no tokenizer: %v", err)
	}
}

// TestScore: `posttrain score` writes one line per row with the reward
// model of the rm run; a language model is refused.
func TestScore(t *testing.T) {
	rm := finished(t, posttrain.KindRM)
	final := filepath.Join(rm, posttrain.FinalDir)
	rows := filepath.Join(t.TempDir(), "rows.jsonl")
	var in bytes.Buffer
	if err := tasks.WritePref(&in, nil, 12, 5); err != nil {
		t.Fatal(err)
	}
	in.WriteString(`{"messages": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]}` + "\n")
	in.WriteString("{not json\n")
	if err := os.WriteFile(rows, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	scores := filepath.Join(t.TempDir(), "scores.jsonl")
	msg, err := runCLI("score", "-model", final, "-jsonl", rows, "-out", scores)
	if err != nil || !strings.Contains(msg, "scored 13 of 14 rows (1 bad)") {
		t.Fatalf("%v\n%s", err, msg)
	}
	data, err := os.ReadFile(scores)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 14 {
		t.Fatalf("%d output lines for 14 rows:\n%s", len(lines), data)
	}
	for i, line := range lines {
		var s struct {
			Line                     int
			Reward, Chosen, Rejected *float64
			Error                    string
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil || s.Line != i+1 {
			t.Fatalf("line %d: %v: %s", i+1, err, line)
		}
		switch {
		case i < 12 && (s.Chosen == nil || s.Rejected == nil || *s.Chosen == *s.Rejected):
			t.Errorf("preference row %d: %s", i+1, line)
		case i == 12 && s.Reward == nil:
			t.Errorf("SFT row: %s", line)
		case i == 13 && s.Error == "":
			t.Errorf("bad row: %s", line)
		}
	}
	// The same rows on stdin and stdout give the same lines.
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"score", "-model", final, "-jsonl", "-"}, bytes.NewReader(in.Bytes()), &stdout, &stderr); err != nil || stdout.String() != string(data) {
		t.Errorf("score from stdin: %v\n%s", err, stdout.String())
	}
	sft := filepath.Join(finished(t, posttrain.KindSFT), posttrain.FinalDir)
	code, out := runChild(t, "score", "-model", sft, "-jsonl", rows)
	if code != 1 || !strings.Contains(out, "is not a reward model") {
		t.Errorf("score with a language model: exit %d:\n%s", code, out)
	}
}

// TestValidateCLI: `validate` checks the resolved recipe and writes
// nothing; another tool's recipe is named as such; -recipe's help lists only
// post-training recipes.
func TestValidateCLI(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		args    []string
		wantErr string // "" = prints exactly "ok"
	}{
		{"ok", []string{"validate", "-recipe", "dpo_tiny"}, ""},
		{"ok rounds", []string{"validate", "-recipe", "posttrain_tiny", "-out", filepath.Join(dir, "r")}, ""},
		{"index into a string list", []string{"validate", "-recipe", "posttrain_tiny", "rounds.sft.2=optim.lr=1e-3"}, ""},
		{"bad stage override", []string{"validate", "-recipe", "posttrain_tiny", "rounds.sft.2=optim.lrr=1e-3"}, `rounds.sft.2: override "optim.lrr=1e-3": unknown field "lrr"`},
		{"index out of range", []string{"validate", "-recipe", "posttrain_tiny", "rounds.dpo.99=dpo.beta=0.1"}, `"rounds.dpo.99": index 99 is out of range: rounds.dpo has`},
		{"invalid", []string{"validate", "-recipe", "dpo_tiny", "train.steps=-5"}, "train.steps must be >= 1, got -5"},
		{"other tool", []string{"validate", "-recipe", "pretrain_tiny"}, "recipe \"pretrain_tiny\" is a pretrain recipe: run `pretrain -recipe pretrain_tiny`"},
		{"other tool run", []string{"-recipe", "curate_web", "-out", filepath.Join(dir, "c")}, "is a curate recipe"},
		{"other tool print", []string{"-recipe", "pretrain_tiny", "-print-recipe"}, "is a pretrain recipe"},
		{"no recipe", []string{"validate"}, "validate: -recipe is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			err := run(context.Background(), c.args, strings.NewReader(""), &out, &errs)
			if c.wantErr == "" {
				if err != nil || out.String() != "ok\n" {
					t.Fatalf("%v, stdout %q\n%s", err, out.String(), errs.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
			if out.Len() > 0 {
				t.Fatalf("stdout of a failed check: %q", out.String())
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("validation wrote files: %v", entries)
	}
	var out, errs bytes.Buffer
	run(context.Background(), []string{"-h"}, strings.NewReader(""), &out, &errs)
	h := errs.String()
	for _, want := range []string{"dpo_tiny", "posttrain_tiny", "rm_tiny", "sft_tiny", "validate -recipe"} {
		if !strings.Contains(h, want) {
			t.Errorf("help lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "pretrain_tiny") || strings.Contains(h, "curate_web") {
		t.Errorf("help lists other tools' recipes:\n%s", h)
	}
}
