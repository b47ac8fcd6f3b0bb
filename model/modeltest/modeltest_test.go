package modeltest_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/model/modeltest"
)

// TestForwardMatchesModel checks the float64 reference against the float32
// model on tiny random configurations, on the serial and the parallel CPU
// backends, with and without tied embeddings, llama3 RoPE scaling and
// packed documents with token weights: every logit, every final hidden
// state, every token's nll and the weighted mean loss.
func TestForwardMatchesModel(t *testing.T) {
	cpu := kernels.NewCPU(2)
	defer cpu.Close()
	type config struct{ tied, llama3, docs bool }
	var cases []config
	for i := range 8 {
		cases = append(cases, config{i&1 != 0, i&2 != 0, i&4 != 0})
	}
	for _, tc := range cases {
		for _, be := range []kernels.Backend{kernels.NewSerial(), cpu} {
			name := fmt.Sprintf("tied=%v,llama3=%v,docs=%v/%s", tc.tied, tc.llama3, tc.docs, be.Name())
			t.Run(name, func(t *testing.T) {
				c := modeltest.TinyConfig(tc.tied, tc.llama3)
				m, err := model.New(c, be)
				if err != nil {
					t.Fatal(err)
				}
				m.Params.Init(c, 5)
				rng := rand.New(rand.NewPCG(3, 4))
				b := modeltest.RandomBatch(c, 3, 20, rng, tc.docs, tc.docs)
				nll, err := m.Forward(b)
				if err != nil {
					t.Fatal(err)
				}
				w := modeltest.Weights(m.Params)
				logits, hidden := modeltest.Forward(c, w, b)
				n, V, C := b.B*b.T, c.VocabSize, c.HiddenSize
				if len(logits) != n || len(hidden) != n {
					t.Fatalf("%d logit rows and %d hidden rows, want %d", len(logits), len(hidden), n)
				}
				worst := 0.0
				cmp := func(what string, k, j int, got float32, want float64) {
					t.Helper()
					worst = math.Max(worst, math.Abs(float64(got)-want))
					if !modeltest.Close(float64(got), want, 1e-4, 1e-5) {
						t.Fatalf("token %d %s %d: float32 %.7g, float64 reference %.7g", k, what, j, got, want)
					}
				}
				for k := 0; k < n; k++ {
					for j := 0; j < V; j++ {
						cmp("logit", k, j, m.Logits()[k*V+j], logits[k][j])
					}
					for j := 0; j < C; j++ {
						cmp("hidden", k, j, m.Hidden()[k*C+j], hidden[k][j])
					}
					want := 0.0
					if b.Targets[k] >= 0 {
						want = modeltest.NLL(logits[k], int(b.Targets[k]))
					}
					cmp("nll", k, 0, nll[k], want)
				}
				coef := make([]float32, n)
				loss := model.LossCoefficients(b, nll, coef)
				if want := modeltest.Loss(c, w, b); !modeltest.Close(loss, want, 1e-5, 1e-7) {
					t.Fatalf("loss %.9g, float64 reference %.9g", loss, want)
				}
				t.Logf("max |float32 − float64| = %.3g", worst)
			})
		}
	}
}

// TestForwardDocuments checks the reference's document mask on its own:
// a row packing several documents gives each document's logits exactly as
// a batch of that document alone (its positions restart at 0).
func TestForwardDocuments(t *testing.T) {
	c := modeltest.TinyConfig(false, true)
	p := model.NewParams(model.NewLayout(c))
	p.Init(c, 2)
	w := modeltest.Weights(p)
	rng := rand.New(rand.NewPCG(9, 9))
	packed := modeltest.RandomBatch(c, 1, 16, rng, false, false)
	packed.DocIDs = []int32{0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2}
	got, _ := modeltest.Forward(c, w, packed)
	for start := 0; start < packed.T; {
		end := start
		for end < packed.T && packed.DocIDs[end] == packed.DocIDs[start] {
			end++
		}
		alone := &model.Batch{B: 1, T: end - start, Tokens: packed.Tokens[start:end]}
		want, _ := modeltest.Forward(c, w, alone)
		for i := range want {
			for j := range want[i] {
				if d := math.Abs(got[start+i][j] - want[i][j]); d > 1e-12 {
					t.Fatalf("document at %d, token %d, logit %d: packed %.15g, alone %.15g", start, i, j, got[start+i][j], want[i][j])
				}
			}
		}
		start = end
	}
	// Without the mask the documents see each other.
	packed.DocIDs = nil
	whole, _ := modeltest.Forward(c, w, packed)
	if whole[5][0] == got[5][0] {
		t.Fatal("the logits do not depend on the document ids")
	}
}

// TestForwardClassifier checks that weights with a score head give no
// logits and the hidden states of the float32 trunk.
func TestForwardClassifier(t *testing.T) {
	c := modeltest.TinyConfig(false, false).AsSequenceClassifier(1, 0)
	m, err := model.New(c, kernels.NewSerial())
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(c, 4)
	b := modeltest.RandomBatch(c, 2, 7, rand.New(rand.NewPCG(1, 1)), true, false)
	if err := m.ForwardHidden(b); err != nil {
		t.Fatal(err)
	}
	logits, hidden := modeltest.Forward(c, modeltest.Weights(m.Params), b)
	if logits != nil {
		t.Fatalf("%d logit rows for a sequence classifier, want none", len(logits))
	}
	C := c.HiddenSize
	for k := range hidden {
		for j, want := range hidden[k] {
			if got := m.Hidden()[k*C+j]; !modeltest.Close(float64(got), want, 1e-4, 1e-5) {
				t.Fatalf("token %d hidden %d: float32 %.7g, float64 reference %.7g", k, j, got, want)
			}
		}
	}
}

func TestLogSoftmaxNLL(t *testing.T) {
	for _, logits := range [][]float64{{0}, {1, 2, 3}, {1000, 999, -1000, 0}, {-5e3, -5e3}} {
		lp := modeltest.LogSoftmax(logits)
		var z float64
		for i, v := range lp {
			z += math.Exp(v)
			if nll := modeltest.NLL(logits, i); math.Abs(nll+v) > 1e-12 || math.IsNaN(nll) {
				t.Errorf("%v: NLL(%d) = %g, −LogSoftmax %g", logits, i, nll, -v)
			}
		}
		if math.Abs(z-1) > 1e-12 {
			t.Errorf("%v: probabilities sum to %g", logits, z)
		}
	}
	if got, want := modeltest.NLL([]float64{0, math.Log(3)}, 1), math.Log(4.0/3); math.Abs(got-want) > 1e-15 {
		t.Errorf("NLL %g, want %g", got, want)
	}
}

func TestCentralDiff(t *testing.T) {
	for _, x := range []float64{0, 0.3, -2} {
		got := modeltest.CentralDiff(func(eps float64) float64 { return math.Sin(x+eps) * math.Exp(x+eps) })
		want := (math.Cos(x) + math.Sin(x)) * math.Exp(x)
		if math.Abs(got-want) > 1e-10 {
			t.Errorf("x=%g: %.12g, want %.12g", x, got, want)
		}
	}
}

// TestDirectional checks Directional on Σ wᵢ³, whose gradient is 3wᵢ², and
// that it restores the weights.
func TestDirectional(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	orig := []float64{0.5, -1, 2, 0.25, 3}
	w := map[string][]float64{"a": orig, "b": {7}}
	g := make([]float32, len(orig))
	for i, v := range orig {
		g[i] = float32(3 * v * v)
	}
	loss := func() float64 {
		var s float64
		for _, v := range w["a"] {
			s += v * v * v
		}
		return s + w["b"][0]
	}
	analytic, numeric := modeltest.Directional(rng, w, "a", g, loss)
	if !modeltest.Close(analytic, numeric, 1e-6, 1e-9) {
		t.Fatalf("analytic %.9g, numeric %.9g", analytic, numeric)
	}
	if &w["a"][0] != &orig[0] || orig[1] != -1 {
		t.Fatal("weights not restored")
	}
}

func TestClose(t *testing.T) {
	for _, tc := range []struct {
		a, b, rel, abs float64
		want           bool
	}{
		{1, 1.0001, 2e-4, 0, true},
		{1, 1.001, 2e-4, 0, false},
		{0, 1e-8, 1e-3, 1e-7, true},
		{0, 1e-6, 1e-3, 1e-7, false},
		{-100, -100.01, 2e-4, 0, true},
	} {
		if got := modeltest.Close(tc.a, tc.b, tc.rel, tc.abs); got != tc.want {
			t.Errorf("Close(%g, %g, %g, %g) = %v", tc.a, tc.b, tc.rel, tc.abs, got)
		}
	}
}

func TestTopIndices(t *testing.T) {
	got := modeltest.TopIndices([]float32{0.5, -3, 2, -3, 1}, 3)
	want := []int{1, 3, 2}
	if len(got) != len(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%v, want %v", got, want)
		}
	}
	if got := modeltest.TopIndices([]float32{1}, 3); len(got) != 1 || got[0] != 0 {
		t.Fatalf("%v, want [0]", got)
	}
}

// TestRandomBatch checks that RandomBatch gives a valid batch and that its
// documents are non-decreasing along each row.
func TestRandomBatch(t *testing.T) {
	c := modeltest.TinyConfig(true, false)
	b := modeltest.RandomBatch(c, 3, 30, rand.New(rand.NewPCG(5, 5)), true, true)
	if err := b.Validate(&c); err != nil {
		t.Fatal(err)
	}
	if b.DocIDs[b.T-1] == 0 {
		t.Fatal("no second document in a row of 30")
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
