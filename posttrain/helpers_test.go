package posttrain

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/modeltest"
	"github.com/herdml/herd/tasks"
	"github.com/herdml/herd/train"
)

// testVocab is the number of ids of testTokenizer: 256 bytes, 88 merges
// and the 256 Llama 3 special tokens.
const testVocab = 600

// testTokenizer is a tiny byte-level BPE tokenizer of testVocab ids
// trained on the chat template's words and preference rows.
func testTokenizer(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	return traintest.ChatTokenizer(t, testVocab, tasks.WritePref)
}

// tinyLM is modeltest's tiny configuration (untied head, llama3 RoPE
// scaling) with the test tokenizer's vocabulary and room for chat
// sequences of up to 160 tokens.
func tinyLM() model.Config {
	c := modeltest.TinyConfig(false, true)
	c.VocabSize = testVocab
	c.MaxPositionEmbeddings = 160
	return c
}

// initParams returns freshly initialised parameters of c with the norm
// weights moved away from 1, so that their gradients are generic.
func initParams(c model.Config, seed uint64) *model.Params {
	p := model.NewParams(model.NewLayout(c))
	p.Init(c, seed)
	rng := rand.New(rand.NewPCG(seed, 99))
	for i, ti := range p.Layout.Tensors {
		if len(ti.Shape) == 1 {
			for j := range p.View(i) {
				p.View(i)[j] += float32(rng.NormFloat64() * 0.1)
			}
		}
	}
	return p
}

// taskRows are n rows of the built-in tasks: preference rows
// (tasks.WritePref) or SFT rows (tasks.WriteSFT).
func taskRows(t testing.TB, pref bool, n int, seed uint64) []string {
	t.Helper()
	var buf bytes.Buffer
	write := tasks.WriteSFT
	if pref {
		write = tasks.WritePref
	}
	if err := write(&buf, nil, n, seed); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

// writeLines writes JSONL lines to a new file and returns its path.
func writeLines(t testing.TB, lines []string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rows.jsonl")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testRecipe is a small, fast recipe of kind: rows in reading order, no
// held-out split, no intermediate checkpoints or evaluations.
func testRecipe(t testing.TB, kind, modelDir string, steps, batch int, data string) Recipe {
	r := Default()
	r.Kind, r.Model, r.Out = kind, modelDir, filepath.Join(t.TempDir(), "run")
	r.Workers = 2
	r.Data.Paths = []string{data}
	r.Data.HeldOut = 0
	r.Data.Shuffle = 1
	r.Train.Steps, r.Train.Batch, r.Train.SeqLen = steps, batch, 96
	r.Train.LogEvery = 0
	r.Eval.Every = 0
	r.Checkpoint.Every = 0
	return r
}

// trainRecords are the training records of a run's metrics.jsonl, in
// step order.
func trainRecords(t testing.TB, out string) []train.Record {
	t.Helper()
	return records(t, out, "train")
}

// records are the records of one kind of a run's metrics.jsonl, in order.
func records(t testing.TB, out, kind string) []train.Record {
	t.Helper()
	recs, err := train.ReadMetrics(filepath.Join(out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var tr []train.Record
	for _, r := range recs {
		if r.Kind == kind {
			tr = append(tr, r)
		}
	}
	return tr
}

// value is a metric of a record, failing the test when it is absent.
func value(t testing.TB, r train.Record, key string) float64 {
	t.Helper()
	v, ok := r.Values[key]
	if !ok {
		t.Fatalf("step %d: no %q in the metrics (%v)", r.Step, key, r.Values)
	}
	return v
}

// cloneBatch is a deep copy of b.
func cloneBatch(b *model.Batch) *model.Batch {
	c := *b
	c.Tokens = append([]int32(nil), b.Tokens...)
	c.Targets = append([]int32(nil), b.Targets...)
	c.Weights = append([]float32(nil), b.Weights...)
	if b.DocIDs != nil {
		c.DocIDs = append([]int32(nil), b.DocIDs...)
	}
	return &c
}

// tensorHeader is a safetensors header entry.
type tensorHeader struct {
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
}

// readSafetensorsHeader parses the header of a safetensors file by its
// format (an 8-byte little-endian length, then JSON), independently of
// package checkpoint: the tensors by name.
func readSafetensorsHeader(t testing.TB, path string) map[string]tensorHeader {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 8 {
		t.Fatalf("%s: %d bytes", path, len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > uint64(len(data)-8) {
		t.Fatalf("%s: header length %d past the end", path, n)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]tensorHeader{}
	for name, v := range raw {
		if name == "__metadata__" {
			continue
		}
		var h tensorHeader
		if err := json.Unmarshal(v, &h); err != nil {
			t.Fatalf("%s: tensor %s: %v", path, name, err)
		}
		out[name] = h
	}
	return out
}

// relErr is |a − b| relative to the larger magnitude (floored at floor).
func relErr(a, b, floor float64) float64 {
	return math.Abs(a-b) / math.Max(math.Max(math.Abs(a), math.Abs(b)), floor)
}

// gradCheck compares the gradient of every tensor of m (m.Grads) with
// central differences of the float64 loss, which must read w, along one
// random unit direction per tensor, and element-wise for the elements of
// the tensors named in elementWise (all of them). It returns the worst
// relative error.
func gradCheck(t *testing.T, m *model.Model, w map[string][]float64, rng *rand.Rand, loss func() float64, elementWise ...string) float64 {
	t.Helper()
	worst := 0.0
	check := func(what string, analytic, numeric float64) {
		t.Helper()
		worst = math.Max(worst, relErr(analytic, numeric, 1e-4))
		if !modeltest.Close(analytic, numeric, 5e-4, 1e-7) {
			t.Errorf("%s: analytic %.7g, numeric %.7g", what, analytic, numeric)
		}
	}
	for ti, info := range m.Params.Layout.Tensors {
		g := m.Grads.View(ti)
		analytic, numeric := modeltest.Directional(rng, w, info.Name, g, loss)
		check(info.Name+" (random direction)", analytic, numeric)
	}
	for _, name := range elementWise {
		g := m.Grads.Get(name)
		orig := w[name]
		pert := append([]float64(nil), orig...)
		w[name] = pert
		for j := range g {
			numeric := modeltest.CentralDiff(func(eps float64) float64 {
				pert[j] = orig[j] + eps
				return loss()
			})
			pert[j] = orig[j]
			check(name+"["+strconv.Itoa(j)+"]", float64(g[j]), numeric)
		}
		w[name] = orig
	}
	return worst
}

// logSigmoidNeg is −log σ(x) = log(1 + e^(−x)), in float64, written out
// for the tests' own loss formulas.
func logSigmoidNeg(x float64) float64 {
	if x < 0 {
		return -x + math.Log(1+math.Exp(x))
	}
	return math.Log(1 + math.Exp(-x))
}
