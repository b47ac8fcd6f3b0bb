package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/tokenizer"
	tokfiles "github.com/herdml/herd/data/tokens"
	"github.com/herdml/herd/internal/dirlock"
	"github.com/herdml/herd/pretrain"
)

// The regression tests of issue 8 ("trustworthy runs") for pretrain: each
// reproduces a way a run lost data or silently used the wrong inputs.

// tree lists every path under root with its content, for before/after
// comparisons.
func tree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		b.WriteString(rel)
		if info.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			b.WriteString("=" + string(data))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

func runCLI(args ...string) (string, error) {
	var out, errs bytes.Buffer
	err := run(context.Background(), args, &out, &errs)
	return out.String() + errs.String(), err
}

// trained tokenizes the fixture and trains the tiny run once; it returns
// the directory, the token folder and the run directory.
func trained(t *testing.T) (dir, tokens, runDir string) {
	t.Helper()
	dir = t.TempDir()
	docs, tokDir, _ := fixture(t, dir)
	tokens = filepath.Join(dir, "tokens")
	if out, err := runCLI("tokenize", "-tokenizer", tokDir, "-out", tokens, docs); err != nil {
		t.Fatalf("tokenize: %v\n%s", err, out)
	}
	runDir = filepath.Join(dir, "run")
	if out, err := runCLI(tinyArgs(runDir, tokens)...); err != nil {
		t.Fatalf("train: %v\n%s", err, out)
	}
	return dir, tokens, runDir
}

// Item 1: `pretrain average -out DIR` deleted whatever was at DIR (a user's
// files, "..", ".", one of its own inputs); `pretrain -out RUN` replaced a
// user's RUN/final/.
func TestAverageNeverDestroys(t *testing.T) {
	dir, _, runDir := trained(t)
	ck := filepath.Join(runDir, pretrain.CheckpointsDir)
	in1, in2 := filepath.Join(ck, "step-000006"), filepath.Join(ck, "step-000008")
	user := filepath.Join(dir, "thesis")
	os.MkdirAll(user, 0o755)
	os.WriteFile(filepath.Join(user, "chapter1.tex"), []byte("years of work"), 0o644)
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	os.Chdir(user)
	for _, out := range []string{user, ".", "..", filepath.Join(user, ".."), in2, ck, filepath.Join(in1, "sub")} {
		before := tree(t, dir)
		_, err := runCLI("average", "-out", out, in1, in2)
		if err == nil {
			t.Errorf("average -out %s: accepted", out)
		}
		if tree(t, dir) != before {
			t.Fatalf("average -out %s failed (%v) but changed files", out, err)
		}
	}
	// A fresh directory, then the same one again (its own output), work;
	// a leftover of an interrupted average there is cleaned.
	avg := filepath.Join(dir, "avg")
	os.MkdirAll(filepath.Join(dir, ".avg.tmp-42", "x"), 0o755)
	for range 2 {
		if out, err := runCLI("average", "-out", avg, in1, in2); err != nil {
			t.Fatalf("average into its own directory: %v\n%s", err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".avg.tmp-42")); !os.IsNotExist(err) {
		t.Errorf("leftover of an interrupted average survived: %v", err)
	}
}

func TestRunNeverReplacesUserFiles(t *testing.T) {
	dir, tokens, runDir := trained(t)
	// A user's directory as -out: refused, untouched.
	user := filepath.Join(dir, "project")
	os.MkdirAll(filepath.Join(user, "final"), 0o755)
	os.WriteFile(filepath.Join(user, "final", "paper.pdf"), []byte("pdf"), 0o644)
	os.WriteFile(filepath.Join(user, "recipe.yaml"), []byte("mine"), 0o644)
	before := tree(t, user)
	if _, err := runCLI(tinyArgs(user, tokens)...); err == nil || !strings.Contains(err.Error(), ".herd-output") {
		t.Errorf("training into a user's directory: %v", err)
	}
	if tree(t, user) != before {
		t.Error("a refused run changed the user's directory")
	}
	// A user's final/ inside herd's own run: the finished run's -resume
	// refuses to replace it.
	final := filepath.Join(runDir, pretrain.FinalDir)
	os.RemoveAll(final)
	os.MkdirAll(final, 0o755)
	os.WriteFile(filepath.Join(final, "paper.pdf"), []byte("pdf"), 0o644)
	if _, err := runCLI(append([]string{"-resume"}, tinyArgs(runDir, tokens)...)...); err == nil {
		t.Error("resume replaced a final/ that herd did not write")
	}
	if data, err := os.ReadFile(filepath.Join(final, "paper.pdf")); err != nil || string(data) != "pdf" {
		t.Errorf("the user's final/ was damaged: %v", err)
	}
}

// Item 4: pretrain read every tokens-*.parquet of a folder: stale shards of
// an earlier tokenize, a half-finished tokenize (no manifest), and a listed
// but deleted shard skipped silently.
func TestManifestIsTheTruth(t *testing.T) {
	dir := t.TempDir()
	docs, tokDir, _ := fixture(t, dir)
	// Two inputs, then only one: the second shard is stale.
	docs2 := filepath.Join(dir, "docs2")
	os.MkdirAll(docs2, 0o755)
	data, _ := os.ReadFile(filepath.Join(docs, "docs-00000.parquet"))
	os.WriteFile(filepath.Join(docs2, "docs-00001.parquet"), data, 0o644)
	tokens := filepath.Join(dir, "tokens")
	if out, err := runCLI("tokenize", "-tokenizer", tokDir, "-out", tokens, docs, docs2); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := runCLI("tokenize", "-tokenizer", tokDir, "-out", tokens, docs); err != nil || !strings.Contains(out, "1 shards, 200 documents") {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(tokens, "tokens-00001.parquet")); !os.IsNotExist(err) {
		t.Errorf("the stale shard of the first tokenize is still there: %v", err)
	}
	// A shard copied in by hand is not trained on: naming it is refused.
	shard0 := filepath.Join(tokens, "tokens-00000.parquet")
	data, _ = os.ReadFile(shard0)
	os.WriteFile(filepath.Join(tokens, "tokens-00007.parquet"), data, 0o644)
	_, err := runCLI(tinyArgs(filepath.Join(dir, "r1"), filepath.Join(tokens, "tokens-*.parquet"))...)
	if err == nil || !strings.Contains(err.Error(), "tokens-00007.parquet is not listed") {
		t.Errorf("an unlisted shard named by a pattern: %v", err)
	}
	os.Remove(filepath.Join(tokens, "tokens-00007.parquet"))
	// No manifest (an unfinished tokenize): refused.
	man := filepath.Join(tokens, tokfiles.ManifestFile)
	manData, _ := os.ReadFile(man)
	os.Remove(man)
	if _, err := runCLI(tinyArgs(filepath.Join(dir, "r2"), tokens)...); err == nil || !strings.Contains(err.Error(), "has no manifest.json") {
		t.Errorf("a token folder without manifest: %v", err)
	}
	os.WriteFile(man, manData, 0o644)
	// A listed shard that is gone, or changed: refused.
	os.Rename(shard0, shard0+".bak")
	if _, err := runCLI(tinyArgs(filepath.Join(dir, "r3"), tokens)...); err == nil || !strings.Contains(err.Error(), "cannot be read") {
		t.Errorf("a listed shard deleted: %v", err)
	}
	os.Rename(shard0+".bak", shard0)
	os.WriteFile(shard0, append(data, 0), 0o644)
	if _, err := runCLI(tinyArgs(filepath.Join(dir, "r4"), tokens)...); err == nil || !strings.Contains(err.Error(), "changed after tokenize") {
		t.Errorf("a listed shard changed: %v", err)
	}
}

// Item 5: the manifest stored the tokenizer directory as typed, resolved
// against the current directory at training time; a different tokenizer
// with the same vocabulary size was accepted.
func TestTokenizerIdentity(t *testing.T) {
	dir := t.TempDir()
	docs, _, tok := fixture(t, dir)
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.MkdirAll(a, 0o755)
	os.MkdirAll(b, 0o755)
	os.Chdir(a)
	if err := tok.WriteHF("tok"); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens")
	if out, err := runCLI("tokenize", "-tokenizer", "tok", "-out", tokens, docs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	m, err := tokfiles.ReadManifest(tokens)
	if err != nil || m.Tokenizer.Dir != filepath.Join(a, "tok") {
		t.Fatalf("manifest tokenizer dir %q (%v), want the absolute %q", m.Tokenizer.Dir, err, filepath.Join(a, "tok"))
	}
	// Another tokenizer of the same size in another ./tok.
	other, err := tokenizer.Train(context.Background(), []tokenizer.Corpus{tokenizer.ReaderCorpus("x", strings.NewReader(strings.Repeat("hello world, other text entirely; ", 400)))}, tokenizer.TrainOptions{VocabSize: tok.VocabSize(), MinFrequency: 1})
	if err != nil {
		t.Fatal(err)
	}
	os.Chdir(b)
	if err := other.WriteHF("tok"); err != nil {
		t.Fatal(err)
	}
	// Without tokenizer=: the shards' own (absolute) tokenizer ships.
	runDir := filepath.Join(dir, "run")
	if out, err := runCLI(tinyArgs(runDir, tokens)...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got, _ := os.ReadFile(filepath.Join(runDir, "final", tokenizer.TokenizerFile))
	want, _ := os.ReadFile(filepath.Join(a, "tok", tokenizer.TokenizerFile))
	if !bytes.Equal(got, want) {
		t.Error("final/ ships another tokenizer than the one the shards were made with")
	}
	// tokenizer=./tok (the other one): refused, unless overridden.
	args := append(tinyArgs(filepath.Join(dir, "run2"), tokens), "tokenizer=tok")
	if _, err := runCLI(args...); err == nil || !strings.Contains(err.Error(), "is not the one the token shards were made with") {
		t.Errorf("a different tokenizer of the same size: %v", err)
	}
	if out, err := runCLI(append([]string{"-allow-tokenizer-mismatch"}, args...)...); err != nil {
		t.Errorf("-allow-tokenizer-mismatch: %v\n%s", err, out)
	}
}

// Item 6: two pretrain processes on one run directory both ran.
func TestRunDirectoryLocked(t *testing.T) {
	if os.Getenv("HERD_PRETRAIN_MAIN") != "" {
		var args []string
		if err := json.Unmarshal([]byte(os.Getenv("HERD_PRETRAIN_MAIN")), &args); err != nil {
			panic(err)
		}
		os.Args = append([]string{"pretrain"}, args...)
		main()
	}
	dir := t.TempDir()
	docs, tokDir, _ := fixture(t, dir)
	tokens := filepath.Join(dir, "tokens")
	if out, err := runCLI("tokenize", "-tokenizer", tokDir, "-out", tokens, docs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	runDir := filepath.Join(dir, "run")
	args := append(tinyArgs(runDir, tokens), "train.steps=100000", "stages=null", "eval.every=0", "checkpoint.every=1")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunDirectoryLocked$")
	argsJSON, _ := json.Marshal(args)
	cmd.Env = append(os.Environ(), "HERD_PRETRAIN_MAIN="+string(argsJSON))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, func() bool {
		_, err := checkpoint.Latest(filepath.Join(runDir, pretrain.CheckpointsDir))
		return err == nil
	}, &stderr)
	// Bounded, in case the second writer is let in (it would train on).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errs bytes.Buffer
	err := run(ctx, append([]string{"-resume"}, args...), &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "in use by pid "+strconvItoa(cmd.Process.Pid)) {
		t.Errorf("a second writer of the run directory: %v", err)
	}
	// Item 8: SIGINT saves a checkpoint and exits 130 (SIGTERM: 143).
	cmd.Process.Signal(syscall.SIGINT)
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit code after SIGINT: %d (%v), want 130\n%s", code, err, stderr.String())
	}
	if _, err := checkpoint.Latest(filepath.Join(runDir, pretrain.CheckpointsDir)); err != nil {
		t.Errorf("no checkpoint after SIGINT: %v", err)
	}
	// The lock is gone with the process: the directory can be taken again.
	l, err := dirlock.Acquire(runDir, "run directory")
	if err != nil {
		t.Errorf("the lock outlived its holder: %v", err)
	}
	l.Release()
}

func strconvItoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func waitFor(t *testing.T, cond func() bool, log *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out; child stderr:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Item 7: a refused -resume had already overwritten recipe.yaml; a resume
// with a changed recipe only warned, and re-entered a finished stage with a
// fresh schedule.
func TestResumeRecipeChanges(t *testing.T) {
	dir, tokens, runDir := trained(t)
	_ = dir
	recipeFile := filepath.Join(runDir, pretrain.RecipeFile)
	resume := func(extra ...string) (string, error) {
		var flags []string
		for len(extra) > 0 && strings.HasPrefix(extra[0], "-") {
			flags, extra = append(flags, extra[0]), extra[1:]
		}
		return runCLI(append(append([]string{"-resume"}, flags...), append(tinyArgs(runDir, tokens), extra...)...)...)
	}
	cases := []struct {
		extra []string
		want  string // error substring; "" = accepted
	}{
		{[]string{"optim.lr=1e-2"}, "optim.lr: 0.003 → 0.01"},
		{[]string{"seed=7", "model.rms_norm_eps=1e-6"}, "seed: 1 → 7"},
		// Extending the main stage of a finished run would re-enter it
		// after annealing.
		{[]string{"train.steps=10"}, "would re-enter a stage"},
		// Safe: evaluation, checkpoint cadence, extending the last stage.
		{[]string{"eval.every=2", "checkpoint.keep=4", "checkpoint.every=1"}, ""},
		{[]string{"stages=[{name: anneal, kind: anneal, steps: 4, lr: 1e-3}]"}, ""},
	}
	for _, c := range cases {
		before := tree(t, runDir)
		out, err := resume(c.extra...)
		if c.want == "" {
			if err != nil {
				t.Errorf("%v: %v\n%s", c.extra, err, out)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "-force") {
			t.Errorf("%v: %v, want an error naming %q and -force", c.extra, err, c.want)
		}
		if tree(t, runDir) != before {
			t.Errorf("%v: the refused resume changed the run directory", c.extra)
		}
	}
	saved, _ := os.ReadFile(recipeFile)
	if !strings.Contains(string(saved), "steps: 4") {
		t.Errorf("recipe.yaml is not the accepted resume's:\n%s", saved)
	}
	if out, err := resume("-force", "optim.lr=1e-2", "stages=[{name: anneal, kind: anneal, steps: 4, lr: 1e-3}]"); err != nil {
		t.Errorf("-force: %v\n%s", err, out)
	}
}

// Item 9: interrupted runs left *.tmp-* files and directories behind.
func TestLeftoversCleaned(t *testing.T) {
	dir, tokens, runDir := trained(t)
	_ = dir
	for _, p := range []string{filepath.Join(tokens, ".tokens-00000.parquet.tmp-123"), filepath.Join(runDir, ".metrics.jsonl.tmp-9")} {
		os.WriteFile(p, []byte("partial"), 0o644)
	}
	os.MkdirAll(filepath.Join(runDir, ".final.tmp-77", "x"), 0o755)
	docs := filepath.Join(dir, "docs")
	if out, err := runCLI("tokenize", "-tokenizer", filepath.Join(dir, "tok"), "-out", tokens, docs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := runCLI(append([]string{"-resume"}, tinyArgs(runDir, tokens)...)...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, d := range []string{tokens, runDir} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("leftover %s in %s", e.Name(), d)
			}
		}
	}
}
