package pretrain

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herdml/herd/data/shard"
	"github.com/herdml/herd/data/tokens"
	"github.com/herdml/herd/data/tokens/tokenstest"
	"github.com/herdml/herd/internal/testenv"
)

// corporaDir is the reference text corpora, relative to this package.
const corporaDir = "../../shared/testdata/corpora"

// corpusDocs splits the start (limit bytes) of each English corpus into
// documents of about size bytes, cut at blank lines.
func corpusDocs(t testing.TB, limit, size int) []shard.Row {
	t.Helper()
	testenv.Testdata(t, corporaDir)
	var rows []shard.Row
	for _, name := range []string{"kjv.txt", "fortunes.txt", "jargon.txt", "debian-reference.en.txt", "dict-devil.txt"} {
		data, err := os.ReadFile(filepath.Join(corporaDir, name))
		if err != nil {
			t.Fatal(err)
		}
		data = data[:min(len(data), limit)]
		var doc strings.Builder
		flush := func() {
			if doc.Len() > 0 {
				rows = append(rows, shard.Row{ID: fmt.Sprintf("%s#%d", name, len(rows)), Text: doc.String(), Source: strings.TrimSuffix(name, ".txt")})
				doc.Reset()
			}
		}
		for _, para := range bytes.Split(data, []byte("\n\n")) {
			doc.Write(para)
			doc.WriteString("\n\n")
			if doc.Len() >= size {
				flush()
			}
		}
		flush()
	}
	return rows
}

// TestLearnsCorpora is the end-to-end check on real text: curated docs →
// BPE tokenizer → token shards → a ~0.3M-parameter model trained on 2
// cores. The held-out loss must fall clearly below the unigram entropy of
// the held-out tokens and keep falling at every evaluation; metrics.jsonl,
// the loss plot and samples must show it.
func TestLearnsCorpora(t *testing.T) {
	if testing.Short() {
		t.Skip("about 30 s on 2 cores; runs without -short")
	}
	start := time.Now()
	rows := corpusDocs(t, 600_000, 1500)
	dir := t.TempDir()
	docs := filepath.Join(dir, "docs")
	tokenstest.WriteDocs(t, docs, rows, 400)
	texts := make([]string, len(rows))
	for i, r := range rows {
		texts[i] = r.Text
	}
	tokDir := filepath.Join(dir, "tokenizer")
	tok := tokenstest.TrainTokenizer(t, tokDir, texts, 1024)
	man, err := tokens.Tokenize(context.Background(), tokens.TokenizeOptions{Inputs: []string{docs}, Out: filepath.Join(dir, "tokens"),
		Tokenizer: tok, TokenizerDir: tokDir, BOS: true, EOS: true, RowGroupDocs: 128})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d documents, %d tokens, prepared in %v", man.Total.Docs, man.Total.Tokens, time.Since(start).Round(time.Millisecond))

	r := Default()
	r.Out = filepath.Join(dir, "run")
	r.Workers = 2
	r.Model = ModelSpec{HiddenSize: 96, IntermediateSize: 256, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2,
		RMSNormEps: 1e-5, RopeTheta: 10000, TieWordEmbeddings: true, InitializerRange: 0.02}
	r.Data = Data{Sources: []Source{{Name: "corpora", Paths: []string{filepath.Join(dir, "tokens")}}}, HeldOut: 0.03, Window: 256, GroupChunks: 8}
	r.Train = Train{Steps: 240, SeqLen: 64, BatchTokens: 1024, MaxBadSteps: 5, LogEvery: 40}
	r.Optim.LR, r.Optim.MinLR, r.Optim.Warmup = 4e-3, 4e-4, 20
	r.Eval = Eval{Every: 60, Tokens: 12288, Batch: 32, Prompts: []string{"And God said"}, SampleTokens: 24, Temperature: 0.8, TopK: 20}
	r.Checkpoint = CheckpointSpec{Every: 80, Keep: 2}
	r.Average.Last = 2
	res := mustRun(t, r, RunOptions{})
	t.Logf("unigram %.3f nats/token; held-out %v; averaged final %.3f; %v in all", res.Unigram, res.Evals, res.FinalEval, time.Since(start).Round(time.Millisecond))

	recs, err := ReadMetrics(filepath.Join(r.Out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var evals []Record
	for _, rec := range recs {
		if rec.Kind == "eval" {
			evals = append(evals, rec)
		}
	}
	if len(evals) != r.Train.Steps/r.Eval.Every || len(evals) != len(res.Evals) {
		t.Fatalf("%d eval records in metrics.jsonl, %d in the result", len(evals), len(res.Evals))
	}
	for i := 1; i < len(evals); i++ {
		if !(evals[i].EvalLoss < evals[i-1].EvalLoss) {
			t.Fatalf("held-out loss stopped improving: step %d %.4f → step %d %.4f", evals[i-1].Step, evals[i-1].EvalLoss, evals[i].Step, evals[i].EvalLoss)
		}
	}
	last := evals[len(evals)-1]
	if margin := last.Unigram - last.EvalLoss; margin < 0.4 {
		t.Fatalf("held-out loss %.3f is not clearly below the unigram baseline %.3f", last.EvalLoss, last.Unigram)
	}
	if res.FinalEval >= last.Unigram-0.4 {
		t.Fatalf("averaged final model's held-out loss %.3f vs unigram %.3f", res.FinalEval, last.Unigram)
	}
	png := readFile(t, filepath.Join(r.Out, "loss.png"))
	svg := readFile(t, filepath.Join(r.Out, "loss.svg"))
	if !bytes.HasPrefix(png, []byte("\x89PNG")) || !bytes.Contains(svg, []byte("held-out")) {
		t.Fatal("loss plot missing or without the held-out curve")
	}
	if len(res.Samples) != 1 || res.Samples[0].Text == "" || len(readFile(t, filepath.Join(r.Out, SamplesFile))) == 0 {
		t.Fatalf("samples: %+v", res.Samples)
	}
	t.Logf("sample: %q → %q", res.Samples[0].Prompt, res.Samples[0].Text)
}
