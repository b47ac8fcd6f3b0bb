package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/shard"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/pretrain"
)

// TestPipeline runs the CLI path of the demo at CI size: curated docs
// shards → `pretrain tokenize` → `pretrain -recipe pretrain_tiny` with
// overrides → `-resume` of the finished run → `pretrain average`.
func TestPipeline(t *testing.T) {
	dir := t.TempDir()
	docs, tokDir, tok := fixture(t, dir)
	tokens := filepath.Join(dir, "tokens")
	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"tokenize", "-tokenizer", tokDir, "-out", tokens, docs}, &out, &errs); err != nil {
		t.Fatalf("%v\n%s", err, errs.String())
	}
	if !strings.Contains(out.String(), "1 shards, 200 documents") {
		t.Fatalf("tokenize output: %s", out.String())
	}
	runDir := filepath.Join(dir, "run")
	args := tinyArgs(runDir, tokens)
	out.Reset()
	if err := run(context.Background(), args, &out, &errs); err != nil {
		t.Fatalf("%v\n%s", err, errs.String())
	}
	for _, want := range []string{"trained 8 steps, 4096 tokens", "held-out loss of the last checkpoint (step 8)",
		"held-out loss of the average of steps [7 8]", "unigram baseline", "final model: " + filepath.Join(runDir, "final") + " (the average; average.keep = average)",
		"samples of the final model:\n--- sample 1 ---\nfunc "} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, f := range []string{"final/config.json", "final/tokenizer.json", "final/model.safetensors", "metrics.jsonl", "loss.png", "loss.svg", "metrics.png", "report.html", "recipe.yaml", "samples.jsonl"} {
		if _, err := os.Stat(filepath.Join(runDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	// The saved recipe reproduces the run's settings.
	saved, err := os.ReadFile(filepath.Join(runDir, "recipe.yaml"))
	if err != nil || !bytes.Contains(saved, []byte("steps: 6")) || !bytes.Contains(saved, []byte(fmt.Sprintf("vocab_size: %d", tok.VocabSize()))) {
		t.Fatalf("resolved recipe: %v\n%s", err, saved)
	}
	// Rerunning without -resume is refused; -resume of a finished run only
	// re-evaluates.
	if err := run(context.Background(), args, &out, &errs); err == nil || !strings.Contains(err.Error(), "-resume") {
		t.Fatalf("second run without -resume: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), append([]string{"-resume"}, args...), &out, &errs); err != nil || !strings.Contains(out.String(), "trained 8 steps") {
		t.Fatalf("resume of a finished run: %v\n%s", err, out.String())
	}
	// Ctrl-C (a cancelled context) saves a checkpoint and exits cleanly;
	// -resume finishes the run.
	intDir := filepath.Join(dir, "interrupted")
	intArgs := append(append([]string{}, args...), "train.steps=400", "stages=null")
	intArgs[3] = intDir // the -out flag's value
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // also ends the watcher when the run fails early
	go func() {
		for ctx.Err() == nil {
			if recs, err := pretrain.ReadMetrics(filepath.Join(intDir, pretrain.MetricsFile)); err == nil && len(recs) >= 3 {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	out.Reset()
	if err := run(ctx, intArgs, &out, &errs); err != nil || !strings.Contains(out.String(), "interrupted after step") {
		t.Fatalf("interrupted run: %v\n%s", err, out.String())
	}
	last, err := checkpoint.Latest(filepath.Join(intDir, pretrain.CheckpointsDir))
	if err != nil || last.Step < 3 || last.Step >= 400 {
		t.Fatalf("checkpoint after Ctrl-C: %+v %v", last, err)
	}
	out.Reset()
	if err := run(context.Background(), append([]string{"-resume"}, append(intArgs, "train.steps=12")...), &out, &errs); err != nil {
		t.Fatalf("resume after Ctrl-C: %v", err)
	}

	out.Reset()
	ck := filepath.Join(runDir, pretrain.CheckpointsDir)
	// final/ is the average of the annealing stage's two checkpoints
	// (steps 7 and 8), none of the main stage's.
	if err := run(context.Background(), []string{"average", "-out", filepath.Join(dir, "avg"), filepath.Join(ck, "step-000007"), filepath.Join(ck, "step-000008")}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "avg", "model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(runDir, "final", "model.safetensors"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatal("pretrain average of the annealing stage's checkpoints differs from final/")
	}
}

// TestRecipeErrorsCLI: a bad recipe file fails with its name, line and
// column; a bad override names the key.
func TestRecipeErrorsCLI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("train:\n  steps: 10\n  sequence_len: 64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"-recipe", path}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml: [3:3] unknown field \"sequence_len\"") {
		t.Fatalf("bad recipe: %v", err)
	}
	err = run(context.Background(), []string{"-recipe", "pretrain_tiny", "optim.lr=fast"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), `"optim.lr" wants a number`) {
		t.Fatalf("bad override: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"-recipe", "pretrain_tiny", "-print-recipe", "optim.lr=1e-3"}, &out, &errs); err != nil || !strings.Contains(out.String(), "lr: 0.001") {
		t.Fatalf("print-recipe: %v\n%s", err, out.String())
	}
}

// fixture writes 200 small Go documents as a curated docs shard and
// trains a 600-id tokenizer on them, under dir.
func fixture(t *testing.T, dir string) (docs, tokDir string, tok *tokenizer.Tokenizer) {
	t.Helper()
	docs = filepath.Join(dir, "docs")
	if err := os.MkdirAll(docs, 0o755); err != nil {
		t.Fatal(err)
	}
	var rows []shard.Row
	var all strings.Builder
	for i := range 200 {
		text := fmt.Sprintf("func f%d(x int) int {\n\treturn x * %d + %d\n}\n", i, i%7, i%13)
		rows = append(rows, shard.Row{ID: fmt.Sprint(i), Text: text, Source: "go"})
		all.WriteString(text)
	}
	w, err := shard.Create[shard.Row](filepath.Join(docs, "docs-00000.parquet"), 50)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rows...); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	tok, err = tokenizer.Train(context.Background(), []tokenizer.Corpus{tokenizer.ReaderCorpus("go", strings.NewReader(all.String()))}, tokenizer.TrainOptions{VocabSize: 600})
	if err != nil {
		t.Fatal(err)
	}
	tokDir = filepath.Join(dir, "tok")
	if err := tok.WriteHF(tokDir); err != nil {
		t.Fatal(err)
	}
	return docs, tokDir, tok
}

// tinyArgs are the arguments of a seconds-long pretrain_tiny run (6 main
// steps + 2 annealing steps) on the token shards in tokens.
func tinyArgs(runDir, tokens string) []string {
	return []string{"-recipe", "pretrain_tiny", "-out", runDir, "-workers", "2",
		"data.sources=[{name: go, paths: [" + tokens + "]}]", "data.heldout_fraction=0.1",
		"model.hidden_size=32", "model.intermediate_size=64", "model.num_hidden_layers=1",
		"train.steps=6", "train.batch_tokens=512", "train.micro_batch=2", "train.seq_len=64", "optim.warmup_steps=1",
		"eval.every=3", "eval.tokens=1024", "eval.prompts=[\"func \"]", "eval.sample_tokens=8",
		"checkpoint.every=2", "stages=[{name: anneal, kind: anneal, steps: 2, lr: 1e-3}]", "average.last=2", "average.keep=average"}
}

// TestValidateCLI: `validate` and -print-recipe check the resolved recipe;
// an invalid one fails with every problem and prints nothing on stdout.
func TestValidateCLI(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		args    []string
		wantOut string // substring of stdout; "" = stdout must be empty
		wantErr string // "" = success
	}{
		{"validate ok", []string{"validate", "-recipe", "pretrain_tiny"}, "ok\n", ""},
		{"validate override", []string{"validate", "-recipe", "pretrain_tiny", "optim.lr=1e-3", "stages.0.steps=10"}, "ok\n", ""},
		{"validate short run", []string{"validate", "-recipe", "pretrain_tiny", "train.steps=3"},
			"note: optim.warmup_steps 30 exceeds the run (train.steps 3): warming up over 3 steps\nok\n", ""},
		{"validate negative steps", []string{"validate", "-recipe", "pretrain_tiny", "train.steps=-5"}, "", "train.steps must be >= 0, got -5"},
		{"validate schedule", []string{"validate", "-recipe", "pretrain_tiny", "optim.schedule=cosin"}, "", `schedule "cosin" is not one of`},
		{"validate model", []string{"validate", "-recipe", "pretrain_tiny", "model.hidden_size=130"}, "", "must divide hidden_size (130)"},
		{"validate index out of range", []string{"validate", "-recipe", "pretrain_tiny", "stages.5.steps=1"}, "", "index 5 is out of range: stages has 2 elements"},
		{"validate other tool", []string{"validate", "-recipe", "sft_tiny"}, "", "recipe \"sft_tiny\" is a posttrain recipe: run `posttrain -recipe sft_tiny`"},
		{"validate no recipe", []string{"validate"}, "", "validate: -recipe is required (a file or one of: pretrain_llama3_8b, pretrain_tiny)"},
		{"print negative steps", []string{"-recipe", "pretrain_tiny", "-print-recipe", "train.steps=-5"}, "", "train.steps must be >= 0, got -5"},
		{"print schedule", []string{"-recipe", "pretrain_tiny", "-print-recipe", "optim.schedule=cosin"}, "", `schedule "cosin"`},
		{"print index", []string{"-recipe", "pretrain_tiny", "-print-recipe", "stages.0.steps=17", "data.sources.0.weight=0.5"}, "    steps: 17\n", ""},
		{"print other tool", []string{"-recipe", "curate_web", "-print-recipe"}, "", "is a curate recipe"},
		{"run other tool", []string{"-recipe", "dpo_tiny", "-out", filepath.Join(dir, "x")}, "", "is a posttrain recipe"},
		{"required", []string{}, "", "-recipe is required (a file or one of: pretrain_llama3_8b, pretrain_tiny)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			err := run(context.Background(), c.args, &out, &errs)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("%v\n%s", err, errs.String())
				}
			} else if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
			if c.wantOut == "" && out.Len() > 0 || !strings.Contains(out.String(), c.wantOut) {
				t.Fatalf("stdout %q, want %q", out.String(), c.wantOut)
			}
			if c.name == "validate ok" && out.String() != "ok\n" {
				t.Fatalf("stdout %q, want exactly ok", out.String())
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("validation wrote files: %v", entries)
	}
	// The -recipe help lists only pretraining recipes.
	var out, errs bytes.Buffer
	run(context.Background(), []string{"-h"}, &out, &errs)
	if h := errs.String(); !strings.Contains(h, "(pretrain_llama3_8b, pretrain_tiny;") || strings.Contains(h, "curate_web") || strings.Contains(h, "dpo_tiny") {
		t.Fatalf("help:\n%s", h)
	}
}

// TestShortRunClampsWarmup: `train.steps=3` of pretrain_tiny (warmup 30)
// trains, warming up over the 3 steps, and says so in the log.
func TestShortRunClampsWarmup(t *testing.T) {
	dir := t.TempDir()
	docs, tokDir, _ := fixture(t, dir)
	tokens := filepath.Join(dir, "tokens")
	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"tokenize", "-tokenizer", tokDir, "-out", tokens, docs}, &out, &errs); err != nil {
		t.Fatalf("%v\n%s", err, errs.String())
	}
	var args []string
	for _, a := range tinyArgs(filepath.Join(dir, "run"), tokens) {
		if a != "optim.warmup_steps=1" { // keep the recipe's 30
			args = append(args, a)
		}
	}
	args = append(args, "train.steps=3", "stages=null", "average.last=0", "eval.every=0")
	out.Reset()
	errs.Reset()
	if err := run(context.Background(), args, &out, &errs); err != nil {
		t.Fatalf("%v\n%s", err, errs.String())
	}
	if !strings.Contains(out.String(), "trained 3 steps") {
		t.Fatalf("output:\n%s", out.String())
	}
	if !strings.Contains(errs.String(), "optim.warmup_steps 30 exceeds the run (train.steps 3): warming up over 3 steps") {
		t.Fatalf("the clamp is not logged:\n%s", errs.String())
	}
}
