package posttrain

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/data/shard"
	"github.com/herdml/herd/internal/traintest"
)

// rsRecipe is a small rejection-sampling recipe on a random tiny model.
func rsRecipe(t *testing.T) Recipe {
	t.Helper()
	tok := testTokenizer(t)
	cfg := tinyLM()
	dir := traintest.SaveModel(t, cfg, initParams(cfg, 3), tok)
	r := Default()
	r.Kind, r.Model, r.Out, r.Workers = KindRS, dir, filepath.Join(t.TempDir(), "rs"), 2
	r.RS = RS{Tasks: []string{"max", "first"}, Prompts: 5, K: 3, MaxNewTokens: 4, Batch: 4, Chunk: 3}
	return r
}

// TestRSCommandVerifier runs rejection sampling with an external verifier
// that passes exactly the samples of "max" prompts: those prompts give SFT
// rows, the others are dropped as all-failed, and every sample is counted.
func TestRSCommandVerifier(t *testing.T) {
	r := rsRecipe(t)
	r.RS.Verifier = VerifierCommand
	r.RS.Command = `while IFS= read -r l; do case "$l" in *'"task":"max"'*) echo '{"score": 1}';; *) echo '{"score": 0}';; esac; done`
	st, err := runRS(context.Background(), r, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Prompts != 10 || st.Samples != 30 || st.Passed != 15 || st.AllFailed != 5 || st.SFTRows != 5 || st.Pairs != 0 {
		t.Fatalf("stats %+v: want 10 prompts, 30 samples, 15 passed, 5 all-failed, 5 SFT rows, no pairs", st)
	}
	rows := readRS[rsSFTRow](t, filepath.Join(r.Out, RSSFTDir))
	if len(rows) != 5 {
		t.Fatalf("%d SFT rows", len(rows))
	}
	html, err := os.ReadFile(filepath.Join(r.Out, "report.html"))
	if err != nil || !strings.Contains(string(html), "<td>samples a verifier passed</td><td>15 (50.0%)</td>") {
		t.Fatalf("report.html of the run: %v\n%s", err, html)
	}
	for _, row := range rows {
		if row.Task != "max" || !strings.HasPrefix(row.Prompt, "Max:") || row.K != 3 || row.Score != 1 || !strings.Contains(row.Scores, `"pass":true`) {
			t.Fatalf("row %+v", row)
		}
	}
	// A verifier that answers garbage is an error naming the command.
	r2 := rsRecipe(t)
	r2.RS.Verifier, r2.RS.Command = VerifierCommand, `cat >/dev/null; echo nope`
	if _, err := runRS(context.Background(), r2, RunOptions{}); err == nil || !strings.Contains(err.Error(), "rs.command") {
		t.Fatalf("garbage verifier output: err %v", err)
	}
}

// readRS reads every Parquet chunk of a rejection-sampling output folder.
func readRS[T any](t *testing.T, dir string) []T {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "chunk-*.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for _, f := range files {
		rows, err := shard.ReadAll[T](f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rows...)
	}
	return out
}

// TestRSRanksAndRerun checks that two ranks sharing the output folder write
// exactly the chunks one process writes (same bytes), and that a rerun
// skips finished chunks.
func TestRSRanksAndRerun(t *testing.T) {
	r := rsRecipe(t)
	r.RS.Verifier = VerifierBuiltin
	one, err := runRS(context.Background(), r, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if one.Chunks != 4 || one.Prompts != 10 {
		t.Fatalf("one process: %+v, want 4 chunks of 10 prompts", one)
	}
	split := r
	split.Out = filepath.Join(t.TempDir(), "split")
	var sum RSStats
	for rank := range 2 {
		split.RS.Rank, split.RS.World = rank, 2
		st, err := runRS(context.Background(), split, RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sum.add(*st)
	}
	if sum.Chunks != one.Chunks || sum.Prompts != one.Prompts || sum.Passed != one.Passed || sum.SampledTokens != one.SampledTokens {
		t.Fatalf("two ranks %+v, one process %+v", sum, *one)
	}
	for _, sub := range []string{RSSFTDir, RSPrefDir, rsChunks} {
		a, _ := filepath.Glob(filepath.Join(r.Out, sub, "chunk-*"))
		for _, f := range a {
			x, _ := os.ReadFile(f)
			y, err := os.ReadFile(filepath.Join(split.Out, sub, filepath.Base(f)))
			if err != nil {
				t.Fatal(err)
			}
			if sub == rsChunks {
				continue // the stats files hold timings
			}
			if !bytes.Equal(x, y) {
				t.Fatalf("%s/%s differs between one process and two ranks", sub, filepath.Base(f))
			}
		}
	}
	// A rerun does no sampling: every chunk is finished.
	before, _ := os.Stat(filepath.Join(r.Out, RSSFTDir, "chunk-00000.parquet"))
	again, err := runRS(context.Background(), r, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(filepath.Join(r.Out, RSSFTDir, "chunk-00000.parquet"))
	if again.Seconds != 0 || again.Prompts != one.Prompts || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("rerun sampled again: %+v", again)
	}
}

// FuzzRSPrompts feeds arbitrary bytes to the reader of rejection-sampling
// prompt files: it returns prompts or an error naming the file and line,
// never panics, and every prompt it returns is non-empty.
func FuzzRSPrompts(f *testing.F) {
	f.Add([]byte(`{"prompt": "Max: 1 2 3"}` + "\n" + `{"prompt": "hello"}`))
	f.Add([]byte("\n\n{\"prompt\": \"\"}\n"))
	f.Add([]byte(`{"prompt": 7}`))
	f.Add([]byte("not json\n"))
	f.Add([]byte(strings.Repeat("x", 300)))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "prompts.jsonl")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r := Default()
		r.Data.Paths = []string{path}
		r.Data.MaxLineBytes = 256
		ps, err := rsPrompts(&r, &r.RS)
		if err != nil {
			if !strings.Contains(err.Error(), path) && !strings.Contains(err.Error(), "no prompts") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, p := range ps {
			if p.Text == "" {
				t.Fatal("empty prompt returned")
			}
		}
	})
}
