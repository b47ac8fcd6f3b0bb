package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/internal/cli"
	"github.com/herdml/herd/recipes"
)

// TestCopyAndExplain: `pretrain cp` writes the shipped recipe with its
// comments and refuses to overwrite; -explain shows a key's doc and
// value; -threads is a deprecated alias of -workers; a malformed override
// suggests a pretrain key.
func TestCopyAndExplain(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "my.yaml")
	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"cp", "pretrain_tiny", file}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	want, _ := recipes.ReadShipped("pretrain_tiny")
	got, err := os.ReadFile(file)
	if err != nil || !bytes.Equal(got, want) || !bytes.Contains(got, []byte("# A CI-sized pretraining run")) {
		t.Fatalf("cp wrote %q (%v), want the shipped text with its comments", got, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"cp", "pretrain_tiny", file}, "exists; herd does not overwrite it"},
		{[]string{"cp", "sft_tiny", filepath.Join(dir, "x.yaml")}, "is a posttrain recipe"},
		{[]string{"cp", "pretrain_tiny"}, "usage: pretrain cp NAME FILE"},
		{[]string{"-recipe", "pretrain_tiny", "optim.lr"}, "want key=value, e.g. optim.lr=0.003"},
		{[]string{"-recipe", "pretrain_tiny", "-explain", "optim.lerning"}, `pretrain has no recipe key "optim.lerning"`},
		{[]string{"-recipe", "pretrain_tiny", "-workers", "-2"}, "want a number of goroutines >= 0"},
	} {
		out.Reset()
		err := run(context.Background(), c.args, &out, &errs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
	if !bytes.Equal(mustRead(t, file), want) {
		t.Fatal("a refused cp changed the file")
	}
	out.Reset()
	if err := run(context.Background(), []string{"-recipe", file, "-explain", "optim.lr", "optim.lr=1e-3"}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "optim.lr = 0.001\n    peak learning rate (default 3e-3)\n" {
		t.Fatalf("-explain optim.lr printed %q", got)
	}
	out.Reset()
	errs.Reset()
	if err := run(context.Background(), []string{"-recipe", file, "-threads", "3", "-print-recipe"}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "\nworkers: 3\n") || !strings.Contains(errs.String(), "-threads is deprecated; use -workers") {
		t.Fatalf("-threads 3: %s\n%s", out.String(), errs.String())
	}
	if !strings.Contains(out.String(), "# Workers is the number of compute goroutines") {
		t.Fatalf("-print-recipe does not document the keys:\n%s", out.String())
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExitCodes: a bad command line exits 2, a failed run 1.
func TestExitCodes(t *testing.T) {
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"-no-such-flag"}, &out, &errs)
	if code := cli.ExitCode(context.Background(), err); code != 2 {
		t.Errorf("bad flag: exit %d (%v), want 2", code, err)
	}
	err = run(context.Background(), []string{"-recipe", "pretrain_tiny", "-out", t.TempDir(), "data.sources.0.paths=[/nonexistent]"}, &out, &errs)
	if code := cli.ExitCode(context.Background(), err); err == nil || code != 1 {
		t.Errorf("failed run: exit %d (%v), want 1", code, err)
	}
}
