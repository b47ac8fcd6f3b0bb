package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
)

const corporaDir = "../../../shared/testdata/corpora"

func tinyOptions() trainOptions {
	opt := defaultTrainOptions()
	c := model.Config{VocabSize: vocabSize, HiddenSize: 64, IntermediateSize: 192, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 128, RopeTheta: 10000, TieWordEmbeddings: true}
	c.Normalize()
	opt.Model = c
	opt.Batch, opt.Seq = 16, 128
	opt.Steps, opt.Warmup = 300, 20
	opt.PeakLR, opt.MinLR = 1e-2, 1e-3
	opt.MaxDocSize = 8 << 10
	return opt
}

func corpusFiles(t *testing.T) (train, held []string) {
	t.Helper()
	if _, err := os.Stat(corporaDir); err != nil {
		t.Skipf("reference corpora %s are absent: %v", corporaDir, err)
	}
	// English prose: four books to train on, The Devil's Dictionary held out.
	for _, f := range []string{"kjv.txt", "fortunes.txt", "jargon.txt", "debian-reference.en.txt"} {
		train = append(train, filepath.Join(corporaDir, f))
	}
	return train, []string{filepath.Join(corporaDir, "dict-devil.txt")}
}

// TestLossBelowUnigram trains a tiny model on real English text for 300
// steps and requires its held-out loss to fall well below the unigram
// entropy of the same held-out bytes, and to keep falling.
func TestLossBelowUnigram(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for 300 steps")
	}
	train, held := corpusFiles(t)
	// The demo's own model (0.8M parameters) on 2,048-token batches.
	opt := tinyOptions()
	opt.Model = defaultTrainOptions().Model
	opt.PeakLR, opt.MinLR = 3e-3, 3e-4
	be := kernels.NewCPU(0)
	defer be.Close()
	tr, err := newTrainer(opt, be, train)
	if err != nil {
		t.Fatal(err)
	}
	h, err := unigramEntropy(held, opt, 8)
	if err != nil {
		t.Fatal(err)
	}
	var mid float64
	for tr.step < opt.Steps {
		r, err := tr.trainStep()
		if err != nil {
			t.Fatal(err)
		}
		if r.Skipped {
			t.Fatalf("step %d skipped: loss %v, grad norm %v", tr.step, r.Loss, r.GradNorm)
		}
		if tr.step == opt.Steps/3 {
			if mid, err = evalLoss(tr.m, held, opt, 8); err != nil {
				t.Fatal(err)
			}
		}
	}
	final, err := evalLoss(tr.m, held, opt, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("unigram entropy %.3f nats/byte; held-out loss after %d steps %.3f, after %d steps %.3f", h, opt.Steps/3, mid, opt.Steps, final)
	if final > 0.75*h { // measured: 2.12 against 3.10
		t.Errorf("held-out loss %.3f is not well below the unigram entropy %.3f", final, h)
	}
	if final >= mid {
		t.Errorf("held-out loss stopped improving: %.3f at step %d, %.3f at step %d", mid, opt.Steps/3, final, opt.Steps)
	}
}

// TestResumeBitExact runs 2N steps straight and N steps, a checkpoint, a
// fresh process-like restore and N more, and requires identical bytes.
func TestResumeBitExact(t *testing.T) {
	train, _ := corpusFiles(t)
	opt := tinyOptions()
	const n = 6
	be := kernels.NewCPU(0)
	defer be.Close()
	straight, err := newTrainer(opt, be, train)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 * n {
		if _, err := straight.trainStep(); err != nil {
			t.Fatal(err)
		}
	}
	first, err := newTrainer(opt, be, train)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := first.trainStep(); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := first.save(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opt2 := opt
	opt2.Seed = 999 // the restore must overwrite a different initialisation
	resumed, err := newTrainer(opt2, be, train)
	if err != nil {
		t.Fatal(err)
	}
	if err := resumed.restore(dir); err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := resumed.trainStep(); err != nil {
			t.Fatal(err)
		}
	}
	for name, pair := range map[string][2][]float32{
		"params": {straight.m.Params.Data, resumed.m.Params.Data},
		"adam m": {straight.adam.M.Data, resumed.adam.M.Data},
		"adam v": {straight.adam.V.Data, resumed.adam.V.Data},
	} {
		for i := range pair[0] {
			if pair[0][i] != pair[1][i] {
				t.Fatalf("%s[%d]: straight %v, resumed %v", name, i, pair[0][i], pair[1][i])
			}
		}
	}
	if straight.step != resumed.step || straight.adam.Step != resumed.adam.Step || !reflect.DeepEqual(straight.data.positions(), resumed.data.positions()) {
		t.Fatalf("state differs: steps %d/%d, adam %d/%d, data %+v/%+v", straight.step, resumed.step, straight.adam.Step, resumed.adam.Step, straight.data.positions(), resumed.data.positions())
	}
}

// TestDemoRuns runs the command end to end for a few steps on the test corpus.
func TestDemoRuns(t *testing.T) {
	if _, err := os.Stat(corporaDir); err != nil {
		t.Skipf("reference corpora %s are absent: %v", corporaDir, err)
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-corpus", corporaDir, "-ext", ".txt", "-max-steps", "3", "-batch", "2", "-seq", "32", "-out", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, want := range []string{"held-out loss", "--- sample 1 ---", "checkpoint:"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	if _, err := os.Stat(filepath.Join(out, "metrics.jsonl")); err != nil {
		t.Error(err)
	}
}
